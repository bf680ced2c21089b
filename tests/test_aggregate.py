"""Aggregation and claims on a synthetic run with known numbers (no training: seconds)."""
from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import BASE_CONFIG, make_record, write_record
from tsmlip import aggregate, born_again, tables
from tsmlip.claims.claim import FORCE, METRIC_NAMES, RDF_REFERENCE, RDF_TEACHER
from tsmlip.claims.cli import main as claims_main
from tsmlip.claims.cost import pareto_claim
from tsmlip.claims.headline import headline_table
from tsmlip.claims.rows import learning_speed_claim
from tsmlip.claims.table import all_claims
from tsmlip.claims.verdicts import HOLDS, UNDECIDED, UNDECIDED_BUDGET_MOVED, UNDECIDED_LIQUID
from tsmlip.config import load_config
from tsmlip.json_record import RecordError
from tsmlip.records import (AtomEnergies, AtomEnergyAgreement, Convergence, MaxAtoms, MdTiming, RdfError, SplitErrors,
                            TrainMetrics)

#: the default configuration's aggregate section (the claims' settings live in config/ only)
AGG = load_config(BASE_CONFIG)["aggregate"]
#: what `tsmlip aggregate` reads
FACTOR_2 = json.dumps({"aggregate": {"learning_speed_factor": 2}})

#: synthetic sweep: arch -> (n_weights, us per atom step, memory per atom in bytes, control test force RMSE)
ARCHS = {
    "w4-s4-l1": (500, 1.0, 10_000, 0.30),
    "w8-s4-l1": (1500, 2.0, 20_000, 0.20),
    "w16-s4-l1": (5000, 4.0, 40_000, 0.15),
}
SEEDS = (1, 2, 3)
TEACHER = "w12-s8-l2"
EPOCHS = 30
ENGINE = "ase"
#: per-seed relative wiggles (paired differences then have a small, non-zero spread)
WIGGLE = {1: -0.01, 2: 0.0, 3: 0.012}
#: students' energy-per-atom errors relative to their control's: no systematic effect
ENERGY_SIGN = {1: 0.05, 2: -0.05, 3: 0.0}
#: scheduled Born-Again beats the teacher (0.100 eV/A); the static one does not differ
BA_FORCE = {"born_again": (0.090, 0.091, 0.089), "born_again_static": (0.100, 0.103, 0.097)}
BA_ENERGY = {"born_again": (0.27, 0.272, 0.268), "born_again_static": (0.30, 0.31, 0.29)}


def _curve(final: float, tau: float) -> pd.DataFrame:
    """Validation force RMSE final + exp(-epoch / tau); training 10 % lower; 2 s per epoch."""
    e = np.arange(1, EPOCHS + 1)
    valid = final + np.exp(-e / tau)
    return pd.DataFrame({
        "epoch": e, "lr": 1e-3, "w_E": 1.0, "w_F": 10.0, "w_A": 0.0, "train_loss": valid,
        "train_force_rmse_eV_A": 0.9 * valid, "valid_force_rmse_eV_A": valid,
        "train_energy_rmse_eV": valid, "valid_energy_rmse_eV": valid,
        "train_energy_per_atom_rmse_eV": valid / 100, "valid_energy_per_atom_rmse_eV": valid / 100,
        "epoch_time_s": 2.0, "wall_time_s": 2.0 * e,
    })


def _model(root: Path, kind: str, arch: str, seed: int, force: float, energy: float, energy_pa: float,
           tau: float, weights: dict, n_weights: int, atom_rmse=None, md=None, rdf=None,
           convergence: dict | None = None) -> None:
    d = root / "models" / kind / arch / f"seed{seed}"
    split = dict(n_configs=10, energy_rmse_eV=energy, energy_mae_eV=0.8 * energy, energy_per_atom_rmse_eV=energy_pa,
                 force_rmse_eV_A=force, force_mae_eV_A=0.8 * force, atom_energy_rmse_eV=atom_rmse,
                 atom_energy_pearson_r=None if atom_rmse is None else 1 - 10 * atom_rmse)
    w, s, l = (int(x[1:]) for x in arch.split("-"))
    mid = f"{kind}/{arch}/seed{seed}"
    conv = dict(stopped_by="patience", best_epoch=EPOCHS - 5, epochs=EPOCHS, max_epochs=EPOCHS, late_window_epochs=6,
                late_fraction=0.2, late_relative_improvement=0.0, **(convergence or {}))
    write_record(d / "metrics.json", TrainMetrics,
                 model_id=mid, kind=kind, width=w, n_sensitivities=s, n_atom_layers=l, seed=seed, n_weights=n_weights,
                 epochs=EPOCHS, best_epoch=EPOCHS, wall_time_s=2.0 * EPOCHS, device="cpu",
                 convergence=Convergence(**conv), loss_weights=weights, loss_schedule=None,
                 teacher_labels=None if kind in ("teacher", "control") else "teacher/mean",
                 atom_energy_labels_in_loss=kind not in ("teacher", "control", "control_fw"),
                 splits={"train": SplitErrors(**dict(split, force_rmse_eV_A=0.9 * force)), "valid": SplitErrors(**split),
                         "test": SplitErrors(**split)}, untrained=None)
    _curve(force, tau).to_csv(d / "curve.csv", index=False)
    if md is not None:
        us, mem = md
        write_record(d / f"md_timing_{ENGINE}.json", MdTiming,
                     model_id=mid, engine=ENGINE, device="cpu", device_name="Test CPU", n_atoms=500,
                     us_per_atom_step=us, us_per_atom_step_all=[us], steps_per_s=1e6 / (us * 500), ns_per_day=1.0,
                     energy_drift_eV_per_atom_per_ps=1e-5, stable=True, hippynn_kernels=None)
        write_record(d / "max_atoms.json", MaxAtoms,
                     model_id=mid, device="cpu", device_name="Test CPU", max_atoms=int(1e9 // mem),
                     memory_budget_bytes=int(1e9), memory_per_atom_bytes=mem, memory_per_atom_slope_bytes=mem,
                     first_failure_atoms=int(1.2 * (1e9 // mem)), capped=False, sizes=[{"n_atoms": 100, "ok": True}],
                     hippynn_kernels=None)
    if rdf is not None:
        write_record(d / "rdf_error.json", RdfError,
                     model_id=mid, error_vs_teacher=rdf, error_vs_reference=rdf + 0.1,
                     definition="integral |g - g_teacher| dr (A)", first_peak_r_A=2.8, first_peak_g=3.0, stable=True,
                     melted=True, clean=True)


#: the budget check of the synthetic run: seed 1 of every kind at the smallest and largest architecture, the
#: teacher and the Born-Again seed 1, each trained again with every budget doubled: 1 % lower test errors
BUDGET_CHECKED = (
    [f"teacher/{TEACHER}/seed0", f"born_again/{TEACHER}/seed1", f"born_again_static/{TEACHER}/seed1"]
    + [f"{kind}/{arch}/seed1" for kind in ("control", "control_fw", "student") for arch in ("w4-s4-l1", "w16-s4-l1")]
)
BUDGET_CHANGE = -0.01


def write_budget_check(root: Path, model_id: str, change: float, stopped_by: str = "patience") -> Path:
    """``root/budget_check/<id>/metrics.json``: the model's own metrics.json with every test error times
    ``1 + change`` and twice the epochs."""
    met = TrainMetrics.read(root / "models" / model_id / "metrics.json")
    test = met.splits["test"]
    for key in ("energy_rmse_eV", "energy_per_atom_rmse_eV", "force_rmse_eV_A", "atom_energy_rmse_eV"):
        if getattr(test, key) is not None:
            setattr(test, key, getattr(test, key) * (1 + change))
    met.epochs = 2 * EPOCHS
    met.convergence = replace(met.convergence, stopped_by=stopped_by, epochs=2 * EPOCHS)
    path = root / "budget_check" / model_id / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    met.write(path)
    return path


def budget_check_files(root: Path) -> list[Path]:
    return sorted((root / "budget_check").rglob("metrics.json"))


def write_synthetic_run(root: Path, md: bool = True, rdf: bool = True, budget_check: bool = True) -> Path:
    """Per-model files of a synthetic run under ``root`` (``root/models/...``, ``root/labels/...``, and with
    ``budget_check`` the checks of :data:`BUDGET_CHECKED` in ``root/budget_check/...``)."""
    W = {"teacher": {"w_E": 1, "w_F": 10, "w_A": 0}, "control": {"w_E": 1, "w_F": 10, "w_A": 0},
         "control_fw": {"w_E": 1, "w_F": 30, "w_A": 0}, "student": {"w_E": 1, "w_F": 30, "w_A": 100},
         "born_again_static": {"w_E": 1, "w_F": 30, "w_A": 100}, "born_again": {"schedule": "table 1"}}
    _model(root, "teacher", TEACHER, 0, 0.10, 0.30, 0.003, 2.0, W["teacher"], 20_000,
           md=(8.0, 80_000) if md else None, rdf=0.0 if rdf else None)
    for arch, (nw, us, mem, fc) in ARCHS.items():
        for seed in SEEDS:
            wig = 1 + WIGGLE[seed]
            e_pa = 0.01 * (1 + 0.1 * WIGGLE[seed])
            cost = (us * (1 + 0.3 * WIGGLE[seed]), mem) if md else None
            _model(root, "control", arch, seed, fc * wig, 0.5, e_pa, 6.0, W["control"], nw, atom_rmse=0.05, md=cost,
                   rdf=0.4 * fc if rdf else None)
            _model(root, "control_fw", arch, seed, fc * 1.05 * (1 + 0.5 * WIGGLE[seed]), 0.5, e_pa, 6.0,
                   W["control_fw"], nw, atom_rmse=0.05, md=cost, rdf=0.4 * fc if rdf else None)
            _model(root, "student", arch, seed, 0.8 * fc * (1 + 0.5 * WIGGLE[seed]), 0.5, e_pa * (1 + ENERGY_SIGN[seed]),
                   3.0, W["student"], nw, atom_rmse=0.01, md=cost, rdf=0.2 * fc * (1 + 2 * WIGGLE[seed]) if rdf else None)
    for kind in ("born_again", "born_again_static"):
        for seed, f, e in zip(SEEDS, BA_FORCE[kind], BA_ENERGY[kind]):
            _model(root, kind, TEACHER, seed, f, e, e / 100, 2.0, W[kind], 20_000, atom_rmse=0.01,
                   md=(8.0, 80_000) if md else None, rdf=0.01 if rdf else None)
    write_record(root / "labels" / "atom_energies.json", AtomEnergies, teachers=["teacher/w12-s8-l2/seed0"],
                 vs_reference=AtomEnergyAgreement(rmse_eV=0.02, pearson_r=0.9, offset_eV=0.1, ref_std_eV=0.05,
                                                  n_atoms=100))
    if budget_check:
        for mid in BUDGET_CHECKED:
            write_budget_check(root, mid, BUDGET_CHANGE)
    return root


def build(root: Path, factor: float = 2.0):
    found = aggregate.collect_files(models_dir=root / "models")
    return aggregate.build_tables(found, factor, aggregate.read_budget_checks(budget_check_files(root)))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = write_synthetic_run(tmp_path_factory.mktemp("run"))
    models, curves = build(root)
    return root, models, curves


# ------------------------------------------------------------------------------------------------ metrics


def test_atom_energy_agreement_perfect_and_offset():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(4, 6))
    mask = np.ones_like(ref, dtype=bool)
    mask[:, 5] = False  # padding
    pred = np.where(mask, ref + 0.7, 123.0)  # constant offset, garbage on padding
    out = aggregate.atom_energy_agreement(pred, ref, mask)
    assert out["rmse_eV"] == pytest.approx(0.0, abs=1e-12)
    assert out["pearson_r"] == pytest.approx(1.0)
    assert out["offset_eV"] == pytest.approx(0.7)
    assert out["ref_std_eV"] == pytest.approx(ref[mask].std())
    assert out["n_atoms"] == 20


def test_atom_energy_agreement_known_values():
    ref = np.array([0.0, 1.0, 2.0, 3.0])
    pred = np.array([1.0, 1.0, 3.0, 3.0])  # diff 1, 0, 1, 0: offset 0.5, residual +-0.5
    out = aggregate.atom_energy_agreement(pred, ref)
    assert out["offset_eV"] == pytest.approx(0.5)
    assert out["rmse_eV"] == pytest.approx(0.5)
    assert out["pearson_r"] == pytest.approx(np.corrcoef(pred, ref)[0, 1])
    assert math.isnan(aggregate.atom_energy_agreement(np.ones(3), ref[:3])["pearson_r"])
    with pytest.raises(ValueError):
        aggregate.atom_energy_agreement(pred, ref[:3])


def test_learning_speed_known_curve():
    curve = pd.DataFrame({"epoch": [1, 2, 3, 4, 5], "valid_force_rmse_eV_A": [1.0, 0.5, 0.3, 0.2, 0.15],
                          "wall_time_s": [10.0, 20.0, 30.0, 40.0, 50.0]})
    assert aggregate.learning_speed(curve, 0.25) == (4.0, 40.0)
    assert aggregate.learning_speed(curve, 0.2) == (4.0, 40.0)  # reaching the threshold counts
    assert all(math.isnan(v) for v in aggregate.learning_speed(curve, 0.1))
    assert all(math.isnan(v) for v in aggregate.learning_speed(curve, math.nan))


def test_pareto_front_known_points():
    cost = [1, 2, 3, 2.5, 4, np.nan, 1]
    err = [5, 3, 2, 3.5, 2, 0.1, 5]
    # (2.5, 3.5) is dominated by (2, 3); (4, 2) by (3, 2); NaN never on the front; duplicates both on it
    assert tables.pareto_front(cost, err).tolist() == [True, True, True, False, False, False, True]


# ------------------------------------------------------------------------------------------------ tables


def test_models_table(run):
    _, models, curves = run
    n_sweep = len(ARCHS) * len(SEEDS) * 3
    assert len(models) == 1 + n_sweep + 2 * len(SEEDS)
    assert models["model_id"].is_unique
    assert models["kind"].iloc[0] == "teacher"  # kind order: teacher first
    row = models[models["model_id"] == "student/w8-s4-l1/seed2"].iloc[0]
    assert row["n_weights"] == 1500 and row["width"] == 8 and row["seed"] == 2
    assert row["test_force_rmse_eV_A"] == pytest.approx(0.16)
    assert row["md_ase_us_per_atom_step"] == pytest.approx(2.0)
    assert row["md_ase_device_name"] == "Test CPU"
    assert row["memory_per_atom_bytes"] == 20_000 and row["max_atoms"] == 50_000
    assert row["rdf_error_vs_teacher"] == pytest.approx(0.04)
    assert row["w_A"] == 100
    assert math.isnan(models[models["kind"] == "born_again"]["w_A"].iloc[0])  # scheduled weights
    # threshold = 2 x the teacher's best valid force RMSE (0.1 + exp(-30 / 2))
    thr = 2 * (0.1 + math.exp(-EPOCHS / 2))
    assert models["threshold_force_rmse_eV_A"].unique() == pytest.approx([thr])
    # student w8 seed 2: 0.16 + exp(-e/3) <= thr first at e = ceil(3 ln(1 / (thr - 0.16))) = 10
    assert row["epochs_to_threshold"] == 10 and row["wall_time_to_threshold_s"] == 20.0
    assert math.isnan(models[models["model_id"] == "control/w8-s4-l1/seed2"]["epochs_to_threshold"].iloc[0])
    assert set(curves["model_id"]) == set(models["model_id"])
    assert len(curves) == EPOCHS * len(models)


def test_summary_mean_std(run):
    _, models, _ = run
    summary = aggregate.summarize(models)
    row = summary[(summary["kind"] == "control") & (summary["arch"] == "w4-s4-l1")].iloc[0]
    forces = [0.30 * (1 + WIGGLE[s]) for s in SEEDS]
    assert row["n_seeds"] == 3
    assert row["test_force_rmse_eV_A_mean"] == pytest.approx(np.mean(forces))
    assert row["test_force_rmse_eV_A_std"] == pytest.approx(np.std(forces, ddof=1))
    teacher = summary[summary["kind"] == "teacher"].iloc[0]
    assert teacher["n_seeds"] == 1 and math.isnan(teacher["test_force_rmse_eV_A_std"])
    assert "seed_mean" not in summary


def test_missing_md_and_rdf_give_nan_free_table(tmp_path):
    root = write_synthetic_run(tmp_path, md=False, rdf=False)
    models, _ = build(root)
    assert not any(c.startswith("md_") or c.startswith("rdf_") for c in models.columns)
    assert "memory_per_atom_bytes" not in models
    table = all_claims(models, None, AGG)
    assert not (table["section"] == "Pareto dominance").any()
    assert not table["section"].isin(["speed and scalability", "cost vs the teacher"]).any()
    assert not table["claim"].str.contains("RDF").any()


def test_collect_files_explicit_list(run, tmp_path):
    root, _, _ = run
    d = root / "models" / "student" / "w4-s4-l1" / "seed1"
    found = aggregate.collect_files([str(d / "metrics.json"), str(d / f"md_timing_{ENGINE}.json")])
    assert list(found) == ["student/w4-s4-l1/seed1"]
    assert set(found["student/w4-s4-l1/seed1"]["md_timing"]) == {ENGINE}
    with pytest.raises(ValueError, match="not a per-model file"):
        aggregate.collect_files([str(root / "labels" / "atom_energies.json")])
    # a file's model id is the one it records, not its folder's; a curve goes with the metrics.json beside it
    moved = tmp_path / "elsewhere" / "metrics.json"
    moved.parent.mkdir()
    moved.write_text((d / "metrics.json").read_text())
    assert list(aggregate.collect_files([str(moved)])) == ["student/w4-s4-l1/seed1"]
    with pytest.raises(ValueError, match="no metrics.json beside it"):
        aggregate.collect_files([str(d / "curve.csv")])
    write_record(tmp_path / "labels" / "metrics.json", TrainMetrics, model_id="teacher/mean")
    with pytest.raises(ValueError, match="not a model id"):
        aggregate.collect_files([str(tmp_path / "labels" / "metrics.json")])


def test_model_files_reads_optional_files_where_present(run):
    root, _, _ = run
    ids = ["teacher/w12-s8-l2/seed0", "born_again/w12-s8-l2/seed1"]
    paths = aggregate.model_files(root / "models", ids, ["max_atoms.json", "md_timing_torch.json"])
    assert sorted(p.name for p in paths) == ["curve.csv", "curve.csv", "max_atoms.json", "max_atoms.json",
                                              "metrics.json", "metrics.json"]
    with pytest.raises(FileNotFoundError, match="student/w4-s4-l1/seed9"):
        aggregate.model_files(root / "models", ["student/w4-s4-l1/seed9"])


def test_born_again_table(run):
    _, models, _ = run
    t = born_again.born_again_table(models).set_index("kind")
    assert list(t.index) == ["teacher", "born_again_static", "born_again"]
    assert t.loc["born_again", "test_force_rmse_eV_A_mean"] == pytest.approx(0.09)
    assert t.loc["born_again", "test_force_rmse_eV_A_change_vs_teacher"] == pytest.approx(-0.1)
    assert t.loc["teacher", "n_seeds"] == 1


def test_cli_writes_tables(run, tmp_path):
    root, _, _ = run
    out = tmp_path / "tables"
    assert aggregate.main(["--models-dir", str(root / "models"), "--model-ids", "teacher/w12-s8-l2/seed0",
                           "student/w4-s4-l1/seed1", "--optional", "rdf_error.json", "--config-json", FACTOR_2,
                           "--out-models", str(tmp_path / "two.csv"), "--out-summary", str(tmp_path / "s.csv"),
                           "--out-curves", str(tmp_path / "c.csv")]) == 0
    two = pd.read_csv(tmp_path / "two.csv")
    assert len(two) == 2 and "rdf_error_vs_teacher" in two and "max_atoms" not in two
    # the workflow's way: exactly the files named (the teacher's rdf_error.json, on disk, is not read)
    files = [root / "models" / m / name for m in ("teacher/w12-s8-l2/seed0", "student/w4-s4-l1/seed1")
             for name in ("metrics.json", "curve.csv")] + [root / "models/student/w4-s4-l1/seed1/rdf_error.json"]
    assert (root / "models/teacher/w12-s8-l2/seed0/rdf_error.json").is_file()
    assert aggregate.main(["--files", *map(str, files), "--config-json", FACTOR_2,
                           "--out-models", str(tmp_path / "named.csv"), "--out-summary", str(tmp_path / "s2.csv"),
                           "--out-curves", str(tmp_path / "c2.csv")]) == 0
    named = pd.read_csv(tmp_path / "named.csv").set_index("model_id")
    assert np.isnan(named.loc["teacher/w12-s8-l2/seed0", "rdf_error_vs_teacher"])
    assert np.isfinite(named.loc["student/w4-s4-l1/seed1", "rdf_error_vs_teacher"])
    with pytest.raises(SystemExit):
        aggregate.main(["--files", str(files[0]), "--models-dir", str(root / "models"), "--config-json",
                        FACTOR_2, "--out-models", "m", "--out-summary", "s", "--out-curves", "c"])
    assert aggregate.main(["--models-dir", str(root / "models"), "--config-json", FACTOR_2,
                           "--budget-check-files", *map(str, budget_check_files(root)),
                           "--out-models", str(out / "models.csv"), "--out-summary", str(out / "summary.csv"),
                           "--out-curves", str(out / "curves.csv"), "--out-models-html", str(out / "models.html"),
                           "--out-summary-html", str(out / "summary.html")]) == 0
    written = pd.read_csv(out / "models.csv").set_index("model_id")
    assert len(written) == 1 + 27 + 6
    assert written["budget_check_test_force_rmse_eV_A"].notna().sum() == len(BUDGET_CHECKED)
    assert written.loc[f"teacher/{TEACHER}/seed0", "budget_check_relative_change"] == pytest.approx(BUDGET_CHANGE)
    assert "<table" in (out / "models.html").read_text()
    no_paper = json.dumps({"paper_reference": {}, "data": {"source": "emt"}})
    assert born_again.main(["--config-json", no_paper, "--models", str(out / "models.csv"),
                                      "--out-csv", str(out / "ba.csv"), "--out-md", str(out / "ba.md"),
                                      "--out-html", str(out / "ba.html")]) == 0
    md = (out / "ba.md").read_text()
    assert "0.09 ± 0.001" in md and "-10.0%" in md



def test_born_again_table_shows_the_published_numbers(run, tmp_path):
    """The paper's numbers come from the config (paper_reference) and sit beside the run's."""
    from tsmlip.config import load_config

    root, models, _ = run
    ref = load_config(BASE_CONFIG)["paper_reference"]
    t = born_again.born_again_table(models, ref["born_again"]).set_index("kind")
    assert t.loc["born_again", "paper_test_force_rmse_eV_A_mean"] == 0.083
    assert t.loc["born_again", "paper_test_force_rmse_eV_A_std"] == 0.003
    assert t.loc["teacher", "paper_test_energy_rmse_eV_mean"] == 0.38
    assert np.isnan(t.loc["born_again_static", "paper_test_force_rmse_eV_A_mean"])
    models.to_csv(tmp_path / "models.csv", index=False)
    cfg = json.dumps({"paper_reference": ref, "data": {"source": "emt"}})
    assert born_again.main(["--config-json", cfg, "--models", str(tmp_path / "models.csv"),
                                      "--out-csv", str(tmp_path / "ba.csv"), "--out-md", str(tmp_path / "ba.md")]) == 0
    md = (tmp_path / "ba.md").read_text()
    assert "paper: test force RMSE (eV/A)" in md and "0.083 ± 0.003" in md and "0.37 ± 0.02" in md
    assert "ANI-Al" in md and "this run's data: emt" in md


# ------------------------------------------------------------------------------------------------ convergence


def test_convergence_columns(tmp_path):
    """The training's convergence block -> stopped_by, best_epoch, late_relative_improvement, converged."""
    def met(block):
        return make_record(TrainMetrics, best_epoch=7,
                           convergence=None if block is None else make_record(Convergence, **block))

    patience = aggregate.convergence(met({"stopped_by": "patience", "best_epoch": 9, "late_relative_improvement": 0.3}))
    assert patience == {"stopped_by": "patience", "best_epoch": 9, "late_relative_improvement": 0.3, "converged": True}
    # the epoch cap is never convergence, however flat the end of the curve (the late improvement: information)
    flat = aggregate.convergence(met({"stopped_by": "max_epochs", "best_epoch": 29,
                                      "late_relative_improvement": 0.001}))
    assert flat["converged"] is False and flat["late_relative_improvement"] == 0.001
    still = aggregate.convergence(met({"stopped_by": "max_epochs", "best_epoch": 30, "late_relative_improvement": 0.1}))
    assert still["converged"] is False and still["stopped_by"] == "max_epochs"
    none = aggregate.convergence(met(None))
    assert none["stopped_by"] == "unknown" and none["converged"] is False and none["best_epoch"] == 7
    assert math.isnan(none["late_relative_improvement"])


def test_models_table_carries_convergence(tmp_path):
    root = write_synthetic_run(tmp_path, md=False, rdf=False)
    d = root / "models" / "control" / "w4-s4-l1" / "seed2"
    m = json.loads((d / "metrics.json").read_text())
    m["convergence"].update(stopped_by="max_epochs", best_epoch=EPOCHS, late_relative_improvement=0.05)
    (d / "metrics.json").write_text(json.dumps(m))
    d = root / "models" / "student" / "w4-s4-l1" / "seed2"
    m = json.loads((d / "metrics.json").read_text())
    del m["convergence"]  # a metrics.json without the block is not a metrics.json
    (d / "metrics.json").write_text(json.dumps(m))
    with pytest.raises(RecordError, match=f"{d / 'metrics.json'}: missing field\\(s\\) convergence"):
        build(root)
    m["convergence"] = None  # a null block: not converged, stopped by an unknown rule
    (d / "metrics.json").write_text(json.dumps(m))
    models, _ = build(root)
    assert {"stopped_by", "best_epoch", "late_relative_improvement", "converged"} <= set(models.columns)
    by = models.set_index("model_id")
    assert not by.loc["control/w4-s4-l1/seed2", "converged"]
    assert by.loc["control/w4-s4-l1/seed2", "late_relative_improvement"] == pytest.approx(0.05)
    assert by.loc["student/w4-s4-l1/seed2", "stopped_by"] == "unknown"
    assert not by.loc["student/w4-s4-l1/seed2", "converged"]
    assert by["converged"].sum() == len(models) - 2
    # every claim comparing one of them is undecided, and says which model
    table = all_claims(models, None, AGG)
    force = table[table["claim"] == "students have lower force RMSE than controls (w4-s4-l1)"].iloc[0]
    assert force["verdict"] == UNDECIDED and force["verdict_if_converged"] == HOLDS
    assert not force["all_converged"] and force["n_unconverged"] == 2
    assert "control/w4-s4-l1/seed2 (max_epochs, late improvement 5.0%)" in force["detail"]
    assert "student/w4-s4-l1/seed2 (unknown)" in force["detail"]
    other = table[table["claim"] == "students have lower force RMSE than controls (w8-s4-l1)"].iloc[0]
    assert other["verdict"] == HOLDS and other["all_converged"]


# ------------------------------------------------------------------------------------------------ claims


def test_claims_verdicts(run):
    root, models, _ = run
    labels = AtomEnergies.read(root / "labels" / "atom_energies.json")
    table = all_claims(models, labels, AGG)
    assert table["all_converged"].all()
    v = {c: table[table["claim"] == c]["verdict"].tolist() for c in table["claim"].unique()}
    get = lambda prefix: [x for c, vs in v.items() if c.startswith(prefix) for x in vs]  # noqa: E731

    assert get("students Pareto-dominate controls") == ["holds", "holds"]  # time (ase), memory
    pareto = table[table["section"] == "Pareto dominance"].iloc[0]
    assert pareto["n"] == 3 and pareto["effect"] == pytest.approx(0.2, abs=0.02)
    pooled = table[table["claim"] == "students have lower force RMSE than controls (all architectures)"].iloc[0]
    assert pooled["verdict"] == "holds" and pooled["n"] == len(SEEDS) and pooled["unit_of_n"] == "seeds"
    for arch in ARCHS:  # 3 seeds per architecture, a tight 20 % effect: survives Holm over 3 architectures
        row = table[table["claim"] == f"students have lower force RMSE than controls ({arch})"].iloc[0]
        assert row["verdict"] == "holds" and row["p_adjusted"] >= row["p_value"]
    energy = table[table["claim"].str.startswith("students' energy-per-atom RMSE differs only minimally")].iloc[0]
    assert energy["verdict"] == "holds" and energy["test"].startswith("TOST ±10%")  # +-5 % around zero
    assert energy["ci_level"] == pytest.approx(1 - 2 * (1 - AGG["confidence"]))
    rdf = table[table["claim"].str.startswith("students' RDF error is lower than controls'")]
    assert set(rdf["metric"]) == {METRIC_NAMES[RDF_TEACHER], METRIC_NAMES[RDF_REFERENCE]}
    teacher_rdf = rdf[(rdf["metric"] == METRIC_NAMES[RDF_TEACHER]) & rdf["claim"].str.contains("all arch")]
    assert teacher_rdf.iloc[0]["verdict"] == "holds" and teacher_rdf.iloc[0]["effect"] == pytest.approx(0.5, abs=0.02)
    tracks = table[table["claim"] == "force RMSE tracks the RDF error"].iloc[0]
    assert tracks["n"] == 9 and tracks["effect"] > 0.9 and tracks["verdict"] == "holds"
    speed = table[table["claim"] == "students learn faster than controls"].iloc[0]
    assert speed["verdict"] == "holds" and speed["n"] == len(SEEDS)  # w4 pairs: neither reaches the threshold
    assert "3 pairs where neither" in speed["detail"]
    scaling = table[table["section"] == "speed and scalability"].set_index("claim")
    assert set(scaling["verdict"]) == {"holds"} and len(scaling) == 2  # MD time (ase) and memory, on 'Test CPU'
    cost = table[table["section"] == "cost vs the teacher"].set_index("claim")
    time_row = cost.loc["the best student runs MD faster than the teacher (MD time per step per atom (ase), Test CPU)"]
    assert time_row["verdict"] == "holds" and time_row["effect"] == pytest.approx(0.5, abs=0.01)  # 4 vs 8 us
    assert "2 x faster" in time_row["detail"]
    mem = cost.loc["the best student needs less memory per atom than the teacher (Test CPU)"]
    assert mem["verdict"] == "holds" and mem["effect"] == pytest.approx(0.5)
    assert mem["test"].startswith("probe bracket")
    ablation = table[table["section"] == "ablation"]
    atom = ablation[ablation["claim"].str.startswith("atom-energy") & (ablation["metric"].str.contains("force"))].iloc[0]
    assert atom["verdict"] == "holds" and atom["effect"] == pytest.approx(1 - 0.8 / 1.05, abs=0.01)
    assert "w_A=100" in atom["comparison"] and "w_A=0" in atom["comparison"]
    fw = ablation[ablation["claim"].str.startswith("force-weight") & (ablation["metric"].str.contains("force"))].iloc[0]
    assert fw["verdict"] == "does not hold" and fw["effect"] == pytest.approx(-0.05, abs=0.01)
    ba = table[table["section"] == "Born-Again"].set_index(["claim", "metric"])
    one = ba.loc[("the scheduled Born-Again student beats the teacher", METRIC_NAMES[FORCE])]
    assert one["verdict"] == "inconclusive" and "one teacher seed" in one["detail"]  # one teacher: no interval
    assert math.isnan(one["ci_low"]) and np.isfinite(one["detectable_effect"])
    static = ba.loc[("the static Born-Again student is comparable to the teacher (within ±10%)",
                     METRIC_NAMES[FORCE])]
    assert static["verdict"] == "inconclusive" and static["test"].startswith("TOST")
    schedule = ba.loc[("the loss schedule beats static weights (all architectures)", METRIC_NAMES[FORCE])]
    assert schedule["verdict"] == "holds"  # 0.09 vs 0.10 eV/A, paired by seed
    know = table[table["section"] == "quality of the knowledge"].set_index("claim")
    assert know.iloc[0]["verdict"] == "holds" and know.iloc[0]["effect"] == pytest.approx(0.6)
    assert know.loc["students reproduce the teacher's atom energies better than controls (all architectures)",
                    "verdict"] == "holds"
    # every inconclusive row says how large an effect it could have seen
    inconclusive = table[table["verdict"] == "inconclusive"]
    assert len(inconclusive) and inconclusive["detectable_effect"].notna().all()


def test_pareto_claim_fails_when_a_control_is_better(run):
    _, models, _ = run
    worse = models.copy()
    cheap = (worse["kind"] == "student") & (worse["arch"] == "w4-s4-l1")
    worse.loc[cheap, "test_force_rmse_eV_A"] *= 2.0  # the cheapest students now lose to the cheapest controls
    row = pareto_claim(worse, "memory_per_atom_bytes", "memory per atom", AGG)
    assert row.verdict == "does not hold"
    assert "control w4-s4-l1 vs student w4-s4-l1" in row.detail


def test_claims_without_labels_and_cli(run, tmp_path, capsys):
    root, models, _ = run
    table = all_claims(models, None, AGG)
    know = table[table["section"] == "quality of the knowledge"].iloc[0]
    assert know["verdict"] == "inconclusive" and "no reference" in know["detail"]
    models.to_csv(tmp_path / "models.csv", index=False)
    cfg = json.dumps({"aggregate": {**AGG, "confidence": 0.9, "unrelated": 1}, "foundation": {"calculator": None}})
    out = {k: str(tmp_path / f"{k}") for k in ("c.csv", "c.md", "c.html", "b.csv", "h.csv", "h.md", "h.html")}
    assert claims_main(["--models", str(tmp_path / "models.csv"), "--labels", str(root / "labels" / "atom_energies.json"),
                        "--config-json", cfg, "--out-csv", out["c.csv"], "--out-md", out["c.md"],
                        "--out-html", out["c.html"], "--out-budget-check", out["b.csv"], "--out-headline-csv", out["h.csv"],
                        "--out-headline-md", out["h.md"], "--out-headline-html", out["h.html"]]) == 0
    md = (tmp_path / "c.md").read_text()
    assert "at 90% confidence" in md and "**holds**" in md and "| ablation |" in md
    # the claims, then the budget checks by kind x architecture (each checked model here: one seed)
    assert sum(line.startswith("|---") for line in md.splitlines()) == 2 and "\n## Budget checks\n" in md
    checks = pd.read_csv(out["b.csv"])
    assert len(checks) == len(BUDGET_CHECKED) and (checks["n_seeds"] == 1).all()
    assert checks["relative_change"].to_numpy() == pytest.approx(BUDGET_CHANGE)
    assert 'class="holds"' in (tmp_path / "c.html").read_text()
    assert len(pd.read_csv(tmp_path / "c.csv")) == len(table)
    head = pd.read_csv(tmp_path / "h.csv")
    assert set(head["device"]) == {"Test CPU"} and set(head["best_student"]) == {"w16-s4-l1"}
    assert "2.00x faster" in (tmp_path / "h.md").read_text()
    with pytest.raises(SystemExit) as stop:  # a hand call without a key the claims read: refused before any work
        claims_main(["--models", str(tmp_path / "models.csv"), "--config-json",
                     json.dumps({"aggregate": {"confidence": 0.9}, "foundation": {"calculator": None}}),
                     "--out-csv", str(tmp_path / "again.csv"), "--out-md", str(tmp_path / "again.md")])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "lacks the config keys aggregate.min_relative_effect" in err
    assert "aggregate.equivalence_margin" in err and not (tmp_path / "again.csv").exists()


def test_headline_table(run):
    _, models, _ = run
    head = headline_table(models).set_index("quantity")
    assert head.loc["MD time per step per atom (ase)", "vs_teacher"] == pytest.approx(2.0, rel=0.01)  # 8 / 4 us
    assert head.loc["MD time per step per atom (ase)", "vs_control"] == pytest.approx(1.0)
    assert head.loc["memory per atom", "vs_teacher"] == pytest.approx(0.5)  # 40 kB vs 80 kB
    force = head.loc["test force RMSE"]
    assert force["student"] == pytest.approx(0.8 * 0.15, rel=0.01) and force["teacher"] == pytest.approx(0.10)
    assert force["vs_teacher"] == pytest.approx(0.2, rel=0.05) and force["vs_control"] == pytest.approx(-0.2, abs=0.01)


def test_learning_speed_claim_counts_epoch_zero_and_censoring():
    rows = []
    for seed, (c_ep, s_ep) in enumerate([(0, 0), (9, 4), (None, 3), (None, None)], start=1):
        for kind, ep in (("control", c_ep), ("student", s_ep)):
            rows.append({"kind": kind, "arch": "w4-s4-l1", "seed": seed, "epochs": 10,
                         "epochs_to_threshold": math.nan if ep is None else ep,
                         "threshold_force_rmse_eV_A": 0.2, "learning_speed_factor": 2.0})
    row = learning_speed_claim(pd.DataFrame(rows), AGG)
    # pairs (epochs + 1): (1, 1), (10, 5), (12, 4) [control never: 10 + 1 + 1]; seed 4 dropped
    assert row.n == 3
    assert row.effect == pytest.approx(np.mean([0.0, 0.5, 8 / 12]))
    assert row.baseline_mean == pytest.approx(np.mean([0, 9, 11]))
    assert "1 pairs where neither" in row.detail and "never reached: 1 students, 2 controls" in row.detail


def test_pareto_claim_uses_the_architecture_cost(run):
    _, models, _ = run
    noisy = models.copy()
    sel = noisy["kind"] == "student"
    noisy.loc[sel, "md_ase_us_per_atom_step"] *= 1.5  # timing noise: students measured 50 % slower
    row = pareto_claim(noisy, "md_ase_us_per_atom_step", "MD time", AGG)
    assert row.verdict == "holds" and row.n == 3
    assert "control w4-s4-l1 vs student w4-s4-l1" in row.detail


def test_rdf_rows_undecided_when_a_liquid_is_not_clean(run, tmp_path):
    """A liquid that never melted (or collapsed) under any compared model or under the teacher leaves every RDF
    row undecided (the statistics stay in verdict_if_converged); force rows are untouched; the seed noise floor
    is stated on every RDF row."""
    root, models, _ = run
    clean = all_claims(models.assign(rdf_stable=True, rdf_clean=True), None, AGG, rdf_noise_floor_A=0.043)
    rdf = clean[clean["metric"].str.contains("RDF error")]
    assert len(rdf) >= 3 and (rdf["verdict"] != UNDECIDED_LIQUID).all()
    assert rdf["detail"].str.contains("seed noise floor of the RDF error 0.043 A").all()
    assert not clean[~clean["metric"].str.contains("RDF error")]["detail"].str.contains("noise floor").any()

    frozen = models.assign(rdf_stable=True, rdf_clean=True, rdf_melt_indicator=0.5)
    stuck = frozen["model_id"] == "control/w8-s4-l1/seed2"
    frozen.loc[stuck, ["rdf_clean", "rdf_melt_indicator"]] = [False, 0.02]
    table = all_claims(frozen, None, AGG).set_index(["claim", "metric"])
    teacher_metric = METRIC_NAMES[RDF_TEACHER]
    row = table.loc[("students' RDF error is lower than controls' (w8-s4-l1)", teacher_metric)]
    assert row["verdict"] == UNDECIDED_LIQUID and row["verdict_if_converged"] != UNDECIDED_LIQUID
    assert "control/w8-s4-l1/seed2 (did not melt, melt indicator 0.02)" in row["detail"]
    other = table.loc[("students' RDF error is lower than controls' (w4-s4-l1)", teacher_metric)]
    assert other["verdict"] == "holds"  # its liquids are all clean
    tracks = table.loc[("force RMSE tracks the RDF error", slice(None))].iloc[0]
    assert tracks["verdict"] == UNDECIDED_LIQUID
    force = table.loc[("students have lower force RMSE than controls (w8-s4-l1)", METRIC_NAMES[FORCE])]
    assert force["verdict"] == "holds"

    collapsed_teacher = models.assign(rdf_stable=models["kind"] != "teacher")  # the reference g(r) itself
    table = all_claims(collapsed_teacher, None, AGG)
    rdf = table[table["metric"].str.contains("RDF error")]
    assert (rdf["verdict"] == UNDECIDED_LIQUID).all()
    assert rdf["detail"].str.contains(rf"teacher/{TEACHER}/seed0 \(collapsed or blew up\)").all()


# ------------------------------------------------------------------------------------------------ budget check


def test_budget_check_columns(run):
    root, models, _ = run
    by = models.set_index("model_id")
    for col in aggregate.BUDGET_CHECK_COLUMNS:
        assert col in by
    checked = by.loc["control/w4-s4-l1/seed1"]
    assert checked["budget_check_test_force_rmse_eV_A"] == pytest.approx(0.99 * checked["test_force_rmse_eV_A"])
    assert checked["budget_check_test_energy_per_atom_rmse_eV"] == pytest.approx(
        0.99 * checked["test_energy_per_atom_rmse_eV"])
    assert checked["budget_check_relative_change"] == pytest.approx(BUDGET_CHANGE)
    assert checked["budget_check_stopped_by"] == "patience" and checked["budget_check_epochs"] == 2 * EPOCHS
    unchecked = by.loc["control/w8-s4-l1/seed1"]
    assert math.isnan(unchecked["budget_check_test_force_rmse_eV_A"])
    assert math.isnan(unchecked["budget_check_relative_change"]) and pd.isna(unchecked["budget_check_stopped_by"])
    assert by["budget_check_relative_change"].notna().sum() == len(BUDGET_CHECKED)
    # a check of a model that was not trained, or a file that is not a metrics.json, is an error
    found = aggregate.collect_files(models_dir=root / "models")
    with pytest.raises(ValueError, match="student/w4-s4-l1/seed9"):
        aggregate.build_tables(found, 2.0, {"student/w4-s4-l1/seed9": {}})
    with pytest.raises(ValueError, match="metrics.json"):
        aggregate.read_budget_checks([root / "models" / "student/w4-s4-l1/seed1" / "curve.csv"])
    # no check at all: every column there, NaN
    bare, _ = aggregate.build_tables(found, 2.0)
    assert bare["budget_check_test_force_rmse_eV_A"].isna().all() and "budget_check_stopped_by" in bare


def test_claims_undecided_when_a_budget_check_file_moves_the_error(tmp_path):
    """From the files: the w4 control trained again with every budget doubled is 10 % better, so every row
    comparing controls at w4 (and the pooled rows) is undecided; w16's rows, whose own checks passed, stay."""
    root = write_synthetic_run(tmp_path, md=False, rdf=False)
    write_budget_check(root, "control/w4-s4-l1/seed1", -0.10)
    models, _ = build(root)
    table = all_claims(models, None, AGG).set_index("claim")
    force = "students have lower force RMSE than controls"
    assert table.loc[f"{force} (all architectures)", "verdict"] == UNDECIDED_BUDGET_MOVED
    assert table.loc[f"{force} (w4-s4-l1)", "verdict"] == UNDECIDED_BUDGET_MOVED
    assert table.loc[f"{force} (w4-s4-l1)", "verdict_if_converged"] == HOLDS
    assert "control/w4-s4-l1/seed1 by -10.0%" in table.loc[f"{force} (w4-s4-l1)", "detail"]
    assert table.loc[f"{force} (w16-s4-l1)", "verdict"] == HOLDS
    # the Born-Again rows compare other kinds: their own checks passed
    assert table.loc["the loss schedule beats static weights (all architectures)", "verdict"].tolist() == ["holds"] * 2


def test_html_colours_every_verdict(tmp_path):
    from tsmlip.claims import verdicts as v
    from tsmlip.claims.render import write_html

    assert set(v.VERDICTS) >= {v.HOLDS, v.FAILS, v.INCONCLUSIVE, v.INDISTINGUISHABLE, v.UNDECIDED,
                               v.UNDECIDED_LIQUID, v.UNDECIDED_NO_BUDGET_CHECK, v.UNDECIDED_BUDGET_MOVED,
                               v.UNDECIDED_BUDGET_FLIPPED}
    verdicts = list(v.VERDICTS) + ["undecided (a gate added later)"]
    write_html(pd.DataFrame({"verdict": verdicts}), tmp_path / "v.html", "verdicts")
    page = (tmp_path / "v.html").read_text()
    for verdict in verdicts:
        cls = v.verdict_css_class(verdict)
        assert cls and f'<td class="{cls}">{verdict}</td>' in page
        assert f"td.{cls}{{background:" in page  # the class has a colour
    assert v.verdict_css_class("undecided (liquid not clean)") == "undecided"
    assert v.verdict_css_class(v.UNDECIDED_LIQUID) == "undecided"
    assert v.verdict_css_class("0.5") is None
