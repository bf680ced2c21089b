"""Provenance inside the MD, RDF, table and figure outputs (docs/outputs.md): each records the model file (or the
tables, the upstream JSONs) it was made from; aggregate, rdf-error and claims refuse a file made from another model
than the one now in place, or a table changed after its step wrote it; a changed md setting is planned for a rerun
without Snakemake's metadata."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import ROOT, make_record, run_snakemake
from test_aggregate import AGG, FACTOR_2, write_synthetic_run
from tsmlip import cli, provenance
from tsmlip.ids import Arch
from tsmlip.records import RdfMd

MID = "student/w8-s4-l1/seed1"  # a model of the synthetic run with md_timing_ase.json, max_atoms.json, rdf_error.json


def _model(path: Path, tiny_cfg, seed: int) -> Path:
    from tsmlip.core.model import build_model, save_model

    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(build_model(Arch(4, 4, 1), tiny_cfg["network"], seed=seed), path)
    return path


@pytest.fixture()
def run_with_records(tmp_path, tiny_cfg):
    """The synthetic run of test_aggregate with a model.pt beside MID's files, whose MD and RDF JSONs record it."""
    root = write_synthetic_run(tmp_path / "run", budget_check=False)
    folder = root / "models" / MID
    model = _model(folder / "model.pt", tiny_cfg, seed=0)
    for name, step in (("md_timing_ase.json", "md-timing"), ("max_atoms.json", "max-atoms"),
                       ("rdf_error.json", "rdf-error")):
        p = folder / name
        p.write_text(json.dumps(provenance.json_with(json.loads(p.read_text()),
                                                     provenance.record(step, {}, {"model": model}))))
    return root, folder, model


def _aggregate(root: Path, out: Path) -> list[str]:
    files = sorted(str(p) for p in (root / "models").rglob("*") if p.is_file() and p.suffix in (".json", ".csv"))
    return ["aggregate", "--config-json", FACTOR_2, "--files", *files, "--out-models", str(out / "models.csv"),
            "--out-summary", str(out / "summary.csv"), "--out-curves", str(out / "curves.csv"),
            "--out-models-html", str(out / "models.html")]


def test_aggregate_writes_table_records_and_refuses_an_md_json_of_another_model(run_with_records, tiny_cfg, tmp_path,
                                                                                 capsys):
    root, folder, model = run_with_records
    out = tmp_path / "tables"
    assert cli.main(_aggregate(root, out)) == 0
    for name in ("models.csv", "summary.csv", "curves.csv", "models.html"):
        rec = json.loads((out / f"{name}.provenance.json").read_text())
        assert rec["step"] == "aggregate" and rec["output_content"] == provenance.content_fingerprint(out / name)
        read = {e["file"] for e in rec["inputs"]["files"]}
        assert {"md_timing_ase.json", "max_atoms.json", "rdf_error.json", "metrics.json", "curve.csv"} <= read
    # the model retrained (another seed) but its MD and RDF files left from the old one
    _model(model, tiny_cfg, seed=1)
    capsys.readouterr()
    (out / "models.csv").unlink()
    assert cli.main(_aggregate(root, out)) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(model) in err and str(folder) in err
    assert "was made from a model of content" in err and not (out / "models.csv").exists()
    # a JSON without a record (an older file) is read as before
    for name in ("md_timing_ase.json", "max_atoms.json", "rdf_error.json"):
        p = folder / name
        obj = json.loads(p.read_text())
        obj.pop("_provenance")
        p.write_text(json.dumps(obj))
    assert cli.main(_aggregate(root, out)) == 0


def test_aggregate_refuses_an_md_json_of_other_settings(run_with_records, tmp_path, capsys):
    """The workflow passes the settings hash each step gets from the configuration; a file recording other settings
    (an md_timing JSON of the same model copied in from a run of other md settings) is refused."""
    root, folder, model = run_with_records
    cfg = {"md": {"timing": {"steps": 3}}}
    p = folder / "md_timing_ase.json"
    obj = json.loads(p.read_text())
    p.write_text(json.dumps(provenance.json_with(obj, provenance.record("md-timing", cfg, {"model": model}))))
    same = [f"md-timing={provenance.settings_hash(cfg)}"]
    assert cli.main(_aggregate(root, tmp_path / "a") + ["--expect-settings", *same]) == 0
    other = [f"md-timing={provenance.settings_hash({'md': {'timing': {'steps': 4}}})}"]
    capsys.readouterr()
    assert cli.main(_aggregate(root, tmp_path / "b") + ["--expect-settings", *other]) == 1
    err = capsys.readouterr().err
    assert f"{p} was made by md-timing with other settings" in err and not (tmp_path / "b" / "models.csv").exists()


def test_aggregate_refuses_a_truncated_md_json(run_with_records, tmp_path, capsys):
    root, folder, _ = run_with_records
    p = folder / "md_timing_ase.json"
    p.write_text(p.read_text()[:-40])
    assert cli.main(_aggregate(root, tmp_path / "t")) == 1
    err = capsys.readouterr().err
    assert str(p) in err and "Traceback" not in err


def test_claims_refuse_a_hand_edited_table_and_record_theirs(run_with_records, tmp_path, capsys):
    root, *_ = run_with_records
    out = tmp_path / "tables"
    assert cli.main(_aggregate(root, out)) == 0
    cfg = json.dumps({"aggregate": AGG, "foundation": {"calculator": None}})
    args = ["claims", "--models", str(out / "models.csv"), "--config-json", cfg, "--out-csv", str(out / "claims.csv"),
            "--out-md", str(out / "claims.md"), "--out-headline-csv", str(out / "headline.csv")]
    assert cli.main(args) == 0
    rec = json.loads((out / "claims.csv.provenance.json").read_text())
    assert rec["step"] == "claims" and rec["inputs"]["models"]["fingerprint"] == json.loads(
        (out / "models.csv.provenance.json").read_text())["fingerprint"]
    assert (out / "claims.md.provenance.json").is_file() and (out / "headline.csv.provenance.json").is_file()
    text = (out / "models.csv").read_text()
    (out / "models.csv").write_text(text.replace("0.3", "0.1", 1))  # a number changed by hand
    capsys.readouterr()
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert "models.csv was changed after its step wrote it" in err and "models.csv.provenance.json" in err
    (out / "models.csv.provenance.json").unlink()  # the way out the message names: use the table as it is
    assert cli.main(args) == 0


def test_rdf_error_refuses_a_liquid_of_another_model(tmp_path, tiny_cfg, capsys):
    """rdf_md.json made from one model, then another model put in its place: rdf-error names both files; the
    noise floor's record carries the teacher model, and claims refuse it when the teacher changed."""
    from tsmlip import rdf

    folder = tmp_path / "models" / "teacher" / "w4-s4-l1" / "seed0"
    model = _model(folder / "model.pt", tiny_cfg, seed=0)
    r = rdf.r_grid(4.0, 40)
    rdf.write_curve(folder / "rdf.csv", r, r * 0 + 1)
    make_record(RdfMd, model_id="teacher/w4-s4-l1/seed0", n_frames=5, device="cpu", temperature_K=1200.0, n_atoms=32,
                stable=True, element="Al").with_provenance(provenance.record("rdf-md", {}, {"model": model})).write(
        folder / "rdf_md.json")
    cfg = json.dumps({"rdf": {"experiment": {"enabled": False}}})
    args = ["rdf-error", "--config-json", cfg, "--model-id", "teacher/w4-s4-l1/seed0", "--rdf", str(folder / "rdf.csv"),
            "--info", str(folder / "rdf_md.json"), "--teacher-rdf", str(folder / "rdf.csv"), "--teacher-ids",
            "teacher/w4-s4-l1/seed0"]
    assert cli.main(args + ["--out", str(folder / "rdf_error.json")]) == 0
    rec = json.loads((folder / "rdf_error.json").read_text())["_provenance"]
    assert rec["inputs"]["model"]["content"] == provenance.content_fingerprint(model)
    assert rec["inputs"]["info"]["fingerprint"] == provenance.read_record(folder / "rdf_md.json")["fingerprint"]
    assert rec["liquid_settings"] == provenance.read_record(folder / "rdf_md.json")["settings"]
    # the noise floor: made of the teacher's liquid; claims check it against the teacher model in place
    floor = tmp_path / "rdf_noise" / "noise_floor.json"
    floor.parent.mkdir()
    shutil.copy(folder / "rdf_error.json", floor)
    _model(model, tiny_cfg, seed=1)  # the teacher retrained
    capsys.readouterr()
    assert cli.main(args + ["--out", str(tmp_path / "again.json")]) == 1
    err = capsys.readouterr().err
    assert "rdf_md.json was made from a model of content" in err and str(model) in err
    assert not (tmp_path / "again.json").exists()
    with pytest.raises(provenance.ProvenanceError, match=r"noise_floor\.json was made from a model"):
        provenance.check_made_from(floor, "model", tmp_path / "models" / "teacher" / "w4-s4-l1" / "seed0" / "model.pt")


def test_figure_records_its_tables(run_with_records, tmp_path):
    root, *_ = run_with_records
    out = tmp_path / "tables"
    assert cli.main(_aggregate(root, out)) == 0
    png, pdf = tmp_path / "scaling.png", tmp_path / "scaling.pdf"
    assert cli.main(["plot", "scaling", "--config-json", json.dumps({"aggregate": {"dpi": 50}}), "--models",
                     str(out / "models.csv"), "--pdf", str(pdf), "--png", str(png)]) == 0
    rec = json.loads(Path(f"{png}.provenance.json").read_text())
    assert rec["step"] == "plot" and rec["output_content"] == provenance.content_fingerprint(png)
    assert rec["inputs"]["models"]["fingerprint"] == provenance.read_record(out / "models.csv")["fingerprint"]


def _jobs(text):
    import re

    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", text, re.M) if m.group(1) != "total"}


def test_fresh_clone_on_an_old_results_folder_replans_md_timing_after_an_md_setting_changed(tmp_path):
    """Without Snakemake's metadata (a clone of the workflow on an old results folder) a changed md.timing setting
    plans md_timing again, not the training; the unchanged configuration plans nothing. The run's md_timing JSON
    records the teacher model it timed."""
    results = tmp_path / "results"
    teacher = results / "models" / "teacher" / "w12-s8-l2" / "seed0"
    targets = ["--", str(teacher / "md_timing_ase.json")]
    base = ["--configfile", "config/test.yaml", "--config", f"results_dir={results}"]
    first = run_snakemake("--cores", "1", *base, *targets, timeout=900)
    assert first.returncode == 0, first.stderr[-4000:]
    rec = json.loads((teacher / "md_timing_ase.json").read_text())["_provenance"]
    assert rec["step"] == "md-timing" and rec["inputs"]["model"]["content"] == provenance.content_fingerprint(
        teacher / "model.pt")
    assert rec["inputs"]["model"]["fingerprint"] == provenance.read_record(teacher / "model.pt")["fingerprint"]
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("Snakefile", "workflow", "config", "envs"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, clone / name)
    same = run_snakemake("-n", *base, *targets, cwd=clone)
    assert same.returncode == 0 and "Nothing to be done" in same.stdout + same.stderr, same.stdout[-3000:]
    (clone / "steps.yaml").write_text("md: {timing: {steps: 4}}\n")
    changed = ["--configfile", "config/test.yaml", "steps.yaml", "--config", f"results_dir={results}"]
    jobs = _jobs((plan := run_snakemake("-n", *changed, *targets, cwd=clone)).stdout + plan.stderr)
    assert jobs.get("md_timing") == 1 and "train_stack" not in jobs and "split" not in jobs, plan.stdout[-3000:]
