"""Seconds per model of the RDF liquid: today's per-model ASE liquid (``tsmlip rdf-md``, ``rdf.engine: ase``)
against the stacked liquid (``tsmlip rdf-md-stack``) with stacks of several sizes (docs/md.md).

The liquid of the ``rdf:`` section of config/config.yaml (256 Al atoms, all stages) or, with ``--steps``, its
production stage only for that many steps; frames and checks as in a real run. The models are the given
model.pt files (one architecture), repeated to fill a stack. Rounds interleave the variants after a short warm-up
of each. Both clocks are printed: the process's CPU time (fair on a shared machine) and the wall time.

    python scripts/bench_liquid_stack.py A.pt [B.pt ...] [--sizes 1 4 16] [--steps 200] [--rounds 1]
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from tsmlip import rdf  # noqa: E402
from tsmlip.config import load_config  # noqa: E402
from tsmlip.core.elements import model_species  # noqa: E402
from tsmlip.core.md.engines import set_kernels  # noqa: E402
from tsmlip.rdf.stacked import run_liquid_stack  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*", help="trained model.pt files (with --smoke: none, two random models)")
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--steps", type=int, default=None, help="production steps only (default: the whole liquid)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-ase", action="store_true", help="skip the per-model ASE liquid")
    p.add_argument("--smoke", action="store_true",
                   help="seconds: two random w4-s4-l1 models, stacks of 1 and 2, 5 production steps (nothing measured)")
    a = p.parse_args(argv)
    if a.smoke:
        a.models, a.sizes, a.steps, a.rounds = _random_models(), [1, 2], 5, 1
    elif not a.models:
        p.error("name at least one model.pt (or --smoke)")
    warnings.filterwarnings("ignore")
    torch.set_num_threads(a.threads)
    set_kernels("auto", "cpu")
    s = rdf.resolve_liquid(load_config(ROOT / "config" / "config.yaml")["rdf"], model_species(a.models[0]))
    s.update(progress_every=10 ** 9)
    if a.steps:
        s.update(melt_steps=0, equilibration_steps=0, production_steps=a.steps)
    n_steps = s["melt_steps"] + s["equilibration_steps"] + s["production_steps"]
    quiet = lambda m: None  # noqa: E731

    def ase():
        return [rdf.run_liquid_md(None, s, log=quiet, model=a.models[0], engine="ase")]

    def stack(m):
        return lambda: run_liquid_stack([a.models[k % len(a.models)] for k in range(m)], s, log=quiet)

    variants = ([] if a.no_ase else [("ase, one model", 1, ase)]) + [(f"stack of {m}", m, stack(m)) for m in a.sizes]
    short = dict(s, melt_steps=0, equilibration_steps=0, production_steps=10)
    rdf.run_liquid_md(None, short, log=quiet, model=a.models[0], engine="ase")  # warm-up (imports, first calls)
    run_liquid_stack([a.models[0]], short, log=quiet)
    print(f"{s['supercell']} cells, {n_steps} steps per liquid, torch threads {a.threads}; {len(a.models)} model "
          f"file(s), first {a.models[0]}", flush=True)
    print("| variant | models | s per model (CPU) | s per model (wall) | ms per model-step (CPU) | stable |")
    print("|---|---|---|---|---|---|")
    for _ in range(a.rounds):
        for name, m, fn in variants:
            c0, w0 = time.process_time(), time.perf_counter()
            runs = fn()
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
            print(f"| {name} | {m} | {cpu / m:.2f} | {wall / m:.2f} | {1e3 * cpu / m / n_steps:.2f} | "
                  f"{sum(r.stable for r in runs)}/{len(runs)} |", flush=True)
    return 0


def _random_models() -> list[str]:
    """Two aluminum models of random weights (seeds 1, 2) in a temporary folder."""
    import tempfile

    from tsmlip.ids import Arch
    from tsmlip.core.model import build_model, save_model

    folder = Path(tempfile.mkdtemp(prefix="bench_liquid_stack_"))
    network = load_config(ROOT / "config" / "config.yaml")["network"]
    paths = []
    for seed in (1, 2):
        path = folder / f"model{seed}.pt"
        graph = build_model(Arch(4, 4, 1), network, seed=seed, species=[13])
        save_model(graph, path, model_id=f"control/w4-s4-l1/seed{seed}")
        paths.append(str(path))
    return paths


if __name__ == "__main__":
    sys.exit(main())
