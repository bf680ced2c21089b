"""Radial distribution function of the liquid: MD with any model, g(r), and errors between curves.

Paper section 3.2 / Fig. 3C: every model (teacher, students, controls, Born-Again) runs the same NVT
Langevin MD of the liquid (liquid aluminum at 1200 K for the paper's and the default data; the element is
``rdf.element`` or the model's single element, the density ``rdf.density_g_cm3`` or ASE's reference solid
density times ``rdf.liquid_density_ratio``, see :func:`resolve_liquid`); the RDF error of a model is the total absolute
difference of its g(r) from the teacher's,

    error = sum_i |g_model(r_i) - g_teacher(r_i)| * dr      (Angstrom),

over a fixed grid of bin centres r_i. With the embedded EMT data the reference potential itself can run
the same MD, so the same error is also taken against the reference's g(r).

Units: distances Angstrom, energies eV, time fs, temperature K, density g/cm^3. The initial structure
(fcc at the configured liquid density, rattled) and all random numbers (velocities, Langevin noise)
come from ``seed``, so every model starts from the identical state and differences are the potential's.

The MD itself (systems, engines, Langevin, pair finders, hippynn's kernels) is :mod:`tsmlip.md`'s, the same
layer that times the models: ``rdf.engine`` picks the ``ase`` or ``torch`` engine for the models (the
reference potential always runs on ``ase``), and every ``rdf_md.json`` records the engine, pair finder and
kernels used. This module keeps the liquid's stages and checks (blow-up, collapse, melt), g(r), peaks and
errors.

Sub-commands: ``tsmlip rdf-md`` (MD + g(r) of one model or of the reference) and ``tsmlip rdf-error``.
"""
from __future__ import annotations

import io
import json
import math
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from .io_utils import atomic_write_json, atomic_write_text
from .md.common import finite_or_none
from .md.system import initial_liquid_cell, liquid_lattice_constant, liquid_system, number_density
from .records import ExperimentComparison, LiquidDensity, LiquidOutcome, RdfError, RdfMd

#: the exact definition written into every rdf_error.json
ERROR_DEFINITION = (
    "sum_i |g_model(r_i) - g_ref(r_i)| * dr over the fixed r grid (bin centres r_i, dr = r_max_A/n_bins), "
    "in Angstrom; error_vs_teacher uses g_ref = mean g(r) of all teacher seeds (teacher_ids), "
    "error_vs_reference uses the reference potential's own g(r) from identical MD settings"
)


class RdfCutoffError(ValueError):
    """The g(r) cut-off does not fit in the periodic cell (r_max must stay below half its height)."""


# ----------------------------------------------------------------------------------------------------
# structure and g(r)
# ----------------------------------------------------------------------------------------------------
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
    :class:`tsmlip.elements.ElementError` before any MD when the model cannot simulate the element."""
    from .elements import liquid_density, resolve_element

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


def cell_heights(cell) -> np.ndarray:
    """Distances between opposite faces of a (possibly triclinic) cell, rows = lattice vectors (A)."""
    cell = np.asarray(cell, dtype=float)
    volume = abs(np.linalg.det(cell))
    return np.array([volume / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3]))
                     for i in range(3)])


def check_cutoff(cell, r_max: float) -> None:
    """Raise :class:`RdfCutoffError` unless ``r_max`` < half the shortest cell height, the range in which
    minimum-image distances are unique."""
    half = 0.5 * float(cell_heights(cell).min())
    if not r_max < half:
        raise RdfCutoffError(
            f"rdf r_max_A = {r_max:g} A is not below half the shortest cell height ({half:.3f} A); "
            f"lower rdf.r_max_A or enlarge rdf.supercell")


def r_grid(r_max: float, n_bins: int) -> np.ndarray:
    """Bin centres (A) of the fixed grid: n_bins bins of width r_max/n_bins from 0 to r_max."""
    dr = r_max / n_bins
    return (np.arange(n_bins) + 0.5) * dr


def mic_distances(atoms, chunk: int = 256) -> np.ndarray:
    """(N, N) minimum-image distances (A) from rounded fractional coordinate differences.

    Exact for every distance below half the shortest cell height, in any (triclinic) cell: such a
    shortest image vector has all fractional components inside (-1/2, 1/2), so rounding finds it, and
    no other image of the pair is that close. Longer distances can come out too long, never too short,
    which is harmless below that cut-off (:func:`check_cutoff`)."""
    frac = atoms.get_scaled_positions(wrap=False)
    cell = np.asarray(atoms.cell, dtype=float)
    out = np.empty((len(frac), len(frac)))
    for i in range(0, len(frac), chunk):
        d = frac[i:i + chunk, None, :] - frac[None, :, :]
        d -= np.round(d)
        out[i:i + chunk] = np.linalg.norm(d @ cell, axis=-1)
    return out


def rdf_of_frames(frames, r_max: float, n_bins: int, neighbor_list: bool = False
                  ) -> tuple[np.ndarray, np.ndarray]:
    """g(r) averaged over ``frames`` (periodic ASE Atoms, any cell shape): pair counts in each shell of
    width r_max/n_bins divided by the ideal-gas count N * (N/V) * shell volume. Binning and
    normalisation are ASE's ``get_rdf``; the pair distances come from :func:`mic_distances` (exact below
    the checked cut-off), or, with ``neighbor_list``, from ASE's own neighbour list (slower; the tests
    check that both agree). Returns (r bin centres in A, g); g is nan without frames."""
    from ase.geometry.rdf import get_rdf

    frames = list(frames)
    if not frames:
        return r_grid(r_max, n_bins), np.full(n_bins, np.nan)
    gs = []
    for atoms in frames:
        check_cutoff(atoms.cell, r_max)
        dm = None if neighbor_list else mic_distances(atoms)
        gs.append(get_rdf(atoms, r_max, n_bins, distance_matrix=dm, no_dists=True))
    return r_grid(r_max, n_bins), np.mean(gs, axis=0).astype(float)


def first_peak(r: np.ndarray, g: np.ndarray, halfwidth_A: float = 0.0) -> tuple[float, float]:
    """Position (A) and height of the first peak of g(r).

    The peak bin is the highest between the first rise of g above 1 and its next fall below 1; a
    least-squares parabola through the bins within ``halfwidth_A`` of it (at least the two neighbours)
    gives the vertex, which averages out bin noise. (nan, nan) for a curve that never exceeds 1 or is
    not finite."""
    r, g = np.asarray(r, float), np.asarray(g, float)
    if not np.all(np.isfinite(g)) or not np.any(g > 1.0):
        return math.nan, math.nan
    i0 = int(np.argmax(g > 1.0))
    below = np.nonzero(g[i0:] < 1.0)[0]
    i1 = i0 + int(below[0]) if below.size else len(g)
    i = i0 + int(np.argmax(g[i0:i1]))
    dr = float(r[1] - r[0])
    k = max(1, int(round(halfwidth_A / dr)))
    lo, hi = max(0, i - k), min(len(g), i + k + 1)
    if hi - lo >= 3:
        c2, c1, c0 = np.polyfit(r[lo:hi] - r[i], g[lo:hi], 2)
        if c2 < 0:
            x = -c1 / (2 * c2)
            if abs(x) <= k * dr:
                return float(r[i] + x), float(c0 + c1 * x + c2 * x * x)
    return float(r[i]), float(g[i])


def rdf_error(r: np.ndarray, g: np.ndarray, g_ref: np.ndarray) -> float:
    """Total absolute error sum_i |g(r_i) - g_ref(r_i)| * dr (A) on a uniform grid of bin centres ``r``."""
    r, g, g_ref = (np.asarray(x, float) for x in (r, g, g_ref))
    if g.shape != g_ref.shape or g.shape != r.shape:
        raise ValueError(f"g(r) curves of different lengths ({g.size} vs {g_ref.size} bins)")
    dr = float(r[1] - r[0]) if r.size > 1 else 2.0 * float(r[0])
    return float(np.sum(np.abs(g - g_ref)) * dr)


# ----------------------------------------------------------------------------------------------------
# experiment (rdf.experiment): measured liquid-Al g(r), shipped in tsmlip/reference_data
# ----------------------------------------------------------------------------------------------------
#: the package folder of the experimental curves (README.md there: source, licence, citation)
EXPERIMENT_DATA = "liquid_al_gr_experiment"
EXPERIMENT_CITATION = ("experimental liquid-Al g(r) as distributed with hippynn (lanl/hippynn, "
                       "examples/exp_train/Al_rdf_training/data/Al_ref_<T>K_Gr.txt; BSD-3-Clause)")
EXPERIMENT_ERROR_DEFINITION = (
    "sum_i |g_model(r_i) - g_exp(r_i)| * dr over the model's r grid (bin centres r_i, dr = r_max_A/n_bins), in "
    "Angstrom, the experimental curve at the nearest measured temperature linearly interpolated onto r_i")


def experimental_curves(element: str = "Al") -> dict[float, object]:
    """Temperature (K) -> the packaged CSV (an importlib.resources Traversable) of each experimental g(r);
    empty for an element without measured curves."""
    from importlib import resources

    if element != "Al":
        return {}
    folder = resources.files("tsmlip.reference_data").joinpath(EXPERIMENT_DATA)
    out = {}
    for f in folder.iterdir():
        name = f.name
        if name.startswith("al_liquid_") and name.endswith("K_gr.csv"):
            out[float(name[len("al_liquid_"):-len("K_gr.csv")])] = f
    return dict(sorted(out.items()))


def read_experiment(path) -> tuple[np.ndarray, np.ndarray]:
    """(r_A, g) of an experimental CSV (columns r_A,g)."""
    data = np.genfromtxt(io.StringIO(path.read_text()), delimiter=",", names=True)
    return np.atleast_1d(data["r_A"]).astype(float), np.atleast_1d(data["g"]).astype(float)


def compare_with_experiment(r: np.ndarray, g: np.ndarray, temperature_K: float, element: str = "Al",
                            max_gap_K: float | None = None, peak_halfwidth_A: float = 0.2,
                            curves: dict | None = None) -> ExperimentComparison:
    """The model's g(r) on its grid ``r`` against the experimental curve at the nearest temperature: the error
    (:data:`EXPERIMENT_ERROR_DEFINITION`, the same L1 definition as against the teacher), the experiment's first
    peak (same parabola fit, on its own 0.05 A grid) and the model's peak shift and height difference. Where no
    curve is within ``max_gap_K`` (or none for the element) the error is None and ``experiment_note`` says why."""
    curves = experimental_curves(element) if curves is None else curves
    none = ExperimentComparison(experiment_definition=EXPERIMENT_ERROR_DEFINITION, experiment_source=EXPERIMENT_CITATION)
    if not curves:
        return replace(none, experiment_note=f"no experimental g(r) of {element} is packaged")
    t_exp = min(curves, key=lambda t: (abs(t - float(temperature_K)), t))
    if max_gap_K is not None and abs(t_exp - float(temperature_K)) > float(max_gap_K):
        return replace(none, experiment_note=f"the nearest experimental temperature ({t_exp:g} K) is more than "
                                             f"rdf.experiment.max_temperature_gap_K = {max_gap_K:g} K from the "
                                             f"run's {float(temperature_K):g} K")
    r_e, g_e = (read_experiment(curves[t_exp]) if not isinstance(curves[t_exp], tuple) else curves[t_exp])
    r, g = np.asarray(r, float), np.asarray(g, float)
    inside = (r >= r_e.min()) & (r <= r_e.max())
    g_on_r = np.interp(r[inside], r_e, g_e)
    dr = float(r[1] - r[0]) if r.size > 1 else 2.0 * float(r[0])
    err = float(np.sum(np.abs(g[inside] - g_on_r)) * dr)
    pr, pg = first_peak(r_e, g_e, peak_halfwidth_A)
    mr, mg = first_peak(r, g, peak_halfwidth_A)
    return replace(none, error_vs_experiment=finite_or_none(err), experiment_temperature_K=t_exp,
                   experiment_first_peak_r_A=finite_or_none(pr), experiment_first_peak_g=finite_or_none(pg),
                   first_peak_r_shift_vs_experiment_A=finite_or_none(mr - pr),
                   first_peak_g_diff_vs_experiment=finite_or_none(mg - pg),
                   experiment_temperature_gap_K=float(temperature_K) - t_exp,
                   experiment_note="" if inside.all() else
                   f"{int((~inside).sum())} bins beyond the experiment's r range left out")


# ----------------------------------------------------------------------------------------------------
# MD
# ----------------------------------------------------------------------------------------------------
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
    #: the MD engine that ran it (:mod:`tsmlip.md.engines`)
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


class _Blowup(RuntimeError):
    pass


def run_liquid_md(calc, settings: dict, log=None, *, model=None, engine: str = "ase", device="cpu",
                  pair_finder: str = "cell_list") -> LiquidRun:
    """NVT Langevin MD of the liquid (``settings`` = the resolved ``rdf:`` config section): optional melt at
    ``melt_temperature_K``, equilibration and production at ``temperature_K``; a frame is kept every
    ``sample_interval`` production steps.

    The potential is the ASE calculator ``calc`` (``ase`` engine; the reference potential), or, with
    ``calc`` None, the trained ``model`` (a model.pt) on ``engine`` (``ase`` or ``torch``, see
    :mod:`tsmlip.md.engines`; ``pair_finder`` for the torch engine) on ``device``. The start
    (:func:`tsmlip.md.system.liquid_system`) and every random number come from ``seed``.

    The run stops early (``stable`` False) when positions or forces stop being finite or the
    instantaneous temperature exceeds ``blowup_temperature_K``; the frames kept so far are returned.
    A kept frame with two atoms closer than ``collapse_distance_A`` also marks the run unstable (the MD
    goes on: the collapsed structure shows in g(r) and its error). A progress line goes to ``log``
    (default stderr) every ``progress_every`` steps.
    """
    from ase.neighborlist import neighbor_list

    from .md.engines import Langevin, make_engine

    s = settings
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    stages = [("melt", float(s["melt_temperature_K"]), int(s["melt_steps"])),
              ("equilibrate", float(s["temperature_K"]), int(s["equilibration_steps"])),
              ("production", float(s["temperature_K"]), int(s["production_steps"]))]
    stages = [st for st in stages if st[2] > 0]
    if not stages or stages[-1][0] != "production":
        raise ValueError("rdf.production_steps must be at least 1")
    rng = np.random.default_rng(int(s["seed"]))
    atoms = liquid_system(s, stages[0][1], rng)
    check_cutoff(atoms.cell, s["r_max_A"])
    thermostat = Langevin(temperature_K=stages[0][1], friction_per_fs=float(s["friction_per_fs"]), rng=rng,
                          fix_com=True)
    if calc is not None:
        engine = "ase"
    eng = make_engine(engine, model, atoms, device, float(s["timestep_fs"]), skin_A=float(s["skin_A"]),
                      pair_finder=pair_finder, dtype=None, thermostat=thermostat, calc=calc)

    interval, every = int(s["sample_interval"]), int(s["progress_every"])
    msd: dict[str, float] = {}
    closest = [math.inf]
    collapse = float(s["collapse_distance_A"])
    total = sum(st[2] for st in stages)
    state = {"stage": stages[0][0], "start": 0}
    frames, temps, collapsed = [], [], []
    t0 = time.perf_counter()

    def observe():
        done = eng.nsteps
        step = done - state["start"]
        temp = eng.temperature()
        if not (np.all(np.isfinite(eng.positions())) and np.all(np.isfinite(eng.forces()))):
            raise _Blowup(f"non-finite positions or forces at {state['stage']} step {step}")
        if not temp < s["blowup_temperature_K"]:
            raise _Blowup(f"temperature {temp:.0f} K above blowup_temperature_K at "
                          f"{state['stage']} step {step}")
        if state["stage"] == "production":
            temps.append(temp)
            if step % interval == 0:
                frame = eng.snapshot()
                frames.append(frame)
                d = neighbor_list("d", frame, max(collapse, 3.0))
                if len(d):
                    closest[0] = min(closest[0], float(np.min(d)))
                    if collapse > 0 and np.min(d) < collapse:
                        collapsed.append(float(np.min(d)))
        if done % every == 0 or done == total:
            el = time.perf_counter() - t0
            log(f"[rdf-md] step {done}/{total} ({state['stage']}) T={temp:7.1f} K "
                f"Epot/atom={eng.potential_energy() / len(atoms):.4f} eV frames={len(frames)} "
                f"{el:.1f}s ({1e3 * el / done:.1f} ms/step)")

    stable, message = True, ""
    try:
        for name, temp_K, n_steps in stages:
            state["stage"], state["start"] = name, eng.nsteps
            start = eng.positions()  # unwrapped (neither engine wraps; FixCom holds the centre)
            eng.set_temperature(temp_K)
            log(f"[rdf-md] {name}: {n_steps} steps at {temp_K:g} K")
            eng.run(n_steps, observe)
            msd[name] = float(np.mean(np.sum((eng.positions() - start) ** 2, axis=1)))
    except _Blowup as exc:
        stable, message = False, str(exc)
        log(f"[rdf-md] UNSTABLE: {message}; {len(frames)} production frames kept")
    if collapsed:
        stable = False
        message = "; ".join(filter(None, [message, (
            f"{len(collapsed)} of {len(frames)} frames have atoms closer than collapse_distance_A "
            f"(closest {min(collapsed):.3f} A)")]))
        log(f"[rdf-md] UNSTABLE: {message}")
    wall = time.perf_counter() - t0
    return LiquidRun(frames=frames, n_atoms=len(atoms), cell=np.array(atoms.cell), stable=stable,
                     steps_done=int(eng.nsteps), wall_time_s=wall,
                     simulated_time_fs=eng.nsteps * s["timestep_fs"],
                     mean_temperature_K=float(np.mean(temps)) if temps else math.nan,
                     message=message, stages=[list(st) for st in stages], msd_A2=msd,
                     min_pair_distance_A=closest[0], engine=eng.name)


def reference_calculator(source: str):
    """The reference potential of the embedded data (ASE EMT); None for external data."""
    if source == "emt":
        from ase.calculators.emt import EMT
        return EMT()
    return None


# ----------------------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------------------
def write_curve(path: str | Path, r: np.ndarray, g: np.ndarray) -> None:
    """g(r) as CSV with columns r_A, g (atomic write: a killed job leaves no partial file)."""
    buf = io.StringIO()
    np.savetxt(buf, np.column_stack([r, g]), delimiter=",", header="r_A,g", comments="", fmt="%.8g")
    atomic_write_text(path, buf.getvalue())


def read_curve(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(r_A, g) arrays from a CSV written by :func:`write_curve`."""
    data = np.genfromtxt(path, delimiter=",", names=True)
    if data.dtype.names != ("r_A", "g"):
        raise ValueError(f"{path}: expected columns r_A,g, found {data.dtype.names}")
    return np.atleast_1d(data["r_A"]).astype(float), np.atleast_1d(data["g"]).astype(float)


# ----------------------------------------------------------------------------------------------------
# sub-commands
# ----------------------------------------------------------------------------------------------------
def main_md(argv: list[str] | None = None) -> int:
    """``tsmlip rdf-md``: liquid MD with one model (or the reference potential) -> g(r) CSV + run JSON."""
    from .cli import require, step_parser

    p = step_parser("rdf-md", main_md.__doc__ + "\n\nThe rdf: section (its experiment: part is not read); "
                    "--reference also reads data.source, --calculator foundation.calculator (chgnet, emt or "
                    "{factory, kwargs}; docs/foundation.md), on rdf.device.", ("rdf",))
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--model", help="model.pt of a trained model")
    who.add_argument("--reference", action="store_true", help="run the data's reference potential instead")
    who.add_argument("--calculator", action="store_true", help="run the teacher calculator instead")
    p.add_argument("--model-id", default=None, help="name written into the JSON (default: the path)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch_threads)")
    p.add_argument("--data-provenance", default=None,
                   help="with --reference or --calculator: the dataset's provenance.json (its species name the "
                        "element when rdf.element is null)")
    p.add_argument("--out-csv", required=True, help="g(r) output, columns r_A,g")
    p.add_argument("--out-json", required=True, help="run information and first peak")
    a = p.parse_args(argv)
    cfg = a.config_json
    require(p, cfg, ["data.source"] if a.reference else ["foundation.calculator"] if a.calculator else [])
    s = cfg["rdf"]
    from .elements import ElementError, model_species

    try:
        if a.reference or a.calculator:
            species = json.loads(Path(a.data_provenance).read_text())["species"] if a.data_provenance else None
            s = resolve_liquid(s, species, trained_on=f"the data ({a.data_provenance or 'no --data-provenance'})")
        else:
            from .model import check_model_id

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
    elif a.calculator:
        from .foundation import CalculatorError, make_calculator

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

        from .md.engines import set_kernels
        from .model import device_description, resolve_device

        torch.set_num_threads(int(a.threads or s["torch_threads"]))
        dev = resolve_device(s["device"])
        engine, model = s["engine"], a.model
        pair_finder = s["pair_finder"][dev.type] if engine == "torch" else None
        kernels = set_kernels(s["kernels"], dev)
        device, name = device_description(dev), a.model_id or a.model
    print(f"[rdf-md] {name} on {device}, engine {engine}"
          + (f" (pairs: {pair_finder})" if pair_finder else "") + (f", hippynn kernels {kernels}" if kernels else ""),
          file=sys.stderr, flush=True)

    run = run_liquid_md(calc, s, model=model, engine=engine, device=dev, pair_finder=pair_finder or "cell_list")
    t = time.perf_counter()
    r, g = rdf_of_frames(run.frames, s["r_max_A"], s["n_bins"])
    rdf_time = time.perf_counter() - t
    r_peak, g_peak = first_peak(r, g, s["peak_fit_halfwidth_A"])
    write_curve(a.out_csv, r, g)
    d_nn = nearest_neighbour_distance(s["density_g_cm3"], s["element"])
    melt = melt_indicator(run.msd_A2["production"], d_nn) if "production" in run.msd_A2 else math.nan
    melted = bool(melt >= s["melt_min_msd_ratio"])
    if not melted:
        log_line = (f"NOT MELTED: production-stage MSD is {melt:.3f} d_nn^2 (< rdf.melt_min_msd_ratio = "
                    f"{s['melt_min_msd_ratio']}): the system did not diffuse like a liquid")
        print(f"[rdf-md] {log_line}", file=sys.stderr, flush=True)
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
        pair_finder=pair_finder if run.engine == "torch" else ("ase.neighborlist" if model else None),
        calculator=cinfo if a.calculator else None,
        hippynn_kernels=kernels,
        seed=int(s["seed"]),
        settings=s,
    ).to_json()
    atomic_write_json(a.out_json, info, indent=2)
    print(f"[rdf-md] done: {len(run.frames)} frames, first peak r={r_peak:.3f} A g={g_peak:.3f}, "
          f"MD {run.wall_time_s:.1f}s, stable={run.stable}, melt indicator {melt:.3f} (melted={melted}), "
          f"closest pair {run.min_pair_distance_A:.3f} A", file=sys.stderr, flush=True)
    return 0


def _check_grid(r: np.ndarray, r_other: np.ndarray, what: str) -> None:
    if r.shape != r_other.shape or not np.allclose(r, r_other):
        raise ValueError(f"g(r) curves on different r grids ({what}); rerun rdf-md with one rdf config")


def teacher_mean_curve(paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Mean g(r) of the teacher curves (same grid required)."""
    curves = [read_curve(p) for p in paths]
    r = curves[0][0]
    for p, (ri, _) in zip(paths, curves):
        _check_grid(r, ri, f"{p} vs {paths[0]}")
    return r, np.mean([gi for _, gi in curves], axis=0)


def main_error(argv: list[str] | None = None) -> int:
    """``tsmlip rdf-error``: a model's g(r) error against the teachers' mean g(r) and the reference's."""
    from .cli import require, step_parser

    p = step_parser("rdf-error", main_error.__doc__ + "\n\nWith rdf.experiment.enabled also against the experimental "
                    "g(r) at the nearest temperature (none farther than rdf.experiment.max_temperature_gap_K), first "
                    "peaks fitted within rdf.peak_fit_halfwidth_A.", ("rdf.experiment.enabled",))
    p.add_argument("--model-id", required=True)
    p.add_argument("--rdf", required=True, help="the model's rdf.csv")
    p.add_argument("--info", required=True, help="the model's rdf_md.json")
    p.add_argument("--teacher-rdf", nargs="+", required=True, help="rdf.csv of every teacher seed")
    p.add_argument("--teacher-ids", nargs="+", required=True, help="ids of those teachers, same order")
    p.add_argument("--reference-rdf", default=None, help="the reference potential's rdf.csv (if any)")
    p.add_argument("--out", required=True, help="rdf_error.json")
    a = p.parse_args(argv)
    if len(a.teacher_rdf) != len(a.teacher_ids):
        p.error("--teacher-rdf and --teacher-ids need the same number of entries")
    rc = a.config_json["rdf"]
    experiment = rc["experiment"]["enabled"]
    if experiment:
        require(p, a.config_json, ("rdf.experiment.max_temperature_gap_K", "rdf.peak_fit_halfwidth_A"))

    r, g = read_curve(a.rdf)
    info = json.loads(Path(a.info).read_text())
    r_t, g_t = teacher_mean_curve(a.teacher_rdf)
    _check_grid(r, r_t, f"{a.rdf} vs the teachers' g(r)")
    err_ref = None
    if a.reference_rdf:
        r_ref, g_ref = read_curve(a.reference_rdf)
        _check_grid(r, r_ref, f"{a.rdf} vs {a.reference_rdf}")
        err_ref = finite_or_none(rdf_error(r, g, g_ref))
    out = RdfError(
        model_id=a.model_id,
        error_vs_teacher=finite_or_none(rdf_error(r, g, g_t)),
        error_vs_reference=err_ref,
        definition=ERROR_DEFINITION,
        teacher_ids=list(a.teacher_ids),
        outcome=LiquidOutcome.of_rdf_md(info),
        experiment=compare_with_experiment(r, g, info["temperature_K"], info.get("element", "Al"),
                                           rc["experiment"]["max_temperature_gap_K"], rc["peak_fit_halfwidth_A"])
        if experiment else None,
        density=LiquidDensity(density_g_cm3=info.get("density_g_cm3"), density_source=info.get("density_source"))
        if experiment else None,
    ).to_json()
    atomic_write_json(a.out, out, indent=2)
    print(f"[rdf-error] {a.model_id}: vs teacher {out['error_vs_teacher']}, "
          f"vs reference {out['error_vs_reference']}"
          + (f", vs experiment {out['error_vs_experiment']}" if experiment else ""), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main_md())
