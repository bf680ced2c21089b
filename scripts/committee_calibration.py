"""How well a committee's force deviation ranks its true force error, on the test split and on liquid frames.

The seeds of each kind x architecture of a finished run form a committee (tsmlip.core.committee: the members' mean
and DeePMD's per-atom force deviation eps_i = sqrt(<|F_i - <F_i>|^2>) from one stacked call). Two sets of frames:

- the run's test split, with the run's own ground-truth forces;
- the committee's first member's own liquid (the run's ``rdf:`` state point: melt, equilibration, a shortened
  production), each kept frame relabelled by the ground truth (``--truth``: the run's foundation calculator, e.g.
  chgnet; ``emt`` for the embedded data's EMT).

Per frame: the largest eps_i (what DP-GEN's trust levels read) against the frame's force RMSE of the committee mean;
per atom: eps_i against |F_i - F_i(truth)|; Spearman rank correlations (scipy.stats.spearmanr), with the number of
frames. Prints a markdown table and the machine; writes a CSV of every frame and, with ``--figure``, the
calibration figure (per-frame max deviation against error, one panel per frame set).

    python scripts/committee_calibration.py --results results --truth chgnet --out calib.csv --figure calib.png
    python scripts/committee_calibration.py --smoke   # seconds: two random w4-s4-l1 members, EMT frames
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))


def smoke_results(folder: Path) -> list:
    """A results folder of two random-weight students (w4-s4-l1, seeds 1 and 2) and, as its "test split", four rattled
    fcc cells labelled by EMT."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    from tsmlip.config import load_config
    from tsmlip.core.model import build_model, save_model
    from tsmlip.ids import Arch

    network = load_config(ROOT / "config" / "config.yaml")["network"]
    for seed in (1, 2):
        path = folder / "models" / "student" / "w4-s4-l1" / f"seed{seed}" / "model.pt"
        path.parent.mkdir(parents=True)
        save_model(build_model(Arch(4, 4, 1), network, seed=seed, species=(13,)), path)
    frames = []
    for k in range(4):
        a = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 2, 2))
        a.rattle(0.1, seed=k)
        a.calc = EMT()
        frames.append((a, np.asarray(a.get_forces(), dtype=np.float64)))
    return frames


def frames_of_split(arrays, split, which="test"):
    from ase import Atoms

    out = []
    for i in split[which]:
        Z = arrays["Z"][i]
        n = int((Z > 0).sum())
        a = Atoms(numbers=Z[:n], positions=arrays["R"][i][:n], cell=arrays["cell"][i], pbc=True)
        out.append((a, np.asarray(arrays["F"][i][:n], dtype=np.float64)))
    return out


def liquid_frames(model_path, rdf_settings: dict, production_steps: int, every: int, truth):
    """Frames of the model's own liquid (the run's state point, production shortened), labelled by ``truth``."""
    from tsmlip.core.model import read_model_payload
    from tsmlip.rdf.liquid import resolve_liquid, run_liquid_md

    species = [int(z) for z in read_model_payload(model_path)["species"] if int(z) != 0]
    s = resolve_liquid({**rdf_settings, "production_steps": production_steps, "sample_interval": every}, species)
    run = run_liquid_md(None, s, log=lambda msg: None, model=model_path, engine="ase", device="cpu")
    out = []
    for a in run.frames:
        a = a.copy()
        a.calc = truth
        out.append((a, np.asarray(a.get_forces(), dtype=np.float64)))
    return out, run.stable


def score(calc, frames):
    """Per frame (max eps, mean eps, force RMSE of the committee mean) and all atoms' (eps, |error|)."""
    rows, eps_all, err_all = [], [], []
    for a, f_true in frames:
        a = a.copy()
        a.calc = calc
        f = a.get_forces()
        eps = np.asarray(calc.results["force_deviation"])
        err = np.linalg.norm(f - f_true, axis=1)
        eps_all.append(eps)
        err_all.append(err)
        rows.append((float(eps.max()), float(eps.mean()), float(np.sqrt(np.mean((f - f_true) ** 2)))))
    return rows, np.concatenate(eps_all), np.concatenate(err_all)


def main(argv=None) -> int:
    from scipy.stats import spearmanr

    from tsmlip.config import load_config
    from tsmlip.core.committee import load_committee
    from tsmlip.data import load_dataset, load_split
    from tsmlip.foundation import make_calculator

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--results", default="results")
    p.add_argument("--config", nargs="+", default=["config/config.yaml"], help="the run's config files (rdf: settings)")
    p.add_argument("--kinds", nargs="+", default=["student", "control", "control_fw", "student_oracle"])
    p.add_argument("--archs", nargs="+", default=None, help="default: every architecture with two seeds or more")
    p.add_argument("--truth", default="chgnet", help="ground truth of the liquid frames: a foundation calculator "
                   "(chgnet) or emt")
    p.add_argument("--production-steps", type=int, default=300)
    p.add_argument("--every", type=int, default=30, help="production steps between kept liquid frames")
    p.add_argument("--no-liquid", action="store_true")
    p.add_argument("--out", default="committee_calibration.csv")
    p.add_argument("--figure", default=None)
    p.add_argument("--smoke", action="store_true", help="seconds: two random w4-s4-l1 members, EMT frames")
    a = p.parse_args(argv)

    import pandas as pd
    import torch

    torch.set_num_threads(1)
    cfg = load_config(*[ROOT / c if a.smoke else c for c in a.config])
    if a.smoke:
        import tempfile

        R = Path(tempfile.mkdtemp(prefix="committee-calibration-"))
        test = smoke_results(R)
        a.truth, a.kinds, a.production_steps, a.every = "emt", ["student"], 10, 5
        a.out = str(R / "calibration.csv")
        cfg["rdf"].update(supercell=[5, 5, 5], melt_steps=10, equilibration_steps=10)
    else:
        R = Path(a.results)
        arrays = load_dataset(R / "data" / "dataset.npz")
        test = frames_of_split(arrays, load_split(R / "data" / "split.npz", len(arrays["E"])))
    if a.truth == "emt":
        from ase.calculators.emt import EMT
        truth = EMT()
    else:
        truth, _ = make_calculator(a.truth, "cpu")
    from tsmlip.core.model import device_description

    print(f"machine: {device_description(torch.device('cpu'))}, {platform.python_version()}, torch {torch.__version__}, "
          f"1 thread; results {R}; liquid truth {a.truth}")
    frame_rows, table = [], []
    for kind in a.kinds:
        archs = a.archs or sorted(p.name for p in (R / "models" / kind).iterdir())
        for arch in archs:
            paths = sorted((R / "models" / kind / arch).glob("seed*/model.pt"))
            if len(paths) < 2:
                continue
            calc = load_committee([str(x) for x in paths])
            sets = {"test": test}
            t0 = time.process_time()
            if not a.no_liquid:
                sets["liquid"], stable = liquid_frames(str(paths[0]), cfg["rdf"], a.production_steps, a.every, truth)
            for name, frames in sets.items():
                rows, eps, err = score(calc, frames)
                for k, (mx, mean, rmse) in enumerate(rows):
                    frame_rows.append(dict(kind=kind, arch=arch, frames=name, frame=k, max_force_deviation=mx,
                                           mean_force_deviation=mean, force_rmse=rmse))
                rho_f = spearmanr([r[0] for r in rows], [r[2] for r in rows]).statistic if len(rows) > 2 else np.nan
                rho_a = spearmanr(eps, err).statistic
                table.append(dict(kind=kind, arch=arch, frames=name, n_frames=len(rows), n_atoms=len(eps),
                                  rho_frame=rho_f, rho_atom=rho_a, mean_eps=float(eps.mean()),
                                  committee_force_rmse=float(np.sqrt(np.mean(err ** 2) / 3))))
            print(f"[{kind}/{arch}] {time.process_time() - t0:.0f} s CPU", flush=True)
            # written after every committee: a long calibration killed half-way keeps what it measured
            pd.DataFrame(frame_rows).to_csv(a.out, index=False)
            Path(a.out).with_suffix(".json").write_text(json.dumps(table, indent=1))
    print(pd.DataFrame(table).to_markdown(index=False, floatfmt=".3f"))
    if a.figure:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import seaborn as sns

        f = pd.DataFrame(frame_rows)
        g = sns.relplot(data=f, x="max_force_deviation", y="force_rmse", hue="kind", style="arch", col="frames",
                        facet_kws=dict(sharex=False, sharey=False), height=3.6)
        g.set_axis_labels("committee max force deviation (eV/A)", "force RMSE of the committee mean (eV/A)")
        plt.savefig(a.figure, dpi=150, bbox_inches="tight")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
