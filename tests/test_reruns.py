"""Checkpoints and reruns follow the inputs (issue 23): the split is part of the fingerprint, a finished
checkpoint never stands in for a requested retrain, and a broken checkpoint folder or split file gets one
message. Reruns follow what a change touches: each step's code stamp covers its own import closure
(tsmlip.stamps), so an edit of the figures replans the figures only and an edit of the training loop retrains."""
import json
import os
import re
import shutil

import numpy as np
import pytest

from conftest import ROOT, run_snakemake
from tsmlip.ids import ModelId
from tsmlip.data import DataError, load_split
from tsmlip.data.split import make_split, split_fingerprint
from tsmlip.train import TrainingError, run_fingerprint, train

MID = ModelId.parse("control/w6-s6-l1/seed1")


def settings(cfg, **training):
    s = {k: json.loads(json.dumps(cfg[k])) for k in ("network", "training", "born_again")}
    s["training"].update(training)
    return s


def _split_file(path, n, seed, valid=0.17, test=0.17):
    np.savez(path, **make_split(n, valid, test, seed))
    return path


def test_fingerprint_covers_the_split_by_content(tiny_cfg, tiny_data, tmp_path):
    ds, sp, arrays = tiny_data
    n = len(arrays["E"])
    s = settings(tiny_cfg)
    same = _split_file(tmp_path / "same.npz", n, tiny_cfg["split"]["seed"])  # same indices, new file bytes
    other_seed = _split_file(tmp_path / "seed7.npz", n, 7)
    other_fraction = _split_file(tmp_path / "frac.npz", n, tiny_cfg["split"]["seed"], test=0.3)
    fp = run_fingerprint(MID, s, ds, None, sp)
    assert split_fingerprint(same) == split_fingerprint(sp)
    assert run_fingerprint(MID, s, ds, None, same) == fp
    assert run_fingerprint(MID, s, ds, None, other_seed) != fp
    assert run_fingerprint(MID, s, ds, None, other_fraction) != fp


def test_changed_split_and_finished_checkpoint_retrain(tiny_cfg, tiny_data, tmp_path, capsys):
    """A checkpoint of another split is ignored; a finished one is retrained from scratch; only an
    unfinished one with the same fingerprint resumes."""
    import torch

    ds, sp, arrays = tiny_data
    s = settings(tiny_cfg, max_epochs=1)
    out, ck = tmp_path / "m", tmp_path / "c"
    train(MID, s, ds, sp, out, ck)
    capsys.readouterr()
    # the same request again (what --forcerun or a changed code stamp asks for): trained again, not resumed
    train(MID, s, ds, sp, out, ck)
    log = capsys.readouterr().out
    assert "finished training: retraining from scratch" in log and "resuming" not in log
    assert "epoch    1" in log
    # another split: the old checkpoint is ignored
    other = _split_file(tmp_path / "seed7.npz", len(arrays["E"]), 7)
    train(MID, s, ds, other, out, ck)
    log = capsys.readouterr().out
    assert "made with other settings, data, split or code" in log and "resuming" not in log
    # an unfinished checkpoint of the same fingerprint resumes (a killed job)
    state = torch.load(ck / "checkpoint.pt", weights_only=True)
    state["state"]["finished"] = False
    torch.save(state, ck / "checkpoint.pt")
    train(MID, s, ds, other, out, ck)
    assert "resuming from checkpoint at epoch 1" in capsys.readouterr().out


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes to read-only folders")
def test_read_only_checkpoint_folder_is_one_message(tiny_cfg, tiny_data, tmp_path):
    ds, sp, _ = tiny_data
    ck = tmp_path / "ro"
    ck.mkdir()
    ck.chmod(0o500)
    try:
        with pytest.raises(TrainingError, match="cannot write checkpoints to .*ro"):
            train(MID, settings(tiny_cfg, max_epochs=1), ds, sp, tmp_path / "m", ck)
    finally:
        ck.chmod(0o700)


def test_unwritable_checkpoint_place_is_one_message(tiny_cfg, tiny_data, tmp_path):
    """(Also as root:) a checkpoint folder whose parent is a file."""
    ds, sp, _ = tiny_data
    (tmp_path / "blocked").write_text("")
    with pytest.raises(TrainingError, match="cannot write checkpoints to .*blocked"):
        train(MID, settings(tiny_cfg, max_epochs=1), ds, sp, tmp_path / "m", tmp_path / "blocked" / "ckpt")


def test_split_file_replaced_by_a_directory(tmp_path):
    (tmp_path / "split.npz").mkdir()
    with pytest.raises(DataError, match="split.npz: the split file is a directory"):
        load_split(tmp_path / "split.npz")
    np.savez(tmp_path / "other.npz", a=np.arange(3))
    with pytest.raises(DataError, match="not a split file"):
        load_split(tmp_path / "other.npz")


def test_split_step_refuses_too_few_configurations(tmp_path, capsys):
    from tsmlip.data.dataset import pad_configurations, save_dataset
    from tsmlip.data.split import main as split_main

    one = pad_configurations([{"Z": np.full(4, 13), "R": np.eye(4, 3) * 2.5, "cell": np.eye(3) * 9,
                               "E": 0.0, "F": np.zeros((4, 3))}])
    save_dataset(one, tmp_path / "d.npz", {"source": "test"})
    cfg = {"split": {"valid_fraction": 0.1, "test_fraction": 0.1, "seed": 1}, "training": {"train_eval_fraction": 1.0}}
    rc = split_main(["--config-json", json.dumps(cfg), "--dataset", str(tmp_path / "d.npz"),
                     "--out", str(tmp_path / "s.npz")])
    assert rc == 1 and "no configuration left for training" in capsys.readouterr().err


def test_split_step_refuses_a_train_eval_fraction_that_evaluates_nothing(tiny_data, tmp_path, capsys):
    from tsmlip.data.split import main as split_main

    ds, _, _ = tiny_data
    cfg = {"split": {"valid_fraction": 0.17, "test_fraction": 0.17, "seed": 1}, "training": {"train_eval_fraction": 0.01}}
    rc = split_main(["--config-json", json.dumps(cfg), "--dataset", str(ds), "--out", str(tmp_path / "s.npz")])
    err = capsys.readouterr().err
    assert rc == 1 and "training.train_eval_fraction" in err and "Traceback" not in err


def test_one_atom_periodic_cells_train_without_nan(tiny_cfg, tmp_path):
    """Forces of a 1-atom periodic cell are exactly 0 (data and model): the RMSE's gradient stays finite."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    from tsmlip.data.dataset import pad_configurations, save_dataset

    configs = []
    for i in range(12):
        at = bulk("Al", "fcc", a=4.05 * (0.97 + 0.005 * i))  # the 1-atom primitive cell
        at.calc = EMT()
        configs.append({"Z": at.numbers, "R": at.positions, "cell": at.cell.array, "E": at.get_potential_energy(),
                        "F": np.zeros((1, 3))})  # exactly 0 by symmetry
    save_dataset(pad_configurations(configs), tmp_path / "one.npz", {"source": "test"})
    split = _split_file(tmp_path / "split.npz", 12, 1)
    m = train(MID, settings(tiny_cfg, max_epochs=2), tmp_path / "one.npz", split, tmp_path / "m", tmp_path / "c")
    assert np.isfinite(m["splits"]["train"]["energy_rmse_eV"])


# --- code stamps: a change reruns what it touches ----------------------------------------------------------
def _package_copy(tmp_path):
    pkg = tmp_path / "workflow" / "tsmlip"
    shutil.copytree(ROOT / "workflow" / "tsmlip", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    return pkg


def test_code_stamp_covers_the_step_closure_only(tmp_path):
    from tsmlip import stamps

    pkg = _package_copy(tmp_path)
    before = {step: stamps.code_stamp(step, pkg) for step in stamps.step_modules()}
    assert before == {step: stamps.code_stamp(step) for step in stamps.step_modules()}
    assert all(re.fullmatch(r"[0-9a-f]{16}", v) for v in before.values())
    loop = pkg / "train" / "loop.py"
    loop.write_text(loop.read_text() + "# a comment counts\n")
    after = {step: stamps.code_stamp(step, pkg) for step in before}
    changed = {step for step in before if after[step] != before[step]}
    assert "train" in changed and not changed & {"plot", "aggregate", "claims", "split", "generate-dataset"}
    # package data belong to the steps that read them: the measured g(r) to the RDF error
    gr = next((pkg / "reference_data").rglob("*.csv"))
    gr.write_text(gr.read_text() + "\n")
    again = {step: stamps.code_stamp(step, pkg) for step in before}
    assert again["rdf-error"] != after["rdf-error"] and again["train"] == after["train"]


def test_closure_follows_function_level_imports_and_packages():
    from tsmlip.stamps import closure, import_graph, step_files, step_modules

    graph = import_graph()
    plot = closure(step_modules()["plot"], graph)
    assert {"tsmlip", "tsmlip.plots", "tsmlip.cli", "tsmlip.ids"} <= plot  # cli, ids: inside main()
    assert "tsmlip.train.loop" not in plot and "tsmlip.core.md.engines" not in plot
    train = {f.relative_to(ROOT / "workflow").as_posix() for f in step_files("train")}
    assert {"tsmlip/train/__init__.py", "tsmlip/train/loop.py", "tsmlip/core/model.py"} <= train
    assert "tsmlip/plots.py" not in train


def test_every_package_data_file_has_its_readers():
    """A data file of the package is read by some module (stamps.DATA) or by planning only: a new one is
    placed there, so the steps that read it rerun when it changes."""
    from tsmlip.stamps import DATA, PACKAGE_DIR, PLANNING_ONLY_DATA, import_graph

    claimed = [PACKAGE_DIR / rel for rels in DATA.values() for rel in rels] + [PACKAGE_DIR / p for p in PLANNING_ONLY_DATA]
    assert all(p.exists() for p in claimed), claimed
    assert set(DATA) <= set(import_graph())
    for f in PACKAGE_DIR.rglob("*"):
        if f.is_file() and f.suffix not in (".py", ".pyc"):
            assert any(f == p or p in f.parents for p in claimed), f"{f}: no module of stamps.DATA reads it"


def _checkout_copy(tmp_path):
    co = tmp_path / "checkout"
    co.mkdir()
    shutil.copy(ROOT / "Snakefile", co)
    for d in ("workflow", "config", "envs"):
        shutil.copytree(ROOT / d, co / d, ignore=shutil.ignore_patterns("__pycache__", "results*"))
    return co


def _plan(co, results, *args):
    out = run_snakemake("-n", "--workflow-profile", "none", "--configfile", "config/test.yaml",
                        "--config", f"results_dir={results}", *args, cwd=co)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout + out.stderr
    if "Nothing to be done" in text:
        return {}
    table = text[text.index("Job stats"):].split("\n\n")[0]  # the table ends at the first blank line
    return {l.split()[0]: int(l.split()[1]) for l in table.splitlines()[3:] if l.split()[0] != "total"}


def test_dry_run_plans_only_what_an_edit_touches(tmp_path):
    """A finished run (every output made by `snakemake --touch`, which records Snakemake's metadata with each
    rule's params): a comment added to plots.py plans the figure jobs only; one added to the training loop
    plans training and what reads the models, never the data stage."""
    co = _checkout_copy(tmp_path)
    results = co / "results"
    summary = run_snakemake("--summary", "--workflow-profile", "none", "--configfile", "config/test.yaml",
                            "--config", f"results_dir={results}", cwd=co)
    assert summary.returncode == 0, summary.stderr[-3000:]
    files = [l.split("\t")[0] for l in summary.stdout.splitlines()[1:] if l.strip()]
    assert len(files) > 50
    for f in files:
        if "/stacks/" in f or "/rdf_stacks/" in f:  # the stacks' folders (directory outputs of train_stack, rdf_md_stack)
            os.makedirs(f, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(f), exist_ok=True)
        open(f, "a").close()
    touch = run_snakemake("--touch", "--forceall", "--cores", "1", "--workflow-profile", "none", "--configfile",
                          "config/test.yaml", "--config", f"results_dir={results}", cwd=co)
    assert touch.returncode == 0, touch.stdout[-3000:] + touch.stderr[-3000:]
    assert _plan(co, results) == {}

    plots = co / "workflow" / "tsmlip" / "plots.py"
    original = plots.read_text()
    plots.write_text(original + "# an edit of the figures\n")
    assert set(_plan(co, results)) == {"figure", "all"}  # the coverage figure draws with plot_style, not plots
    plots.write_text(original)
    style = co / "workflow" / "tsmlip" / "plot_style.py"
    style_original = style.read_text()
    style.write_text(style_original + "# an edit of the drawing every figure shares\n")
    assert set(_plan(co, results)) == {"figure", "figure_coverage", "all"}

    style.write_text(style_original)
    assert _plan(co, results) == {}
    loop = co / "workflow" / "tsmlip" / "train" / "loop.py"
    loop.write_text(loop.read_text() + "# an edit of the training loop\n")
    planned = _plan(co, results)
    assert {"train_stack", "collect_model", "collect_budget_check_model", "aggregate", "figure"} <= set(planned)
    assert not set(planned) & {"generate_dataset", "split", "label_oracle"}
