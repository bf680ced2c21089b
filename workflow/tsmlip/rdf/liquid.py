"""The liquid of the RDF stage: which liquid a run simulates (:func:`resolve_liquid`), its NVT Langevin MD with
the checks for blow-up, collapse and melting (:func:`run_liquid_md`), and ``tsmlip rdf-md`` (MD + g(r) of one
model, the reference potential or the teacher calculator)."""
from __future__ import annotations

import math
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from ..io_utils import atomic_write_json
from ..core.md.common import finite_or_none
from ..core.md.system import initial_liquid_cell, liquid_lattice_constant, liquid_system, number_density
from ..records import DatasetProvenance, LiquidDensity, LiquidOutcome, RdfMd
from .gr import cell_heights, check_cutoff, first_peak, rdf_of_frames, write_curve


@dataclass(frozen=True)
class Liquid:
    """The liquid a run simulates, derived from the ``rdf:`` section and the species of the model (or data)."""

    #: ``rdf.element``, or the single element of the species
    element: str
    #: ``rdf.density_g_cm3``, or ASE's reference solid density x ``rdf.liquid_density_ratio``
    density_g_cm3: float
    #: which of the two, in words
    density_source: str
    #: ``rdf.supercell`` as configured
    supercell_configured: list
    #: the configured repeats, each enlarged where ``r_max_A`` would not fit below half the cell height
    supercell: list


def resolve_liquid_system(settings: dict, species, trained_on: str = "the model") -> Liquid:
    """The :class:`Liquid` of the ``rdf:`` settings for ``species``. Raises
    :class:`tsmlip.core.elements.ElementError` before any MD when the model cannot simulate the element."""
    from ..core.elements import liquid_density, resolve_element

    element = resolve_element(settings.get("element"), species, "rdf.element", trained_on)
    density, source = liquid_density(element, settings.get("density_g_cm3"), settings["liquid_density_ratio"])
    a = liquid_lattice_constant({"element": element, "density_g_cm3": density})
    need = int(math.floor(2.0 * float(settings["r_max_A"]) / a)) + 1  # n * a > 2 r_max
    return Liquid(element=element, density_g_cm3=density, density_source=source,
                  supercell_configured=list(settings["supercell"]),
                  supercell=[max(int(n), need) for n in settings["supercell"]])


def resolve_liquid(settings: dict, species, trained_on: str = "the model") -> dict:
    """The settings a liquid run uses and records: a copy of the ``rdf:`` section whose keys of :class:`Liquid`
    (``element`` ... ``supercell``) hold :func:`resolve_liquid_system`'s values, and nothing else added."""
    return {**settings, **asdict(resolve_liquid_system(settings, species, trained_on))}



@dataclass
class LiquidRun:
    """Outcome of :func:`run_liquid_md`: production frames and run information."""

    frames: list
    n_atoms: int
    cell: np.ndarray
    stable: bool
    steps_done: int
    wall_time_s: float
    simulated_time_fs: float
    mean_temperature_K: float
    message: str = ""
    stages: list = field(default_factory=list)
    #: mean-square displacement (A^2) of the atoms over each stage that ran, from its first to its last step
    msd_A2: dict = field(default_factory=dict)
    #: closest pair distance (A) over the production frames
    min_pair_distance_A: float = math.nan
    #: the MD engine that ran it (:mod:`tsmlip.core.md.engines`)
    engine: str = "ase"


def nearest_neighbour_distance(density_g_cm3: float, element: str = "Al") -> float:
    """Nearest-neighbour distance (A) of an fcc lattice at this density: the length the melt check
    compares displacements with."""
    a = (4.0 / number_density(density_g_cm3, element)) ** (1.0 / 3.0)
    return a / math.sqrt(2.0)


def melt_indicator(msd_A2: float, d_nn_A: float) -> float:
    """Mean-square displacement over a stage in units of the squared nearest-neighbour distance.

    A crystal only vibrates: its MSD stays at twice the mean-square vibration amplitude, about
    (0.1 d_nn)^2 even at the Lindemann melting limit, so the indicator stays near 0.01-0.03. A liquid
    diffuses: its MSD grows as 6 D t (D ~ 0.5-1 A^2/ps for liquid Al), so after a picosecond the
    indicator is several tenths and grows without bound."""
    return float(msd_A2) / float(d_nn_A) ** 2


class LiquidBlowup(RuntimeError):
    """A liquid run that stopped: non-finite positions or forces, or a temperature above
    ``blowup_temperature_K``."""


def liquid_stages(settings: dict) -> list[tuple[str, float, int]]:
    """The stages of the liquid, (name, temperature K, steps), those with steps only: melt at
    ``melt_temperature_K``, equilibration and production at ``temperature_K``. ValueError without production."""
    s = settings
    stages = [("melt", float(s["melt_temperature_K"]), int(s["melt_steps"])),
              ("equilibrate", float(s["temperature_K"]), int(s["equilibration_steps"])),
              ("production", float(s["temperature_K"]), int(s["production_steps"]))]
    stages = [st for st in stages if st[2] > 0]
    if not stages or stages[-1][0] != "production":
        raise ValueError("rdf.production_steps must be at least 1")
    return stages


class LiquidMonitor:
    """The stages, checks and samples of one liquid run, for any MD engine with the small interface of
    :mod:`tsmlip.core.md.engines` (``nsteps``, ``positions()``, ``forces()``, ``temperature()``,
    ``potential_energy()``, ``snapshot()``): :func:`run_liquid_md` drives one engine with it, the stacked liquid
    (:mod:`tsmlip.rdf.stacked`) one monitor per model.

    Call :meth:`start_stage` before a stage's first step, :meth:`observe` after every step (it raises
    :class:`LiquidBlowup` on non-finite positions or forces or a temperature above ``blowup_temperature_K``),
    :meth:`end_stage` after its last, :meth:`fail` on a blow-up, and :meth:`result` at the end."""

    def __init__(self, settings: dict, n_atoms: int, log=None, label: str = "rdf-md"):
        self.s = settings
        self.stages = liquid_stages(settings)
        self.total = sum(st[2] for st in self.stages)
        self.n_atoms = int(n_atoms)
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.label = label
        self.interval, self.every = int(settings["sample_interval"]), int(settings["progress_every"])
        self.collapse = float(settings["collapse_distance_A"])
        self.msd: dict[str, float] = {}
        self.closest = math.inf
        self.frames, self.temps, self.collapsed = [], [], []
        self.stage, self.stage_start, self._start_positions = self.stages[0][0], 0, None
        self.stable, self.message = True, ""
        self.t0 = time.perf_counter()

    def start_stage(self, name: str, temperature_K: float, n_steps: int, eng) -> None:
        self.stage, self.stage_start = name, eng.nsteps
        self._start_positions = eng.positions()  # unwrapped (no engine wraps; FixCom holds the centre)
        self.log(f"[{self.label}] {name}: {n_steps} steps at {temperature_K:g} K")

    def end_stage(self, eng) -> None:
        self.msd[self.stage] = float(np.mean(np.sum((eng.positions() - self._start_positions) ** 2, axis=1)))

    def observe(self, eng) -> None:
        from ase.neighborlist import neighbor_list

        s = self.s
        done = eng.nsteps
        step = done - self.stage_start
        temp = eng.temperature()
        if not (np.all(np.isfinite(eng.positions())) and np.all(np.isfinite(eng.forces()))):
            raise LiquidBlowup(f"non-finite positions or forces at {self.stage} step {step}")
        if not temp < s["blowup_temperature_K"]:
            raise LiquidBlowup(f"temperature {temp:.0f} K above blowup_temperature_K at {self.stage} step {step}")
        if self.stage == "production":
            self.temps.append(temp)
            if step % self.interval == 0:
                frame = eng.snapshot()
                self.frames.append(frame)
                d = neighbor_list("d", frame, max(self.collapse, 3.0))
                if len(d):
                    self.closest = min(self.closest, float(np.min(d)))
                    if self.collapse > 0 and np.min(d) < self.collapse:
                        self.collapsed.append(float(np.min(d)))
        if done % self.every == 0 or done == self.total:
            el = time.perf_counter() - self.t0
            self.log(f"[{self.label}] step {done}/{self.total} ({self.stage}) T={temp:7.1f} K "
                     f"Epot/atom={eng.potential_energy() / self.n_atoms:.4f} eV frames={len(self.frames)} "
                     f"{el:.1f}s ({1e3 * el / done:.1f} ms/step)")

    def fail(self, exc: Exception) -> None:
        self.stable, self.message = False, str(exc)
        self.log(f"[{self.label}] UNSTABLE: {self.message}; {len(self.frames)} production frames kept")

    def result(self, cell, steps_done: int, wall_time_s: float, engine: str) -> LiquidRun:
        """The :class:`LiquidRun` (a kept frame closer than ``collapse_distance_A`` marks it unstable)."""
        stable, message = self.stable, self.message
        if self.collapsed:
            stable = False
            message = "; ".join(filter(None, [message, (
                f"{len(self.collapsed)} of {len(self.frames)} frames have atoms closer than collapse_distance_A "
                f"(closest {min(self.collapsed):.3f} A)")]))
            self.log(f"[{self.label}] UNSTABLE: {message}")
        return LiquidRun(frames=self.frames, n_atoms=self.n_atoms, cell=np.array(cell), stable=stable,
                         steps_done=int(steps_done), wall_time_s=wall_time_s,
                         simulated_time_fs=steps_done * self.s["timestep_fs"],
                         mean_temperature_K=float(np.mean(self.temps)) if self.temps else math.nan,
                         message=message, stages=[list(st) for st in self.stages], msd_A2=self.msd,
                         min_pair_distance_A=self.closest, engine=engine)


def run_liquid_md(calc, settings: dict, log=None, *, model=None, engine: str = "ase", device="cpu",
                  pair_finder: str = "cell_list") -> LiquidRun:
    """NVT Langevin MD of the liquid (``settings`` = the resolved ``rdf:`` config section): optional melt at
    ``melt_temperature_K``, equilibration and production at ``temperature_K``; a frame is kept every
    ``sample_interval`` production steps.

    The potential is the ASE calculator ``calc`` (``ase`` engine; the reference potential), or, with
    ``calc`` None, the trained ``model`` (a model.pt) on ``engine`` (``ase``, ``torch`` or ``lammps``, see
    :mod:`tsmlip.core.md.engines`; ``pair_finder`` for the torch engine) on ``device``. The start
    (:func:`tsmlip.core.md.system.liquid_system`) and every random number come from ``seed``.

    The run stops early (``stable`` False) when positions or forces stop being finite or the
    instantaneous temperature exceeds ``blowup_temperature_K``; the frames kept so far are returned.
    A kept frame with two atoms closer than ``collapse_distance_A`` also marks the run unstable (the MD
    goes on: the collapsed structure shows in g(r) and its error). A progress line goes to ``log``
    (default stderr) every ``progress_every`` steps (:class:`LiquidMonitor`).
    """
    from ..core.md.engines import Langevin, make_engine

    s = settings
    stages = liquid_stages(s)
    rng = np.random.default_rng(int(s["seed"]))
    atoms = liquid_system(s, stages[0][1], rng)
    check_cutoff(atoms.cell, s["r_max_A"])
    thermostat = Langevin(temperature_K=stages[0][1], friction_per_fs=float(s["friction_per_fs"]), rng=rng,
                          fix_com=True)
    if calc is not None:
        engine = "ase"
    eng = make_engine(engine, model, atoms, device, float(s["timestep_fs"]), skin_A=float(s["skin_A"]),
                      pair_finder=pair_finder, dtype=None, thermostat=thermostat, calc=calc)
    mon = LiquidMonitor(s, len(atoms), log)
    try:
        for name, temp_K, n_steps in stages:
            mon.start_stage(name, temp_K, n_steps, eng)
            eng.set_temperature(temp_K)
            eng.run(n_steps, lambda: mon.observe(eng))
            mon.end_stage(eng)
    except LiquidBlowup as exc:
        mon.fail(exc)
    return mon.result(atoms.cell, eng.nsteps, time.perf_counter() - mon.t0, eng.name)


def reference_calculator(source: str):
    """The reference potential of the embedded data (ASE EMT); None for external data."""
    if source == "emt":
        from ase.calculators.emt import EMT
        return EMT()
    return None


def write_liquid_outputs(run: LiquidRun, s: dict, name: str, device: str, out_csv, out_json, *,
                         pair_finder: str | None, calculator: dict | None = None,
                         hippynn_kernels: str | None = None, log=None, provenance: dict | None = None) -> dict:
    """g(r) of ``run``'s frames to ``out_csv`` and its :class:`tsmlip.records.RdfMd` (first peak, checks, melt
    indicator, settings ``s``) to ``out_json``, as ``tsmlip rdf-md`` writes them; returns the record's JSON.
    ``provenance``: the step's record (:mod:`tsmlip.provenance`), kept in the JSON under ``_provenance`` and
    beside the g(r) CSV (its sidecar, ``rdf.csv.provenance.json``), so a consumer can tell a g(r) and a run record
    of two runs apart (:func:`tsmlip.provenance_checks.check_same_run`)."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    t = time.perf_counter()
    r, g = rdf_of_frames(run.frames, s["r_max_A"], s["n_bins"])
    rdf_time = time.perf_counter() - t
    r_peak, g_peak = first_peak(r, g, s["peak_fit_halfwidth_A"])
    write_curve(out_csv, r, g)
    d_nn = nearest_neighbour_distance(s["density_g_cm3"], s["element"])
    melt = melt_indicator(run.msd_A2["production"], d_nn) if "production" in run.msd_A2 else math.nan
    melted = bool(melt >= s["melt_min_msd_ratio"])
    if not melted:
        log_line = (f"NOT MELTED: production-stage MSD is {melt:.3f} d_nn^2 (< rdf.melt_min_msd_ratio = "
                    f"{s['melt_min_msd_ratio']}): the system did not diffuse like a liquid")
        log(f"[rdf-md] {log_line}")
    info = RdfMd(
        model_id=name,
        outcome=LiquidOutcome(
            first_peak_r_A=finite_or_none(r_peak),
            first_peak_g=finite_or_none(g_peak),
            n_frames=len(run.frames),
            device=device,
            temperature_K=float(s["temperature_K"]),
            n_atoms=run.n_atoms,
            stable=run.stable,
            melted=melted,
            clean=bool(run.stable and melted),
            melt_indicator=finite_or_none(melt),
            min_pair_distance_A=finite_or_none(run.min_pair_distance_A),
        ),
        message=run.message,
        melt_indicator_definition="production-stage mean-square displacement / d_nn^2 (fcc nearest-neighbour "
                                  "distance at the run's density); melted when >= rdf.melt_min_msd_ratio",
        msd_A2={k: round(v, 5) for k, v in run.msd_A2.items()},
        nn_distance_A=round(d_nn, 5),
        mean_production_temperature_K=finite_or_none(run.mean_temperature_K),
        element=s["element"],
        density=LiquidDensity(density_g_cm3=float(s["density_g_cm3"]), density_source=s["density_source"]),
        supercell=list(s["supercell"]),
        number_density_per_A3=number_density(s["density_g_cm3"], s["element"]),
        cell_heights_A=cell_heights(run.cell).round(6).tolist(),
        r_max_A=float(s["r_max_A"]),
        n_bins=int(s["n_bins"]),
        dr_A=float(s["r_max_A"]) / int(s["n_bins"]),
        stages=run.stages,
        timestep_fs=float(s["timestep_fs"]),
        steps_done=run.steps_done,
        simulated_time_fs=run.simulated_time_fs,
        md_wall_time_s=round(run.wall_time_s, 3),
        ms_per_step=round(1e3 * run.wall_time_s / max(run.steps_done, 1), 3),
        rdf_wall_time_s=round(rdf_time, 3),
        engine=run.engine,
        pair_finder=pair_finder,
        calculator=calculator,
        hippynn_kernels=hippynn_kernels,
        seed=int(s["seed"]),
        settings=s,
    ).to_json()
    if provenance is not None:
        from ..provenance import json_with, write_sidecar

        info = json_with(info, provenance)
        write_sidecar(out_csv, provenance)  # the g(r)'s record: the run's, with the table's own content hash
    atomic_write_json(out_json, info, indent=2)
    log(f"[rdf-md] done: {name}: {len(run.frames)} frames, first peak r={r_peak:.3f} A g={g_peak:.3f}, "
        f"MD {run.wall_time_s:.1f}s, stable={run.stable}, melt indicator {melt:.3f} (melted={melted}), "
        f"closest pair {run.min_pair_distance_A:.3f} A")
    return info


def main_md(argv: list[str] | None = None) -> int:
    """``tsmlip rdf-md``: liquid MD with one model (or the reference potential) -> g(r) CSV + run JSON."""
    from ..cli import require, step_parser

    p = step_parser("rdf-md", main_md.__doc__ + "\n\nThe rdf: section (its experiment: part is not read); "
                    "--reference also reads data.source, --calculator foundation.calculator (chgnet, emt or "
                    "{factory, kwargs}; docs/foundation.md), on rdf.device.")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--model", help="model.pt of a trained model")
    who.add_argument("--reference", action="store_true", help="run the data's reference potential instead")
    who.add_argument("--calculator", action="store_true", help="run the teacher calculator instead")
    who.add_argument("--classical", action="store_true",
                     help="run the classical anchor instead (classical:, tsmlip.classical; LAMMPS as ASE's calculator)")
    p.add_argument("--model-id", default=None, help="name written into the JSON (default: the path)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch_threads)")
    p.add_argument("--data-provenance", default=None,
                   help="with --reference or --calculator: the dataset's provenance.json (its species name the "
                        "element when rdf.element is null)")
    p.add_argument("--out-csv", required=True, help="g(r) output, columns r_A,g")
    p.add_argument("--out-json", required=True, help="run information and first peak")
    a = p.parse_args(argv)
    cfg = a.config_json
    require(p, cfg, ["data.source"] if a.reference else ["foundation.calculator"] if a.calculator else
            ["classical"] if a.classical else [])
    s = cfg["rdf"]
    from ..core.elements import ElementError, model_species

    try:
        if a.reference or a.calculator or a.classical:
            species = DatasetProvenance.read(a.data_provenance).species if a.data_provenance else None
            s = resolve_liquid(s, species, trained_on=f"the data ({a.data_provenance or 'no --data-provenance'})")
        else:
            from ..core.model import check_model_id

            check_model_id(a.model, a.model_id)  # the file is the model of the id its g(r) is recorded as
            s = resolve_liquid(s, model_species(a.model), trained_on=f"the model {a.model}")
    except ElementError as e:
        print(f"tsmlip rdf-md: error: {e}", file=sys.stderr, flush=True)
        return 2
    if s["supercell"] != s["supercell_configured"]:
        print(f"[rdf-md] supercell {s['supercell_configured']} -> {s['supercell']}: r_max_A = {s['r_max_A']} A "
              f"must stay below half the cell height of {s['element']} at {s['density_g_cm3']:.3f} g/cm3",
              file=sys.stderr, flush=True)
    check_cutoff(initial_liquid_cell(s).cell, s["r_max_A"])  # fail before any MD

    # hippynn warns at every step with a pair below its sensitivity range; the collapse check reports it
    warnings.filterwarnings("ignore", message="Provided distances are underneath sensitivity range")
    engine, kernels, pair_finder, calc, model, cinfo = "ase", None, None, None, None, None
    if a.reference:
        source = cfg["data"]["source"]
        calc = reference_calculator(source)
        if calc is None:
            p.error(f"--reference: the data (data.source: {source}) have no reference potential")
        device, name = f"cpu (ASE {source.upper()}, numpy)", f"reference:{source}"
        dev = "cpu"
    elif a.classical:
        from ..classical import ClassicalError, check_species, make_calculator, model_id, resolve

        try:
            pot = resolve(cfg["classical"])
            check_species(pot, [s["element"]])
            calc = make_calculator(pot)
        except ClassicalError as e:
            print(f"tsmlip rdf-md: error: {e}", file=sys.stderr, flush=True)
            return 2
        dev, cinfo = "cpu", pot.to_json()
        device, name = f"cpu ({pot.implementation})", a.model_id or model_id(cfg["classical"])
    elif a.calculator:
        from ..foundation import CalculatorError, make_calculator

        spec = cfg["foundation"]["calculator"]
        if a.threads:
            import torch

            torch.set_num_threads(int(a.threads))
        try:
            calc, cinfo = make_calculator(spec, s["device"])
        except CalculatorError as e:
            print(f"tsmlip rdf-md: error: {e}", file=sys.stderr, flush=True)
            return 2
        dev = cinfo["device"]
        device, name = f"{dev} ({cinfo['name']} {cinfo.get('version')})", a.model_id or f"calculator:{cinfo['name']}"
    else:
        import torch

        from ..core.md.engines import set_kernels
        from ..core.model import device_description, resolve_device

        torch.set_num_threads(int(a.threads or s["torch_threads"]))
        dev = resolve_device(s["device"])
        engine, model = s["engine"], a.model
        pair_finder = s["pair_finder"][dev.type] if engine == "torch" else None
        if engine == "lammps":
            from ..core.md.deployed import EngineUnavailable, require

            try:
                require("lammps")
            except EngineUnavailable as e:
                print(f"tsmlip rdf-md: error: {e}", file=sys.stderr, flush=True)
                return 2
        kernels = set_kernels(s["kernels"], dev) if engine != "lammps" else None  # lammps: the exported network
        device, name = device_description(dev), a.model_id or a.model
    print(f"[rdf-md] {name} on {device}, engine {engine}"
          + (f" (pairs: {pair_finder})" if pair_finder else "") + (f", hippynn kernels {kernels}" if kernels else ""),
          file=sys.stderr, flush=True)

    run = run_liquid_md(calc, s, model=model, engine=engine, device=dev, pair_finder=pair_finder or "cell_list")
    from ..provenance import record

    rec = record("rdf-md", cfg, {"model": a.model} if a.model else {"data_provenance": a.data_provenance})
    write_liquid_outputs(run, s, name, device, a.out_csv, a.out_json, provenance=rec,
                         pair_finder=pair_finder if run.engine == "torch" else (
                             {"lammps": "lammps neighbor bin"}.get(run.engine, "ase.neighborlist") if model else None),
                         calculator=cinfo if (a.calculator or a.classical) else None, hippynn_kernels=kernels)
    return 0



if __name__ == "__main__":
    sys.exit(main_md())
