"""Neighbour-list build time of the torch MD engine's pair finders on the CPU: ours (``core/md/pairs.py``:
``cell_list``, the torch linked cells, and ``kdtree``, hippynn's scipy KD-tree) against vesin-torch's
``NeighborList`` (``vesin``), on fcc aluminum (a = 4.05 A, thermal rattle) at the default model's
cut-off plus the Verlet skin (6.0 + 1.0 A). Checks that all give the same pair set, then prints the
median milliseconds per build.

    python scripts/bench_pairs.py [--sizes 500 2048 8000] [--threads 1 2] [--repeats 7]
    python scripts/bench_pairs.py --smoke        # seconds: 256 atoms, one thread, one build each
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from tsmlip.core.md.pairs import cell_list_pairs, vesin_pairs  # noqa: E402
from tsmlip.core.md.system import fcc_supercell  # noqa: E402


def kdtree_pairs(cutoff, coords, cell):
    from hippynn.layers.pairs.dispatch import neighbor_list_kdtree

    return neighbor_list_kdtree(cutoff, coords, cell)


FINDERS = {"cell_list": cell_list_pairs, "kdtree": kdtree_pairs, "vesin": vesin_pairs}


def pair_set(pf, ps, off):
    return set(zip(pf.tolist(), ps.tolist(), map(tuple, off.tolist())))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[500, 2048, 8000])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--cutoff", type=float, default=7.0, help="cut-off + skin (A)")
    p.add_argument("--smoke", action="store_true", help="seconds: 256 atoms, one thread, one build each")
    a = p.parse_args(argv)
    if a.smoke:
        a.sizes, a.threads, a.repeats = [256], [1], 1  # 4x4x4 cells: kdtree needs 2 x cut-off

    print(f"fcc Al, cut-off {a.cutoff} A, float32 positions, median of {a.repeats} builds (ms)")
    print(f"{'atoms':>6} {'threads':>7} {'pairs':>9} " + " ".join(f"{n:>10}" for n in FINDERS))
    for n in a.sizes:
        atoms = fcc_supercell(n, 4.05, seed=0)
        atoms.rattle(0.1, seed=1)
        coords = torch.as_tensor(atoms.get_positions(), dtype=torch.float32)
        cell = torch.as_tensor(np.asarray(atoms.cell), dtype=torch.float32)
        ref = None
        for name, fn in FINDERS.items():
            got = pair_set(*fn(a.cutoff, coords, cell))
            if ref is None:
                ref = got
            elif got != ref:
                print(f"MISMATCH at {n} atoms: {name} gives {len(got)} pairs, cell_list {len(ref)}; "
                      f"{len(got ^ ref)} differ", file=sys.stderr)
                return 1
        for threads in a.threads:
            torch.set_num_threads(threads)
            row = []
            for name, fn in FINDERS.items():
                fn(a.cutoff, coords, cell)  # warm-up
                times = []
                for _ in range(a.repeats):
                    t0 = time.perf_counter()
                    fn(a.cutoff, coords, cell)
                    times.append(time.perf_counter() - t0)
                row.append(1e3 * statistics.median(times))
            print(f"{n:>6} {threads:>7} {len(ref):>9} " + " ".join(f"{t:>10.2f}" for t in row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
