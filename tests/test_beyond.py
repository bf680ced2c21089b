"""The two kinds beyond the paper (docs/beyond.md): student_oracle (the reference's own atom energies as
targets) and student_synthetic (ground truth + teacher-generated configurations, training split only)."""
import json

import numpy as np
import pandas as pd
import pytest
from conftest import BASE_CONFIG, TEST_CONFIG, write_emt_copper_xyz

from tsmlip.config import load_config, validate
from tsmlip.ids import ConfigError
from tsmlip.label import LabelError, load_labels, oracle_labels


def test_oracle_labels_are_the_reference_atom_energies(tiny_data, tmp_path):
    dataset, _, arrays = tiny_data
    info = oracle_labels(str(dataset), str(tmp_path / "oracle.npz"), 1e-3)
    atom_E = load_labels(tmp_path / "oracle.npz", arrays)  # re-checked: sums within the tolerance
    mask = arrays["Z"] != 0
    np.testing.assert_array_equal(atom_E[mask], arrays["ref_atom_E"][mask])
    assert np.all(atom_E[~mask] == 0)
    np.testing.assert_allclose(atom_E.sum(axis=1), arrays["E"], atol=1e-9)
    assert info["max_sum_deviation_eV"] < 1e-9


def test_oracle_refused_without_reference_atom_energies(tiny_data, tmp_path):
    _, _, arrays = tiny_data
    np.savez(tmp_path / "no_ref.npz", **{k: v for k, v in arrays.items() if k != "ref_atom_E"})
    with pytest.raises(LabelError, match="sweep.kinds"):
        oracle_labels(str(tmp_path / "no_ref.npz"), str(tmp_path / "o.npz"), 1e-3)


def _with_kinds(cfg_overlay: dict) -> dict:
    cfg = load_config(BASE_CONFIG, TEST_CONFIG)
    for section, values in cfg_overlay.items():
        cfg[section] = dict(cfg[section], **values)
    return cfg


def test_oracle_needs_data_with_atom_energies_at_planning(tmp_path):
    """ANI-Al (DFT) has no per-atom energies: the config is refused before any job; an extended XYZ with an
    `energies` column is accepted, one without refused."""
    with pytest.raises(ConfigError, match="student_oracle"):
        validate(_with_kinds({"data": {"source": "ani_h5", "path": str(tmp_path)}}))
    with_energies = write_emt_copper_xyz(tmp_path / "cu.xyz", n_configs=2)
    validate(_with_kinds({"data": {"source": "extxyz", "path": str(with_energies)}}))
    import ase.io

    frames = ase.io.read(with_energies, index=":")
    for f in frames:
        f.calc.results.pop("energies")
    ase.io.write(tmp_path / "plain.xyz", frames, format="extxyz")
    with pytest.raises(ConfigError, match="student_oracle"):
        validate(_with_kinds({"data": {"source": "extxyz", "path": str(tmp_path / "plain.xyz")}}))
    # without the oracle kind the same data are fine
    validate(_with_kinds({"data": {"source": "ani_h5", "path": str(tmp_path)},
                          "sweep": {"kinds": ["student", "control", "student_synthetic"]}}))


def test_extxyz_reads_the_per_atom_energies(tmp_path):
    from tsmlip.data.io import read_extxyz

    path = write_emt_copper_xyz(tmp_path / "cu.xyz", n_configs=2)
    for c in read_extxyz(path):
        assert c["ref_atom_E"].shape == (len(c["Z"]),)
        assert c["ref_atom_E"].sum() == pytest.approx(c["E"], abs=1e-6)


def test_concatenate_pads_to_the_larger_dataset():
    from tsmlip.synthetic import concatenate

    a = {"Z": np.ones((2, 3), int), "R": np.ones((2, 3, 3)), "E": np.zeros(2), "ref_atom_E": np.ones((2, 3))}
    b = {"Z": np.full((1, 5), 13), "R": np.full((1, 5, 3), 2.0), "E": np.ones(1)}
    m = concatenate(a, b)
    assert m["Z"].shape == (3, 5) and m["R"].shape == (3, 5, 3) and "ref_atom_E" not in m
    assert np.all(m["Z"][:2, 3:] == 0) and np.all(m["Z"][2] == 13) and list(m["E"]) == [0, 0, 1]
    labels = concatenate({"atom_E": np.ones((2, 3)), "E": np.full(2, 3.0)}, {"atom_E": np.ones((1, 5)), "E": [5.0]})
    assert labels["atom_E"].shape == (3, 5) and labels["atom_E"].sum(axis=1).tolist() == [3, 3, 5]


def test_synthetic_training_set(e2e_run):
    """The synthetic configurations carry the teacher's labels (atom energies summing to the teacher's totals,
    energies and forces = the teacher's predictions), come after the ground truth unchanged, and enter the
    training split only."""
    from tsmlip.data import load_dataset, load_split
    from tsmlip.core.model import load_model
    from tsmlip.core.predict import predict

    results, _ = e2e_run
    cfg = load_config(BASE_CONFIG, TEST_CONFIG)
    gt, split = load_dataset(results / "data/dataset.npz"), load_split(results / "data/split.npz")
    syn = load_dataset(results / "synthetic/dataset.npz")
    syn_split = load_split(results / "synthetic/split.npz", len(syn["E"]))
    info = json.loads((results / "synthetic/synthetic.json").read_text())
    n_gt, n_syn = len(gt["E"]), info["n_synthetic"]
    assert len(syn["E"]) == n_gt + n_syn and n_syn >= cfg["synthetic"]["n_configs"] / 2
    new = np.arange(n_gt, n_gt + n_syn)
    # ground truth first, unchanged
    k = gt["Z"].shape[1]
    for key in ("Z", "R", "F"):
        np.testing.assert_array_equal(syn[key][:n_gt, :k], gt[key])
    np.testing.assert_array_equal(syn["E"][:n_gt], gt["E"])
    # validation and test: the ground truth's, untouched; training: the ground truth's + every synthetic one
    for name in ("valid", "test"):
        np.testing.assert_array_equal(syn_split[name], split[name])
        assert not np.isin(syn_split[name], new).any()
    assert sorted(syn_split["train"]) == sorted(list(split["train"]) + list(new))
    # labels: the teacher's of the ground truth; the synthetic ones sum to the teacher's totals
    labels = load_labels(results / "synthetic/atom_energies.npz", syn)
    teacher_labels = load_labels(results / "labels/atom_energies.npz", gt)
    np.testing.assert_array_equal(labels[:n_gt, :k], teacher_labels)
    np.testing.assert_allclose(labels[new].sum(axis=1), syn["E"][new], atol=cfg["labels"]["sum_tolerance_eV"])
    teacher = results / "models/teacher/w12-s8-l2/seed0/model.pt"
    assert info["teachers"] == [str(teacher)]
    pred = predict(load_model(teacher), syn, new)
    np.testing.assert_allclose(pred["E"], syn["E"][new], rtol=0, atol=1e-3)
    np.testing.assert_allclose(pred["F"], syn["F"][new], rtol=0, atol=1e-4)
    np.testing.assert_allclose(pred["atom_E"], labels[new], rtol=0, atol=1e-4)
    assert info["teacher_spread"]["n_teachers"] == 1
    # on the embedded EMT data the teacher labels' own error is measured against the reference
    assert info["labels_vs_reference"]["reference"] == "emt"
    assert 0 < info["labels_vs_reference"]["force_rmse_eV_A"] < 10
    # the configurations come from the configured states (temperatures recorded per configuration)
    temps = {s["temperature_K"] for s in cfg["synthetic"]["states"]}
    assert set(syn["T_K"][new]) <= temps


def test_beyond_models_use_their_labels_and_the_students_weights(e2e_run):
    results, _ = e2e_run
    student = json.loads((results / "models/student/w6-s6-l1/seed1/metrics.json").read_text())
    oracle = json.loads((results / "models/student_oracle/w6-s6-l1/seed1/metrics.json").read_text())
    synthetic = json.loads((results / "models/student_synthetic/w6-s6-l1/seed1/metrics.json").read_text())
    assert oracle["loss_weights"] == student["loss_weights"] == synthetic["loss_weights"]
    assert oracle["teacher_labels"].endswith("labels/oracle_atom_energies.npz")
    assert synthetic["teacher_labels"].endswith("synthetic/atom_energies.npz")
    assert oracle["atom_energy_labels_in_loss"] and synthetic["atom_energy_labels_in_loss"]
    # scored on the same test configurations as every other kind
    assert synthetic["splits"]["test"]["n_configs"] == student["splits"]["test"]["n_configs"]
    claims = pd.read_csv(results / "tables/claims.csv")
    beyond = claims[claims["section"] == "beyond the paper"]
    assert {"oracle atom energies lower the error below the teacher's atom energies (all architectures)",
            "teacher-generated configurations lower the student's error (all architectures)"} <= set(beyond["claim"])
    models = pd.read_csv(results / "tables/models.csv")
    assert {"student_oracle", "student_synthetic"} <= set(models["kind"])


def _models(effect_oracle: float, seeds=(1, 2, 3, 4), archs=("w8-s8-l2", "w16-s8-l2", "w32-s8-l2")) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for arch in archs:
        for seed in seeds:
            base = 0.05 * (1 + 0.05 * rng.normal())
            for kind, value in (("student", base), ("control_fw", base * 1.01),
                                ("student_oracle", base * (1 - effect_oracle) * (1 + 0.01 * rng.normal()))):
                rows.append({"model_id": f"{kind}/{arch}/seed{seed}", "kind": kind, "arch": arch, "seed": seed,
                             "test_force_rmse_eV_A": value, "test_energy_per_atom_rmse_eV": value / 10,
                             "converged": True})
    return pd.DataFrame(rows)


def test_beyond_claims_decide_a_known_effect():
    from tsmlip.claims.rows import beyond_claims

    cfg = load_config(BASE_CONFIG)["aggregate"]
    rows = {(r.claim, r.metric): r for r in beyond_claims(_models(0.2), cfg)}
    key = ("oracle atom energies lower the error below the teacher's atom energies (all architectures)",
           "test force RMSE (eV/A)")
    assert rows[key].verdict == "holds" and rows[key].effect == pytest.approx(0.2, abs=0.03)
    none = {(r.claim, r.metric): r for r in beyond_claims(_models(0.0), cfg)}
    assert none[key].verdict != "holds"
    # no synthetic models: no synthetic rows
    assert not any("synthetic" in c for c, _ in rows)


def test_synthesize_with_a_teacher_ensemble(tiny_cfg, tiny_data, tmp_path):
    """Two teachers: trajectories take turns on them, every synthetic configuration gets their mean energies,
    forces and atom energies, and the spread between them is recorded."""
    from tsmlip.ids import Arch
    from tsmlip.label import label
    from tsmlip.core.model import build_model, load_model, save_model
    from tsmlip.core.predict import predict
    from tsmlip.synthetic import synthesize

    dataset, split, _ = tiny_data
    teachers = []
    for seed in (0, 1):  # untrained: different weights, so their predictions differ
        teachers.append(str(tmp_path / f"teacher{seed}.pt"))
        save_model(build_model(Arch(6, 6, 1), tiny_cfg["network"], seed=seed), teachers[-1])
    label(teachers, str(dataset), str(tmp_path / "labels.npz"), 1e-3, "mean", device="cpu")
    cfg = dict(tiny_cfg["synthetic"], n_configs=4, supercell=[2, 2, 2], equilibration_steps=2, melt_steps=0,
               steps_between_snapshots=2, snapshots_per_trajectory=1, states=[{"temperature_K": 300, "density_ratio": 1.0}],
               min_distance_A=tiny_cfg["data"]["min_distance_A"], blowup_temperature_K=10000)
    info = synthesize(teachers, dataset, split, tmp_path / "labels.npz", cfg, tmp_path / "syn", 1e-3, "cpu")
    assert [t["teacher"] for t in info["trajectories"]] == teachers * 2
    assert info["teacher_spread"]["n_teachers"] == 2 and info["teacher_spread"]["force_std_eV_A_rms"] > 0
    from tsmlip.records import AtomEnergies, DatasetProvenance, SyntheticInfo

    # the files the stage hands on are their records
    written = SyntheticInfo.read(tmp_path / "syn/synthetic.json")
    assert written.split_sizes[0] == len(np.load(split)["train"]) + info["n_synthetic"]
    assert written.to_json() == json.loads((tmp_path / "syn/synthetic.json").read_text())
    assert DatasetProvenance.read(tmp_path / "syn/provenance.json").synthetic["n_synthetic"] == info["n_synthetic"]
    assert AtomEnergies.read(tmp_path / "labels.json").ensemble == "mean of teachers' atom energies"
    syn = np.load(tmp_path / "syn/dataset.npz")
    rows = np.arange(info["n_ground_truth"], info["n_ground_truth"] + info["n_synthetic"])
    preds = [predict(load_model(t), {k: syn[k] for k in syn.files}, rows) for t in teachers]
    np.testing.assert_allclose(syn["E"][rows], (preds[0]["E"] + preds[1]["E"]) / 2, atol=1e-4)
    np.testing.assert_allclose(syn["F"][rows], (preds[0]["F"] + preds[1]["F"]) / 2, atol=1e-5)
    atom_E = np.load(tmp_path / "syn/atom_energies.npz")["atom_E"][rows]
    np.testing.assert_allclose(atom_E, (preds[0]["atom_E"] + preds[1]["atom_E"]) / 2, atol=1e-5)
