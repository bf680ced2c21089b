"""Time per step of the RDF liquid on the two MD engines (``rdf.engine``: ase vs torch), docs/md.md.

The liquid of the ``rdf:`` section of config/config.yaml (256 Al atoms by default), production steps only,
frames and checks as in a real run, for one model.pt; rounds interleaved after a warm-up of each engine.
The clock is the process's CPU time (fair on a shared machine; use ``--clock wall`` on a quiet one).

    python scripts/bench_rdf_engines.py MODEL.pt [--steps 100] [--rounds 3] [--pair-finder vesin]
    python scripts/bench_rdf_engines.py --smoke    # seconds: a tiny random-weight model, 108 atoms, 2 steps
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import types
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from tsmlip import rdf  # noqa: E402
from tsmlip.config import load_config  # noqa: E402
from tsmlip.core.elements import model_species  # noqa: E402
from tsmlip.core.md.engines import set_kernels  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", nargs="?", help="a model.pt (with --smoke: none, a tiny random-weight model)")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--pair-finder", default="vesin", help="torch engine's pair finder")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    p.add_argument("--smoke", action="store_true", help="seconds: a tiny random-weight model, 108 atoms, 2 steps")
    a = p.parse_args(argv)
    tmp = None
    if a.smoke:
        import tempfile

        from tsmlip.ids import Arch
        from tsmlip.core.model import build_model, save_model

        tmp = tempfile.TemporaryDirectory()
        a.model, a.steps, a.rounds = str(Path(tmp.name) / "smoke.pt"), 2, 1
        save_model(build_model(Arch(4, 4, 1), load_config(ROOT / "config" / "config.yaml")["network"], seed=0), a.model)
    elif a.model is None:
        p.error("MODEL is required (or --smoke)")
    warnings.filterwarnings("ignore")
    torch.set_num_threads(a.threads)
    print(f"hippynn kernels: {set_kernels('auto', 'cpu')}")
    s = rdf.resolve_liquid(load_config(ROOT / "config" / "config.yaml")["rdf"], model_species(a.model))
    s.update(melt_steps=0, equilibration_steps=0, production_steps=a.steps, progress_every=10 ** 9)
    if a.smoke:
        s.update(supercell=[3, 3, 3], r_max_A=5.0, n_bins=50, sample_interval=1)
    engines = (("ase", "cell_list"), ("torch", a.pair_finder))

    def run(engine, finder, steps):
        out = rdf.run_liquid_md(None, dict(s, production_steps=steps), log=lambda m: None, model=a.model,
                                engine=engine, pair_finder=finder)
        return 1e3 * out.wall_time_s / out.steps_done

    clock = time.process_time if a.clock == "cpu" else time.perf_counter
    rdf.liquid.time = types.SimpleNamespace(perf_counter=clock)  # the run loop's clock
    for engine, finder in engines:
        run(engine, finder, 10)  # warm-up
    ms = {e: [] for e, _ in engines}
    for r in range(a.rounds):
        for engine, finder in engines:
            ms[engine].append(run(engine, finder, a.steps))
        print(f"round {r + 1}: ase {ms['ase'][-1]:.1f} ms/step, torch {ms['torch'][-1]:.1f} ms/step, "
              f"ratio {ms['ase'][-1] / ms['torch'][-1]:.2f}", flush=True)
    a_med, t_med = statistics.median(ms["ase"]), statistics.median(ms["torch"])
    print(f"{len(rdf.initial_liquid_cell(s))} atoms, {a.clock} time, median: ase {a_med:.1f} ms/step, "
          f"torch ({a.pair_finder}) {t_med:.1f} ms/step, ase/torch {a_med / t_med:.2f}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
