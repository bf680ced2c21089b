#!/usr/bin/env python
"""Do the MD timings rank the architectures the same way from run to run? Times one model per architecture of a
results folder (or the model files given) several times, each time both ways: one model after the other (each
its own `time_md`, as the workflow timed before) and interleaved (`time_md_interleaved`, one job for all, as
`rule md_timing` does now), and prints each trial's us/atom-step (wall, and CPU time of the process), the order
of the models and how many trials agree with the order of the median over all trials. Run it on a loaded machine
to see the point: a load that comes and goes lands on one model when they are timed one after the other.

    python scripts/bench_md_rank.py --results results --trials 3 --engine ase
    python scripts/bench_md_rank.py --model a/model.pt b/model.pt --trials 2 --repeats 5
    python scripts/bench_md_rank.py --smoke        # seconds: two tiny random models, 32 atoms, one trial

Not a test: it prints a table with the machine and the load average.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))


def one_per_architecture(results: Path) -> list[Path]:
    """The first model (by id) of every architecture under ``results``/models."""
    seen = {}
    for p in sorted((results / "models").glob("*/*/seed*/model.pt")):
        seen.setdefault(p.parent.parent.name, p)
    return [seen[a] for a in sorted(seen)]


def smoke_models(folder: Path) -> list[Path]:
    """Two tiny random-weight models (w4-s4-l1, w6-s4-l1) in ``folder``."""
    from tsmlip.config import load_config
    from tsmlip.ids import Arch
    from tsmlip.core.model import build_model, save_model

    network = load_config(ROOT / "config" / "config.yaml")["network"]
    paths = []
    for arch in (Arch(4, 4, 1), Arch(6, 4, 1)):
        path = folder / arch.tag / "seed0" / "model.pt"
        path.parent.mkdir(parents=True)
        save_model(build_model(arch, network, seed=0), path)
        paths.append(path)
    return paths


def order(values: dict[str, float]) -> tuple[str, ...]:
    return tuple(sorted(values, key=values.get))


def main(argv=None) -> int:
    import torch

    from tsmlip.config import load_config
    from tsmlip.core.md.hardware import hardware_info
    from tsmlip.md.timing import time_md, time_md_interleaved

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, help="a results folder: one model per architecture")
    p.add_argument("--model", nargs="+", type=Path, help="model files instead")
    p.add_argument("--engine", default="ase")
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--repeats", type=int, help="timed blocks per model (default: md.timing.repeats)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--apart", type=float, default=1.15,
                   help="pairs of models whose median times differ by this factor or more are counted for flips")
    p.add_argument("--smoke", action="store_true", help="seconds: two tiny random models, 32 atoms, one trial")
    a = p.parse_args(argv)
    md = load_config(ROOT / "config" / "config.yaml")["md"]
    if a.smoke:
        import tempfile

        a.model = smoke_models(Path(tempfile.mkdtemp(prefix="bench-md-rank-")))
        a.trials, a.engine = 1, "torch"
        md["timing"].update(n_atoms=32, steps=2, warmup_steps=1, repeats=2)
    models = a.model or one_per_architecture(a.results)
    if not models:
        p.error("no models: give --results with trained models or --model")
    if a.repeats:
        md["timing"]["repeats"] = a.repeats
    torch.set_num_threads(a.threads)
    dev = torch.device("cpu")
    names = [m.parent.parent.name if m.parent.name.startswith("seed") else str(m) for m in models]
    rows = []
    for trial in range(a.trials):
        seq = {n: time_md(m, a.engine, md, dev) for n, m in zip(names, models)}
        inter = dict(zip(names, time_md_interleaved(models, a.engine, md, dev)))
        for how, recs in (("one after the other", seq), ("interleaved", inter)):
            rows.append((trial, how, {n: r["us_per_atom_step"] for n, r in recs.items()},
                         {n: r["cpu_us_per_atom_step"] for n, r in recs.items()}, os.getloadavg()[0]))
    hw = hardware_info(dev)["cpu"]
    print(f"# {hw.get('model', 'CPU')}, {hw.get('logical_cores', '?')} cores, {a.threads} torch thread(s); engine "
          f"{a.engine}, {md['timing']['n_atoms']} atoms, {md['timing']['repeats']} blocks of "
          f"{md['timing']['steps']} steps per model; us per atom-step, median block (wall / CPU)")
    print("| trial | timed | " + " | ".join(names) + " | order (fastest first) | load |")
    print("|---" * (len(names) + 4) + "|")
    for trial, how, wall, cpu, load in rows:
        cells = " | ".join(f"{wall[n]:.1f} / {cpu[n]:.1f}" for n in names)
        print(f"| {trial + 1} | {how} | {cells} | {' < '.join(order(wall))} | {load:.1f} |")
    for how in ("one after the other", "interleaved"):
        walls = [w for _t, h, w, _c, _l in rows if h == how]
        median = {n: statistics.median(w[n] for w in walls) for n in names}
        agree = sum(order(w) == order(median) for w in walls)
        apart = [(x, y) for i, x in enumerate(names) for y in names[i + 1:]
                 if max(median[x], median[y]) >= a.apart * min(median[x], median[y])]
        flips = sum((w[x] - w[y]) * (median[x] - median[y]) < 0 for w in walls for x, y in apart)
        print(f"{how}: {agree} of {len(walls)} trials rank the models as their medians do "
              f"({' < '.join(order(median))}); pairs whose medians differ by {100 * (a.apart - 1):.0f} % or more: "
              f"{flips} of {len(apart) * len(walls)} pair-trials ranked the other way")
    return 0


if __name__ == "__main__":
    sys.exit(main())
