"""MD cost of the teacher calculator itself (foundation.calculator, docs/foundation.md): time per MD step per atom
and memory per atom, by the protocol of the models' (:mod:`.timing`, :mod:`.probe`) on a smaller system.

Timing: the same thermalised crystal of the data's element (:func:`tsmlip.core.md.system.crystal_system`, ``md:``
settings), NVE velocity Verlet on the ``ase`` engine with the calculator, ``warmup_steps`` untimed steps, then
``repeats`` timed blocks of ``steps`` steps; the median block gives ``us_per_atom_step``. ``foundation.cost``
sets the (smaller) size and step counts; the record says so (``protocol``, ``models_n_atoms``).

Memory: one energy + forces call at each of ``foundation.cost.memory_sizes`` atoms: on the CPU in a child
forked for each size (a 4-atom call first, then the kernel's high-water mark reset, as the probe does), the peak
resident memory above the child's baseline; on CUDA ``torch.cuda.max_memory_allocated`` after a reset. Memory per atom is
the least-squares slope over the sizes (``memory_per_atom_slope_bytes``). No max-atoms search is run (the
calculator's largest system is not probed); ``memory_per_atom_bytes`` is the slope, as for the models' slope column.

``tsmlip calculator-cost --config-json '{"md": ..., "foundation": {"calculator": "chgnet", "cost": ..., "device":
"cpu"}}' --species-from data/provenance.json --out foundation/cost.json``
"""
from __future__ import annotations

import gc
import json
import statistics
import sys
import time

from ..records import CalculatorCost, DatasetProvenance
from ..core.md.common import finite_or_none, log, write_json


def _peak_bytes_of(fn, device: str) -> int:
    """Peak memory (bytes) that ``fn()`` adds above the current level (CPU: resident set; CUDA: torch's)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated() - base)
    from .probe import _peak_rss_bytes, _reset_peak_rss, _rss_bytes

    gc.collect()
    hwm = _reset_peak_rss()
    rss0 = _rss_bytes()
    fn()
    return max(0, _peak_rss_bytes(hwm) - rss0)


def _force_call(calc, system, n_atoms: int):
    a = system.atoms(n_atoms)
    a.calc = calc
    a.get_potential_energy()
    a.get_forces()
    return len(a)


def _memory_row(calc, system, n_atoms: int, device: str) -> dict:
    """Peak memory of one energy + forces call on ``n_atoms`` atoms. CPU: in a child forked for this size (as the
    models' probe does: a small call first, then the kernel's high-water mark reset, then the call), so that
    what earlier sizes left allocated does not hide this one's; CUDA: in this process (torch's allocator)."""
    import os

    if device.startswith("cuda"):
        n = [0]
        peak = _peak_bytes_of(lambda: n.__setitem__(0, _force_call(calc, system, n_atoms)), device)
        return {"n_atoms": n[0], "ok": True, "peak_bytes": peak}
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(rfd)
        try:
            _force_call(calc, system, 4)
            n = [0]
            peak = _peak_bytes_of(lambda: n.__setitem__(0, _force_call(calc, system, n_atoms)), device)
            result = {"n_atoms": n[0], "ok": True, "peak_bytes": peak}
        except BaseException as exc:  # noqa: BLE001 - reported, never raised in the child
            result = {"n_atoms": n_atoms, "ok": False, "peak_bytes": None, "reason": f"{type(exc).__name__}: {exc}"}
        with os.fdopen(wfd, "w") as fh:
            fh.write(json.dumps(result))
        os._exit(0)
    os.close(wfd)
    with os.fdopen(rfd) as fh:
        text = fh.read()
    os.waitpid(pid, 0)
    return json.loads(text) if text else {"n_atoms": n_atoms, "ok": False, "peak_bytes": None,
                                          "reason": "the child died without a result"}


def calculator_cost(spec, md_cfg: dict, cost_cfg: dict, species, device: str = "cpu") -> dict:
    from ..foundation import make_calculator
    from ..core.md.engines import make_engine
    from ..core.md.hardware import hardware_info
    from .probe import memory_slope
    from ..core.md.system import crystal_system
    from .timing import timed_blocks

    import torch

    system = crystal_system(md_cfg, species, trained_on="the data")
    calc, info = make_calculator(spec, device)
    dev = info["device"]
    n_atoms, steps, warmup, repeats = (int(cost_cfg[k]) for k in ("n_atoms", "steps", "warmup_steps", "repeats"))
    dt_fs = float(md_cfg["timing"]["timestep_fs"])
    atoms = system.atoms(n_atoms)
    t0 = time.perf_counter()
    eng = make_engine("ase", None, atoms, torch.device(dev), dt_fs, skin_A=md_cfg["skin_A"], calc=calc)
    setup_s = time.perf_counter() - t0
    n_atoms = len(eng.atoms)
    log(f"[calculator-cost] {info['name']} on {dev}: {n_atoms} atoms, setup {setup_s:.1f} s")
    blocks = timed_blocks(eng, n_atoms, dt_fs, warmup, steps, repeats, "calculator-cost")
    median_us = statistics.median(blocks.per_atom_us)
    sizes = []
    for n in cost_cfg["memory_sizes"]:
        row = _memory_row(calc, system, int(n), dev)
        sizes.append(row)
        log(f"[calculator-cost] memory: {row['n_atoms']} atoms, peak +{row['peak_bytes'] / 2**20:.1f} MB")
    slope, intercept = memory_slope(sizes)
    models_n = int(md_cfg["timing"]["n_atoms"])
    return CalculatorCost(
        calculator=info,
        engine="ase",
        device="cuda" if dev.startswith("cuda") else "cpu",
        n_atoms=n_atoms, n_steps=steps, warmup_steps=warmup, repeats=repeats, timestep_fs=dt_fs,
        models_n_atoms=models_n, models_n_steps=int(md_cfg["timing"]["steps"]),
        protocol=(f"md.timing protocol (NVE velocity Verlet, ase engine, thermalised {system.crystal.element} "
                  f"{system.crystal.crystal_structure} crystal at {system.temperature_K:g} K) on {n_atoms} atoms and "
                  f"{repeats} x {steps} steps (foundation.cost), smaller than the models' {models_n} atoms and "
                  f"{md_cfg['timing']['repeats']} x {md_cfg['timing']['steps']} steps: the calculator is slow"),
        us_per_atom_step=median_us,
        us_per_atom_step_all=blocks.per_atom_us,
        energy_drift_eV_per_atom_per_ps=finite_or_none(blocks.drift),
        setup_s=setup_s,
        memory_sizes=sizes,
        memory_per_atom_slope_bytes=finite_or_none(slope) if slope is not None else None,
        memory_intercept_bytes=finite_or_none(intercept) if intercept is not None else None,
        memory_per_atom_bytes=finite_or_none(slope) if slope is not None else None,
        memory_definition=("least-squares slope of the peak memory of one energy+forces call over "
                           "memory_sizes (CPU: resident set above the baseline; CUDA: torch's allocator); "
                           "no max-atoms search"),
        element=system.crystal.element,
        torch_threads=torch.get_num_threads() if not dev.startswith("cuda") else None,
        hardware=hardware_info(torch.device(dev)),
    ).to_json()


def main(argv: list[str] | None = None) -> int:
    from ..cli import step_parser

    p = step_parser("calculator-cost", __doc__.split("\n\n")[0])
    p.add_argument("--species-from", required=True, help="the dataset's provenance.json (its species)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    from ..foundation import CalculatorError

    fc = a.config_json["foundation"]
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    species = DatasetProvenance.read(a.species_from).species
    try:
        rec = calculator_cost(fc["calculator"], a.config_json["md"], fc["cost"], species, fc["device"])
    except CalculatorError as e:
        log(f"tsmlip calculator-cost: error: {e}")
        return 1
    from ..provenance import json_with, record

    write_json(a.out, json_with(rec, record("calculator-cost", a.config_json, {"species": a.species_from})))
    log(f"[calculator-cost] {rec['us_per_atom_step']:.0f} us/atom/step, memory "
        f"{rec['memory_per_atom_bytes']} bytes/atom -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
