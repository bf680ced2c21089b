"""Issue 36, item 2: every handed-on file carries its record and its consumers refuse a mismatch in one line naming
both fingerprints: the synthetic training set (dataset, split, labels), the training curve, the liquid's g(r); and a
model's metrics are tied to the model file they describe (aggregate refuses metrics beside another model.pt, a
hand-edited metrics.json, a curve of another run)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import make_record
from test_provenance_results import MID, _aggregate, _model, run_with_records  # noqa: F401  (the fixture)
from tsmlip import cli, provenance
from tsmlip.provenance_checks import check_model_files, describing_model
from tsmlip.records import RdfMd, TrainMetrics


def _one_line(text: str) -> str:
    text = text.strip()
    assert text and "\n" not in text and "Traceback" not in text, text
    return text


# --- synthetic/*.npz ---------------------------------------------------------------------------------------------
def _training_set(out, tiny_data, labels, seed):
    """The synthetic training set's writer on the tiny data (no teacher MD: the ground truth stands in for the
    synthetic part), with the split drawn with ``seed``."""
    from tsmlip.data.split import make_split
    from tsmlip.synthetic import write_training_set

    dataset, split, arrays = tiny_data
    out.mkdir(parents=True)
    sp = make_split(len(arrays["E"]), 0.17, 0.17, seed)
    lab = np.load(labels)
    return write_training_set(out, {k: arrays[k] for k in ("Z", "R", "cell", "E", "F", "n_atoms")}, sp,
                              {"atom_E": lab["atom_E"], "E": lab["E_teacher"]}, 1e-3, {"n_configs": 0},
                              {"ground_truth_dataset": dataset, "ground_truth_split": split,
                               "ground_truth_labels": labels}, {"n_synthetic": 0})


def test_synthetic_training_set_carries_records_and_a_split_of_another_run_is_refused(tiny_data, tmp_path):
    from tsmlip.label import oracle_labels

    oracle_labels(str(tiny_data[0]), str(tmp_path / "labels.npz"), 1e-3)
    a = tmp_path / "a"
    recs = _training_set(a, tiny_data, tmp_path / "labels.npz", seed=1)
    for name, role in (("dataset.npz", "dataset"), ("split.npz", "split"), ("atom_energies.npz", "labels")):
        assert provenance.read_record(a / name)["fingerprint"] == recs[role]["fingerprint"]
    assert recs["split"]["inputs"]["dataset"]["content"] == provenance.content_fingerprint(a / "dataset.npz")
    files = {"dataset": a / "dataset.npz", "split": a / "split.npz", "labels": a / "atom_energies.npz"}
    provenance.check_inputs(files)  # what train and train-stack check first
    # the same set written again with another split: its split and labels do not belong with run a's
    b = tmp_path / "b"
    _training_set(b, tiny_data, tmp_path / "labels.npz", seed=2)
    with pytest.raises(provenance.ProvenanceError) as e:
        provenance.check_inputs({**files, "split": b / "split.npz"})
    msg = _one_line(str(e.value))
    assert "atom_energies.npz was made from a split of content" in msg and str(b / "split.npz") in msg
    assert provenance.content_fingerprint(a / "split.npz") in msg and provenance.content_fingerprint(
        b / "split.npz") in msg


# --- curve.csv and metrics.json as training writes them ------------------------------------------------------------
def test_training_writes_the_curve_record_and_metrics_tied_to_the_model(tiny_cfg, tiny_data, tmp_path):
    from tsmlip.ids import ModelId
    from tsmlip.train.step import train

    cfg = {k: json.loads(json.dumps(tiny_cfg[k])) for k in ("network", "training", "born_again")}
    cfg["training"]["max_epochs"] = 1
    out = tmp_path / "model"
    train(ModelId.parse("teacher/w4-s4-l1/seed0"), cfg, tiny_data[0], tiny_data[1], out, tmp_path / "ckpt")
    model, metrics, curve = out / "model.pt", out / "metrics.json", out / "curve.csv"
    rec = provenance.read_record(metrics)
    assert rec["inputs"]["model"] == {"file": "model.pt", "content": provenance.content_fingerprint(model),
                                      "fingerprint": provenance.read_record(model)["fingerprint"]}
    side = provenance.read_record(curve)
    assert side["fingerprint"] == rec["fingerprint"] and side["output_content"] == provenance.content_fingerprint(curve)
    check_model_files(metrics, curve)
    # another model file put beside the metrics (a retrained or copied model.pt)
    _model(model, tiny_cfg, seed=5)
    with pytest.raises(provenance.ProvenanceError) as e:
        check_model_files(metrics, curve)
    msg = _one_line(str(e.value))
    assert f"{metrics} was made from a model of content {rec['inputs']['model']['content']}" in msg
    assert f"{model}, has content {provenance.content_fingerprint(model)}" in msg


# --- aggregate: the files of each model belong together ------------------------------------------------------------
def _with_training_records(folder: Path, model: Path, fingerprint_of: dict) -> dict:
    """MID's metrics.json and curve.csv as training writes them: the training's record (tied to model.pt) in the
    metrics, the same record beside the curve."""
    rec = provenance.record("train", fingerprint_of, {})
    TrainMetrics.read(folder / "metrics.json").with_provenance(describing_model(rec, model)).write(
        folder / "metrics.json", indent=2)
    provenance.write_sidecar(folder / "curve.csv", rec)
    return rec


def _agg(root: Path, out: Path) -> list[str]:
    """test_provenance_results' aggregate command with the files as the workflow gives them (no sidecars)."""
    args = _aggregate(root, out)
    i = args.index("--files")
    j = args.index("--out-models")
    return args[:i + 1] + [f for f in args[i + 1:j] if not f.endswith(provenance.SIDECAR_SUFFIX)] + args[j:]


def test_aggregate_refuses_metrics_that_do_not_describe_the_model_beside_them(run_with_records, tiny_cfg, tmp_path,
                                                                              capsys):
    root, folder, model = run_with_records
    rec = _with_training_records(folder, model, {"seed": 1})
    assert cli.main(_agg(root, tmp_path / "ok")) == 0
    metrics, curve = folder / "metrics.json", folder / "curve.csv"
    kept = {p: p.read_bytes() for p in (metrics, curve, model, provenance.sidecar_path(curve))}

    def halved_rmse():  # a number typed into the file: the record's content hash no longer matches
        obj = json.loads(metrics.read_text())
        obj["splits"]["test"]["force_rmse_eV_A"] /= 2
        metrics.write_text(json.dumps(obj, indent=2))
        return [f"{metrics} was changed after its step wrote it"]

    def other_model():  # the model retrained (or copied in) and the old metrics left beside it
        _model(model, tiny_cfg, seed=7)
        return [f"{metrics} was made from a model of content", f"the model now in place, {model}, has content "
                f"{provenance.content_fingerprint(model)}"]

    def curve_of_another_run():
        other = provenance.record("train", {"seed": 2}, {})
        provenance.write_sidecar(curve, other)
        return [f"{curve} records the run of fingerprint {other['fingerprint']}",
                f"{metrics} beside it records {rec['fingerprint']}"]

    def edited_curve():
        curve.write_text(curve.read_text().replace("0.", "0.0", 1))
        return [f"{curve} was changed after its step wrote it"]

    for case in (halved_rmse, other_model, curve_of_another_run, edited_curve):
        for p, data in kept.items():
            p.write_bytes(data)
        want = case()
        capsys.readouterr()
        assert cli.main(_agg(root, tmp_path / case.__name__)) == 1, case.__name__
        err = _one_line(capsys.readouterr().err)
        assert all(w in err for w in want), (case.__name__, err)
        assert not (tmp_path / case.__name__ / "models.csv").exists()


# --- rdf.csv -----------------------------------------------------------------------------------------------------
def _liquid(folder: Path, tiny_cfg, model: Path, seed: int) -> dict:
    """rdf.csv and rdf_md.json as rdf-md writes them (write_liquid_outputs), of a few rattled fcc frames."""
    from ase.build import bulk

    from tsmlip.rdf.liquid import LiquidRun, write_liquid_outputs

    frames = []
    for k in range(3):
        at = bulk("Al", "fcc", a=4.05, cubic=True).repeat((3, 3, 3))
        at.rattle(0.2, seed=seed + k)
        frames.append(at)
    s = {**tiny_cfg["rdf"], "element": "Al", "density_g_cm3": 2.7, "density_source": "test", "seed": seed}
    run = LiquidRun(frames=frames, n_atoms=108, cell=frames[0].cell.array, stable=True, steps_done=10,
                    wall_time_s=1.0, simulated_time_fs=20.0, mean_temperature_K=1000.0, msd_A2={"production": 1.0})
    rec = provenance.record("rdf-md", {"seed": seed}, {"model": model})
    write_liquid_outputs(run, s, "teacher/w4-s4-l1/seed0", "cpu", folder / "rdf.csv", folder / "rdf_md.json",
                         pair_finder=None, provenance=rec, log=lambda m: None)
    return rec


def test_rdf_error_refuses_a_gr_of_another_run_or_edited(tmp_path, tiny_cfg, capsys):
    folder = tmp_path / "models" / "teacher" / "w4-s4-l1" / "seed0"
    model = _model(folder / "model.pt", tiny_cfg, seed=0)
    rec = _liquid(folder, tiny_cfg, model, seed=1)
    side = provenance.read_record(folder / "rdf.csv")
    assert side["fingerprint"] == rec["fingerprint"]
    assert side["output_content"] == provenance.content_fingerprint(folder / "rdf.csv")
    cfg = json.dumps({"rdf": {"experiment": {"enabled": False}}})
    args = ["rdf-error", "--config-json", cfg, "--model-id", "teacher/w4-s4-l1/seed0", "--rdf", str(folder / "rdf.csv"),
            "--info", str(folder / "rdf_md.json"), "--teacher-rdf", str(folder / "rdf.csv"), "--teacher-ids",
            "teacher/w4-s4-l1/seed0", "--out", str(tmp_path / "err.json")]
    assert cli.main(args) == 0
    # the g(r) of another liquid run (another seed) put beside this run's record
    other = tmp_path / "other"
    other.mkdir()
    rec2 = _liquid(other, tiny_cfg, model, seed=2)
    kept = (folder / "rdf.csv").read_bytes(), (folder / "rdf.csv.provenance.json").read_bytes()
    shutil.copy(other / "rdf.csv", folder / "rdf.csv")
    shutil.copy(other / "rdf.csv.provenance.json", folder / "rdf.csv.provenance.json")
    capsys.readouterr()
    assert cli.main(args) == 1
    err = _one_line(capsys.readouterr().err)
    assert f"rdf.csv records the run of fingerprint {rec2['fingerprint']}" in err
    assert f"rdf_md.json beside it records {rec['fingerprint']}" in err
    # this run's g(r), edited by hand
    (folder / "rdf.csv").write_bytes(kept[0])
    (folder / "rdf.csv.provenance.json").write_bytes(kept[1])
    lines = (folder / "rdf.csv").read_text().splitlines()
    lines[5] = lines[5].split(",")[0] + ",9.0"
    (folder / "rdf.csv").write_text("\n".join(lines) + "\n")
    assert cli.main(args) == 1
    assert "rdf.csv was changed after its step wrote it" in _one_line(capsys.readouterr().err)
