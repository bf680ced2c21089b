"""Checkpoints and reruns follow the inputs (issue 23): the split is part of the fingerprint, a finished
checkpoint never stands in for a requested retrain, a code stamp reruns every rule after a code change,
and a broken checkpoint folder or split file gets one message."""
import json
import os
import re
import shutil

import numpy as np
import pytest

from conftest import ROOT
from tsmlip.config import ModelId
from tsmlip.data import DataError, load_split
from tsmlip.data.split import make_split, split_fingerprint
from tsmlip.train import TrainingError, _fingerprint, train

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
    fp = _fingerprint(MID, s, ds, None, sp)
    assert split_fingerprint(same) == split_fingerprint(sp)
    assert _fingerprint(MID, s, ds, None, same) == fp
    assert _fingerprint(MID, s, ds, None, other_seed) != fp
    assert _fingerprint(MID, s, ds, None, other_fraction) != fp


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
    assert "made with other settings, data or split" in log and "resuming" not in log
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
