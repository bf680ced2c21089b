"""Results that carry their own provenance: model files record their data and split and consumers refuse a model of
another split; checkpoints match on the code stamp; every output records what made it; a stale file is planned
for a rerun even without Snakemake's metadata."""
import json

import numpy as np
import pytest

from tsmlip import provenance
from tsmlip.ids import ModelId
from tsmlip.data.split import make_split


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, tiny_cfg, tiny_data):
    """A teacher trained for 2 epochs on the tiny data and split; and a second split of the same data (seed 2)."""
    from tsmlip.train.step import train

    d = tmp_path_factory.mktemp("prov")
    cfg = {k: json.loads(json.dumps(tiny_cfg[k])) for k in ("network", "training", "born_again")}
    cfg["training"]["max_epochs"] = 2
    mid = ModelId.parse("teacher/w4-s4-l1/seed0")
    train(mid, cfg, tiny_data[0], tiny_data[1], d / "model", d / "ckpt")
    other = d / "split_seed2.npz"
    sp = tiny_cfg["split"]
    np.savez(other, **make_split(len(tiny_data[2]["E"]), sp["valid_fraction"], sp["test_fraction"], 2))
    return d / "model" / "model.pt", other, cfg, mid, d


def test_model_file_records_its_data_split_and_provenance(teacher, tiny_data):
    from tsmlip.data.split import split_fingerprint
    from tsmlip.core.model import read_model_payload

    meta = read_model_payload(teacher[0])["meta"]
    assert meta["dataset_fingerprint"] == provenance.content_fingerprint(tiny_data[0])
    assert meta["split_fingerprint"] == split_fingerprint(tiny_data[1])
    rec = meta["provenance"]
    assert rec["step"] == "train" and rec["code"] == provenance.step_code_stamp("train")
    assert rec["inputs"]["split"]["content"] == provenance.content_fingerprint(tiny_data[1])
    metrics = json.loads((teacher[0].parent / "metrics.json").read_text())
    assert metrics["_provenance"]["fingerprint"] == rec["fingerprint"]
    from tsmlip.records import TrainMetrics

    # the record keeps the provenance record: read and written back, the file's JSON object
    read = TrainMetrics.read(teacher[0].parent / "metrics.json")
    assert read.provenance == metrics["_provenance"] and read.to_json() == metrics


def test_labels_refuse_a_teacher_of_another_split(teacher, tiny_data, tmp_path, capsys):
    from tsmlip import cli

    model, other_split, *_ = teacher
    cfg = json.dumps({"labels": {"teacher": "mean", "sum_tolerance_eV": 1e-3}})
    args = ["label", "--config-json", cfg, "--teacher", str(model), "--teacher-ids", "teacher/w4-s4-l1/seed0",
            "--dataset", str(tiny_data[0]), "--device", "cpu"]
    rc = cli.main(args + ["--split", str(other_split), "--out", str(tmp_path / "bad.npz")])
    err = capsys.readouterr().err
    assert rc == 1 and not (tmp_path / "bad.npz").exists()
    assert "trained on a split of content" in err and str(other_split) in err and str(model) in err
    assert cli.main(args + ["--split", str(tiny_data[1]), "--out", str(tmp_path / "ok.npz")]) == 0
    rec = provenance.read_record(tmp_path / "ok.npz")
    assert rec["step"] == "label" and rec["inputs"]["split"]["content"] == provenance.content_fingerprint(tiny_data[1])


def test_consumers_refuse_a_model_of_another_dataset(teacher, tiny_data, tmp_path):
    model, other_split, *_ = teacher
    arrays = dict(tiny_data[2])
    arrays["E"] = arrays["E"] + 0.01  # another dataset of the same configurations
    np.savez(tmp_path / "other.npz", **arrays)
    with pytest.raises(provenance.ProvenanceError, match=r"trained on a dataset of content .*other\.npz"):
        provenance.check_model_data(model, tmp_path / "other.npz", tiny_data[1])
    from tsmlip.synthetic import synthesize

    with pytest.raises(provenance.ProvenanceError, match="trained on a split"):
        synthesize([str(model)], str(tiny_data[0]), str(other_split), str(tmp_path / "none.npz"), {}, tmp_path, 1e-3)
    from tsmlip import data_quality

    with pytest.raises(provenance.ProvenanceError, match="trained on a split"):
        data_quality.main(["--config-json", json.dumps({"training": {"eval_batch_size": 8}}), "--teacher", str(model),
                           "--dataset", str(tiny_data[0]), "--split", str(other_split),
                           "--out", str(tmp_path / "dq.csv")])


def test_checkpoint_of_other_code_is_not_resumed(teacher, tiny_data, monkeypatch):
    from tsmlip.train import loop

    _, _, cfg, mid, _ = teacher
    before = loop.run_fingerprint(mid, cfg, tiny_data[0], None, tiny_data[1])
    assert before == loop.run_fingerprint(mid, cfg, tiny_data[0], None, tiny_data[1])
    monkeypatch.setattr(loop, "step_code_stamp", lambda step: "another-code-stamp")
    assert loop.run_fingerprint(mid, cfg, tiny_data[0], None, tiny_data[1]) != before


def test_one_settings_fingerprint_for_the_rule_the_stamp_the_checkpoint_and_the_provenance(tiny_data, tmp_path):
    """A model's training settings are defined and hashed in one place (tsmlip.settings): the --config-json its rule
    passes (Snakemake's params), the stamp the plan gives it, its checkpoint and the provenance record of its outputs
    agree. A dry run of the tiny config plans the teacher's stack; the command it prints then trains the model (on the
    tests' tiny data), with training.torch_threads added by --threads, which no result depends on."""
    import re
    import shlex

    import torch

    from conftest import BASE_CONFIG, TEST_CONFIG, run_snakemake
    from tsmlip import settings
    from tsmlip.config import canonical, load_config
    from tsmlip.train import fast

    results, mid = tmp_path / "results", "teacher/w12-s8-l2/seed0"
    out = run_snakemake("-n", "-p", "--cores", "1", "--configfile", "config/test.yaml", "--config",
                        f"results_dir={results}", "--", str(results / "models" / mid / "metrics.json"))
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    argv = shlex.split(re.search(r"tsmlip train-stack (.*?) > ", text).group(1))
    params = argv[argv.index("--config-json") + 1]
    stamp = re.search(rf"/train/{re.escape(mid)}/([0-9a-f]{{16}})\.stamp", text).group(1)

    cfg = canonical(load_config(BASE_CONFIG, TEST_CONFIG))
    # the rule's params: the step's settings (without the model id, which the rule passes as a flag of its own)
    assert json.loads(params) == settings.step_settings("train-stack", cfg)
    # the stamp: the planned fingerprint of the model's settings (with its id), its data's and its split's
    data_fp = provenance.planned("generate-dataset", settings.settings_json("generate-dataset", cfg), [])
    split_fp = provenance.planned("split", settings.settings_json("split", cfg), [data_fp])
    assert stamp == provenance.planned("train", settings.step_settings("train", cfg, model_id=mid), [data_fp, split_fp])
    want = settings.settings_fingerprint("train", cfg, model_id=mid)
    assert want == provenance.settings_hash(dict(json.loads(params), model_id=mid))

    # the printed command (its data and outputs here): the checkpoint and the provenance record hash the same
    ds, sp, _ = tiny_data
    assert fast.main(["--config-json", params, "--threads", argv[argv.index("--threads") + 1], "--model-ids", mid,
                      "--dataset", str(ds), "--split", str(sp), "--out-root", str(tmp_path / "out"),
                      "--checkpoint-root", str(tmp_path / "ck")]) == 0
    ck = torch.load(tmp_path / "ck" / mid / "checkpoint.pt", map_location="cpu", weights_only=True)
    metrics = json.loads((tmp_path / "out" / mid / "metrics.json").read_text())
    assert ck["settings"] == metrics["_provenance"]["settings"] == want
    assert provenance.read_record(tmp_path / "out" / mid / "model.pt")["settings"] == want


def test_train_refuses_labels_of_another_dataset(teacher, tiny_data, tmp_path):
    """Inputs that do not belong together: labels whose record names another dataset than the one given."""
    model, *_ = teacher
    from tsmlip.label import label

    label([str(model)], str(tiny_data[0]), str(tmp_path / "labels.npz"), 1e-3, "mean", "cpu",
          split_path=str(tiny_data[1]), settings={})
    arrays = dict(tiny_data[2])
    arrays["E"] = arrays["E"] + 0.01
    np.savez(tmp_path / "other.npz", **arrays)
    with pytest.raises(provenance.ProvenanceError, match=r"labels\.npz was made from a dataset of content .*other\.npz"):
        provenance.check_inputs({"dataset": tmp_path / "other.npz", "split": tiny_data[1],
                                 "labels": tmp_path / "labels.npz"})
    provenance.check_inputs({"dataset": tiny_data[0], "split": tiny_data[1], "labels": tmp_path / "labels.npz"})


def _jobs(text):
    """The job counts of a Snakemake (dry-)run's "Job stats" table."""
    import re

    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", text, re.M) if m.group(1) != "total"}


def test_fresh_clone_on_an_old_results_folder_reruns_what_a_changed_split_seed_makes_stale(tmp_path):
    """Without Snakemake's metadata (a fresh clone of the workflow pointed at an old results folder) a changed
    split.seed reruns the split and the teacher; the unchanged configuration reruns nothing."""
    import shutil

    from conftest import ROOT, run_snakemake
    from tsmlip.data.split import split_fingerprint
    from tsmlip.core.model import read_model_payload

    results = tmp_path / "results"
    teacher = results / "models" / "teacher" / "w12-s8-l2" / "seed0"
    targets = ["--", str(results / "data" / "split.npz"), str(teacher / "metrics.json")]
    base = ["--configfile", "config/test.yaml", "--config", f"results_dir={results}"]
    first = run_snakemake("--cores", "1", *base, *targets, timeout=900)
    assert first.returncode == 0, first.stderr[-4000:]
    assert not (results / ".tsmlip-run.lock").exists()  # given back at the end
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("Snakefile", "workflow", "config", "envs"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, clone / name)
    assert not (clone / ".snakemake").exists()
    same = run_snakemake("-n", *base, *targets, cwd=clone)
    assert same.returncode == 0 and "Nothing to be done" in same.stdout + same.stderr, same.stdout[-3000:]
    (clone / "seed2.yaml").write_text("split: {seed: 2}\n")
    changed_args = ["--configfile", "config/test.yaml", "seed2.yaml", "--config", f"results_dir={results}"]
    plan = run_snakemake("-n", *changed_args, *targets, cwd=clone)
    jobs = _jobs(plan.stdout + plan.stderr)
    # the teacher's stack (the fast engine: train_stack, then its files collected)
    assert jobs.get("split") == 1 and jobs.get("train_stack") == 1 and jobs.get("collect_model") == 1 \
        and "generate_dataset" not in jobs, plan.stdout[-3000:]
    rerun = run_snakemake("--cores", "1", *changed_args, *targets, cwd=clone, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    assert json.loads((results / "data" / "split.json").read_text())["seed"] == 2
    meta = read_model_payload(teacher / "model.pt")["meta"]
    assert meta["split_fingerprint"] == split_fingerprint(results / "data" / "split.npz")
    assert "resuming from checkpoint" not in (results / "logs" / "train_stack" / "models" / "w12-s8-l2-teacher.log"
                                               ).read_text()


def test_labels_made_without_split_still_refuse_a_student_of_another_split(teacher, tiny_data, tmp_path):
    """Issue 36: `tsmlip label` without --split records the split its teachers were trained on (from their files)."""
    model, other, *_ = teacher
    from tsmlip.label import label

    label([str(model)], str(tiny_data[0]), str(tmp_path / "labels.npz"), 1e-3, "mean", "cpu", settings={})
    with pytest.raises(provenance.ProvenanceError, match=r"labels\.npz was made by teachers trained on a split of "
                                                         r"content \w+, but the split given, .*split_seed2\.npz, has "
                                                         r"content \w+") as e:
        provenance.check_inputs({"dataset": tiny_data[0], "split": other, "labels": tmp_path / "labels.npz"})
    assert "\n" not in str(e.value)
    provenance.check_inputs({"dataset": tiny_data[0], "split": tiny_data[1], "labels": tmp_path / "labels.npz"})


def test_oracle_labels_of_another_dataset_are_refused(tiny_data, tmp_path):
    from tsmlip.label import oracle_labels

    arrays = dict(tiny_data[2])
    arrays["E"] = arrays["E"] + 0.01 * (arrays["Z"] != 0).sum(axis=1)
    arrays["ref_atom_E"] = arrays["ref_atom_E"] + 0.01 * (arrays["Z"] != 0)
    np.savez(tmp_path / "other.npz", **arrays)
    oracle_labels(str(tmp_path / "other.npz"), str(tmp_path / "oracle.npz"), 1e-3)
    with pytest.raises(provenance.ProvenanceError, match=r"oracle\.npz was made from a dataset of content \w+ "
                                                         r"\(other\.npz\), but the dataset given, .*dataset\.npz"):
        provenance.check_inputs({"dataset": tiny_data[0], "split": tiny_data[1], "labels": tmp_path / "oracle.npz"})
    provenance.check_inputs({"dataset": tmp_path / "other.npz", "split": tiny_data[1],
                             "labels": tmp_path / "oracle.npz"})
