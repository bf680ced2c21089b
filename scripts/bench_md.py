#!/usr/bin/env python
"""Benchmark the MD engines (ASE VelocityVerlet + HippynnCalculator vs hippynn's all-torch driver; with
``--engines ... lammps torchsim`` also the deployed model in LAMMPS and TorchSim, docs/deploy.md).

Times a teacher and a student model at several system sizes and prints time per MD step per atom of each
engine and the ratio ase / torch, with the device's name. Without model files, random-weight models of the
paper's teacher and smallest student (config/paper.yaml: teacher, and the smallest width, sensitivities and
layers of its sweep) are built with the network settings of config/config.yaml (speed does not depend on
the weights' values; random weights do not conserve energy well: "!" marks runs flagged unstable).

    python scripts/bench_md.py                                   # GPU if there is one, else CPU
    python scripts/bench_md.py --teacher results/models/teacher/w48-s16-l3/seed0/model.pt \\
        --student results/models/student/w16-s4-l1/seed1/model.pt --sizes 500 4000 48000
    python scripts/bench_md.py --pair-finders cell_list kdtree   # compare the torch engine's pair search
    python scripts/bench_md.py --smoke                           # seconds: tiny models, 32 atoms, CPU
    python scripts/bench_md.py --model results/models/teacher/w12-s8-l2/seed0/model.pt --sizes 500 \
        --threads 1 --engines ase torch lammps torchsim --rounds 2   # the four engines on one model

Not a test: it prints a table (and writes every record with --out). Settings not given here come from the
``md:`` section of the config (``--config`` overlays).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

BASE_CONFIG = ROOT / "config" / "config.yaml"
PAPER_CONFIG = ROOT / "config" / "paper.yaml"  # an overlay on BASE_CONFIG


#: --smoke: tiny random-weight models, one tiny system on the CPU, one short block (checks the script runs)
SMOKE = dict(sizes=[32], steps=2, warmup=1, repeats=1, threads=1, device="cpu")


def smoke_archs() -> dict:
    from tsmlip.ids import Arch

    return {"teacher": Arch(6, 4, 1), "student": Arch(4, 4, 1)}


def paper_archs() -> dict:
    """Random-weight stand-ins when no model files are given: the teacher of config/paper.yaml and the
    smallest student of its sweep."""
    from tsmlip.config import load_config
    from tsmlip.model_ids import teacher_arch
    from tsmlip.ids import Arch

    paper = load_config(BASE_CONFIG, PAPER_CONFIG)
    sw = paper["sweep"]
    smallest = Arch(min(sw["width"]), min(sw["n_sensitivities"]), min(sw["n_atom_layers"]))
    return {"teacher": teacher_arch(paper), "student": smallest}


def default_sizes(device_type: str) -> list[int]:
    """CPU: two small systems; GPU: up to the paper's system (md.timing.n_atoms of config/paper.yaml)."""
    if device_type != "cuda":
        return [256, 500]
    from tsmlip.config import load_config

    return [500, 4000, int(load_config(BASE_CONFIG, PAPER_CONFIG)["md"]["timing"]["n_atoms"])]


def random_model(arch, network_cfg, path):
    from tsmlip.core.model import build_model, save_model

    save_model(build_model(arch, network_cfg, seed=0), path)
    return path


def bench_one(model_path, engine, n_atoms, md_cfg, device, pair_finder=None):
    """One timing record, or an ``{"error": ...}`` row when the size does not fit or the run fails."""
    import torch

    from tsmlip.config import deep_merge
    from tsmlip.md.timing import time_md

    cfg = deep_merge(md_cfg, {"timing": {"n_atoms": int(n_atoms)}})
    if pair_finder:
        cfg["pair_finder"][device.type] = pair_finder
    try:
        return time_md(model_path, engine, cfg, device)
    except (torch.cuda.OutOfMemoryError, MemoryError) as exc:
        return {"error": f"out of memory ({type(exc).__name__})"}
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--teacher", help="teacher model.pt (default: random weights, config/paper.yaml's teacher)")
    p.add_argument("--student", help="student model.pt (default: random weights, paper's smallest student)")
    p.add_argument("--sizes", type=int, nargs="+",
                   help="atom counts (default: 256 500 on CPU; 500 4000 and paper md.timing.n_atoms on GPU)")
    p.add_argument("--model", help="time this one model.pt only (instead of a teacher and a student)")
    p.add_argument("--engines", nargs="+", default=["ase", "torch"], choices=["ase", "torch", "lammps", "torchsim"])
    p.add_argument("--rounds", type=int, default=1, help="time every engine this many times, in turn (one row each)")
    p.add_argument("--pair-finders", nargs="+", choices=["vesin", "cell_list", "kdtree", "periodic"],
                   help="torch engine pair searches to compare (default: md.pair_finder of the device)")
    p.add_argument("--steps", type=int, help="timed steps per repeat (default: md.timing.steps)")
    p.add_argument("--warmup", type=int, help="untimed steps (default: md.timing.warmup_steps)")
    p.add_argument("--repeats", type=int, help="timed repeats, median reported (default: md.timing.repeats)")
    p.add_argument("--threads", type=int, help="CPU threads (default: md.timing.torch_threads)")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:1")
    p.add_argument("--config", nargs="*", default=[], help="config overlays on config/config.yaml")
    p.add_argument("--out", help="write all records to this JSON file")
    p.add_argument("--verbose", action="store_true", help="show the progress lines of every run")
    p.add_argument("--smoke", action="store_true", help="seconds: tiny random models, 32 atoms, CPU, one short block")
    args = p.parse_args(argv)
    if args.smoke:
        if args.teacher or args.student:
            p.error("--smoke builds its own tiny models: drop --teacher / --student")
        for key, value in SMOKE.items():
            setattr(args, key, getattr(args, key) or value)

    from tsmlip.config import load_config
    from tsmlip.core.md import common
    from tsmlip.core.md.common import setup_device
    from tsmlip.core.md.hardware import device_name
    from tsmlip.core.model import read_model_payload

    common.QUIET = not args.verbose

    cfg = load_config(BASE_CONFIG, *args.config)
    md = cfg["md"]
    for key, value in (("steps", args.steps), ("warmup_steps", args.warmup), ("repeats", args.repeats),
                       ("torch_threads", args.threads)):
        if value is not None:
            md["timing"][key] = value
    device = setup_device(md, args.device)
    sizes = args.sizes or default_sizes(device.type)
    finders = args.pair_finders or [md["pair_finder"][device.type]]
    tmp = tempfile.TemporaryDirectory()
    archs = smoke_archs() if args.smoke else paper_archs()
    models = {}
    for role, given in ((("model", args.model),) if args.model else
                        (("teacher", args.teacher), ("student", args.student))):
        models[role] = (Path(given) if given else
                        random_model(archs[role], cfg["network"], Path(tmp.name) / f"{role}.pt"))

    print(f"# device: {device} ({device_name(device)}), torch threads "
          f"{md['timing']['torch_threads'] if device.type == 'cpu' else '-'}; "
          f"{md['timing']['warmup_steps']} warm-up + {md['timing']['repeats']} x {md['timing']['steps']} steps, "
          f"dt {md['timing']['timestep_fs']} fs, skin {md['skin_A']} A", flush=True)
    variants = [(e, None) for e in args.engines if e == "ase"]
    variants += [("torch", f) for f in finders if "torch" in args.engines]
    variants += [(e, None) for e in ("lammps", "torchsim") if e in args.engines]
    header = f"{'model':<28} {'atoms':>7} " + " ".join(f"{_label(e, f):>18}" for e, f in variants)
    has_ratio = "ase" in args.engines and "torch" in args.engines
    header += f" {'ase/torch':>10}" if has_ratio else ""
    print(header + "   (us per step per atom)", flush=True)
    records = []
    for role, path in models.items():
        stored_id = (read_model_payload(path).get("meta") or {}).get("model_id")  # the id it was trained as
        name = f"{role}:" + ((stored_id or path.name) if getattr(args, role) else f"{archs[role].tag} (random)")
        for n, r in ((n, r) for n in sizes for r in range(args.rounds)):
            cells = {}
            for engine, finder in variants:
                rec = bench_one(path, engine, n, md, device, finder)
                rec.update(role=role, model=str(path), bench_engine=_label(engine, finder), bench_atoms=n,
                           bench_round=r + 1)
                records.append(rec)
                cells[(engine, finder)] = rec
            line = f"{name:<28} {n:>7} " + " ".join(f"{_cell(cells[v]):>18}" for v in variants)
            if has_ratio:
                ase = cells[("ase", None)].get("us_per_atom_step")
                torch_us = cells[("torch", finders[0])].get("us_per_atom_step")
                line += f" {ase / torch_us:>10.2f}" if ase and torch_us else f" {'-':>10}"
            print(line, flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(records, indent=1, default=str) + "\n")
        print(f"# records -> {args.out}")
    tmp.cleanup()
    return 0


def _label(engine, finder):
    return engine if finder is None or engine != "torch" else f"torch[{finder}]"


def _cell(rec):
    if "error" in rec:
        return "OOM" if "memory" in rec["error"] else "error"
    mark = "" if rec["stable"] else "!"
    return f"{rec['us_per_atom_step']:.3f}{mark}"


if __name__ == "__main__":
    sys.exit(main())
