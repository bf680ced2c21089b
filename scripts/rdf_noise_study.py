"""How large must the liquid-RDF runs be? The seed noise floor of the RDF error, and the melt check.

Runs the reference potential (ASE EMT aluminum) through the workflow's own liquid protocol
(`tsmlip.rdf.run_liquid_md`) with several seeds per size, and prints for each size: the RDF error
between runs that differ only in seed (the noise floor of the metric; mean and max over seed pairs),
the melt indicator of every run, the closest pair, and the wall time. A crystal control (no melt
stage, solid density, 300 K) shows the melt indicator of a system that did not melt.

    python scripts/rdf_noise_study.py --sizes 4,4,4:300 5,5,5:1500 --seeds 3
    python scripts/rdf_noise_study.py --smoke     # seconds: 108 atoms, 2 seeds, a few steps per stage

Each size is ``supercell:production_steps``; other settings come from the ``rdf:`` section of the
config: config/config.yaml with the overlays named with --config. Prints a table; nothing is written.
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))


def main(argv=None) -> int:
    from tsmlip.config import load_config
    from tsmlip.rdf import (melt_indicator, nearest_neighbour_distance, rdf_error, rdf_of_frames,
                            reference_calculator, resolve_liquid, run_liquid_md)

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", nargs="*", default=[], help="config overlays on config/config.yaml")
    p.add_argument("--sizes", nargs="+", default=["4,4,4:300"], help="supercell:production_steps")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--sample-interval", type=int, default=None)
    p.add_argument("--n-bins", type=int, default=None, help="override rdf.n_bins")
    p.add_argument("--crystal", action="store_true", help="also run the crystal control")
    p.add_argument("--smoke", action="store_true", help="seconds: 108 atoms, 2 seeds, a few steps per stage")
    a = p.parse_args(argv)
    rdf_cfg = load_config(ROOT / "config" / "config.yaml", *a.config)["rdf"]
    if a.smoke:
        a.sizes, a.seeds, a.sample_interval = ["3,3,3:4"], 2, 2
        rdf_cfg.update(melt_steps=4, equilibration_steps=2)
    base = resolve_liquid(dict(rdf_cfg), [13], trained_on="EMT aluminum")
    quiet = lambda msg: None  # noqa: E731
    rows = []
    for size in a.sizes:
        cells, prod = size.split(":")
        s = dict(base, supercell=[int(x) for x in cells.split(",")], production_steps=int(prod),
                 r_max_A=min(base["r_max_A"], 0.49 * 4.05 * 1.06 * min(int(x) for x in cells.split(","))))
        if a.n_bins:
            s["n_bins"] = a.n_bins
        if a.sample_interval:
            s["sample_interval"] = a.sample_interval
        d_nn = nearest_neighbour_distance(s["density_g_cm3"], s["element"])
        curves, melts, closest, walls = [], [], [], []
        for seed in range(a.seeds):
            t = time.perf_counter()
            run = run_liquid_md(reference_calculator("emt"), dict(s, seed=1000 + seed), log=quiet)
            walls.append(time.perf_counter() - t)
            curves.append(rdf_of_frames(run.frames, s["r_max_A"], s["n_bins"]))
            melts.append(melt_indicator(run.msd_A2["production"], d_nn))
            closest.append(run.min_pair_distance_A)
        errs = [rdf_error(curves[i][0], curves[i][1], curves[j][1])
                for i, j in itertools.combinations(range(len(curves)), 2)]
        n_atoms = run.n_atoms
        rows.append((size, n_atoms, len(run.frames), float(np.mean(errs)), float(np.max(errs)),
                     min(melts), min(closest), float(np.mean(walls)), s["r_max_A"]))
        print(f"{size:>12}  {n_atoms:5d} atoms  {len(run.frames):4d} frames  noise floor mean "
              f"{np.mean(errs):.3f} max {np.max(errs):.3f} A  melt indicator min {min(melts):.3f}  "
              f"closest pair {min(closest):.3f} A  {np.mean(walls):.0f} s per run", flush=True)
    if a.crystal:
        s = dict(base, melt_steps=0, temperature_K=300.0, density_g_cm3=2.70)  # solid fcc Al
        run = run_liquid_md(reference_calculator("emt"), s, log=quiet)
        m = melt_indicator(run.msd_A2["production"], nearest_neighbour_distance(2.70, s["element"]))
        print(f"crystal control (300 K, 2.70 g/cm3, no melt): melt indicator {m:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
