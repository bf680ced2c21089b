"""Failures a user can cause give one message naming the file, not a traceback: unreadable or truncated HDF5 files,
a full disk, a file where the checkpoint folder should be, and a second run on the same results folder."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, run_snakemake, write_ani_al_h5
from tsmlip import cli, io_utils, run_lock
from tsmlip.data.dataset import DataError
from tsmlip.data.io import prepare


def _good_h5(path):
    return write_ani_al_h5(path, n=4)


@pytest.mark.parametrize("damage", ["not_hdf5", "truncated"])
def test_unreadable_h5_is_one_message_naming_the_file(tmp_path, capsys, damage):
    folder = tmp_path / "ani"
    folder.mkdir()
    _good_h5(folder / "a.h5")
    bad = folder / "b.h5"
    if damage == "not_hdf5":
        bad.write_text("this is not HDF5\n")
    else:
        data = _good_h5(tmp_path / "full.h5").read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"b\.h5: cannot be read as HDF5 .*damaged, truncated or not an HDF5 file"):
        prepare("ani_h5", str(folder), 1.6, 0.0)
    cfg = {"data": {"source": "ani_h5", "min_distance_A": 1.6, "ani_energy_shift_eV_per_atom": 0.0,
                    "forces_are": None, "close_contacts": None, "duplicates": "error", "checks": True}}
    rc = cli.main(["prepare-dataset", "--config-json", json.dumps(cfg), "--path", str(folder),
                   "--out", str(tmp_path / "out" / "dataset.npz")])
    err = capsys.readouterr().err
    assert rc == 1 and "b.h5: cannot be read as HDF5" in err and "Traceback" not in err


@pytest.fixture
def full_disk(monkeypatch):
    """Every temporary file of the atomic writers opens /dev/full: each write fails with the kernel's ENOSPC."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    real_open = os.open

    def fake_open(path, flags, *args, **kwargs):
        if str(path).endswith(".tmp"):
            return real_open("/dev/full", os.O_WRONLY)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(io_utils.os, "open", fake_open)
    monkeypatch.setattr(io_utils.os, "replace", lambda *a: (_ for _ in ()).throw(AssertionError("renamed")))


def test_full_disk_is_one_message_naming_the_path(tmp_path, full_disk, tiny_data, capsys):
    import torch

    for write in (lambda p: io_utils.atomic_write_text(p, "x" * 100000),
                  lambda p: io_utils.atomic_torch_save({"w": torch.zeros(100000)}, p)):
        with pytest.raises(io_utils.OutputError, match=r"cannot write .*out\.bin: no space left on device"):
            write(tmp_path / "out.bin")
        assert not (tmp_path / "out.bin").exists()
    cfg = {"split": {"seed": 1, "valid_fraction": 0.17, "test_fraction": 0.17},
           "training": {"train_eval_fraction": 1.0}}
    rc = cli.main(["split", "--config-json", json.dumps(cfg), "--dataset", str(tiny_data[0]),
                   "--out", str(tmp_path / "split.npz")])
    err = capsys.readouterr().err
    assert rc == 1 and "split.npz: no space left on device" in err and "Traceback" not in err


def test_a_file_where_the_checkpoint_folder_should_be(tmp_path, tiny_cfg, tiny_data):
    blocker = tmp_path / "checkpoints"
    blocker.write_text("a file, not a folder\n")
    cfg = {k: tiny_cfg[k] for k in ("network", "training", "born_again")}
    env = dict(os.environ, PYTHONPATH=str(ROOT / "workflow"))
    out = subprocess.run([sys.executable, "-m", "tsmlip.cli", "train", "--config-json", json.dumps(cfg),
                          "--model-id", "teacher/w4-s4-l1/seed0", "--dataset", str(tiny_data[0]),
                          "--split", str(tiny_data[1]), "--out-dir", str(tmp_path / "models"),
                          "--checkpoint-dir", str(blocker / "teacher"),
                          "--pair-cache-dir", str(blocker / "_pairs")], capture_output=True, text=True, env=env,
                         timeout=600)
    assert out.returncode == 1, out.stderr[-3000:]
    assert "Traceback" not in out.stderr and str(blocker) in out.stderr
    assert "a file stands where a folder" in out.stderr or "cannot write checkpoints" in out.stderr


def test_run_lock_refuses_a_live_holder_and_takes_over_a_dead_one(tmp_path):
    results = tmp_path / "results"
    path = run_lock.acquire(results, checkout="/one/checkout")
    assert json.loads(path.read_text())["pid"] == os.getpid()
    assert run_lock.acquire(results) == path  # the holder again: a no-op
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with pytest.raises(run_lock.RunLockError, match=r"in use by a running workflow \(pid %d" % os.getpid()):
            run_lock.acquire(results, pid=child.pid)
    finally:
        child.kill()
        child.wait()
    # a dead holder (a run killed with SIGKILL): its lock is stale and taken over
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": child.pid, "started": "x", "checkout": "y"}))
    run_lock.acquire(results)
    assert json.loads(path.read_text())["pid"] == os.getpid()
    # another host's lock cannot be checked from here: refused, naming the file to delete
    path.write_text(json.dumps({"host": "elsewhere", "pid": 1, "started": "x", "checkout": "y"}))
    with pytest.raises(run_lock.RunLockError, match=r"host elsewhere .*delete .*\.tsmlip-run\.lock"):
        run_lock.acquire(results)
    run_lock.release(results)  # not ours: stays
    assert path.exists()


def test_second_snakemake_on_a_locked_results_folder_is_refused(tmp_path):
    results = tmp_path / "results"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        run_lock.acquire(results, pid=holder.pid, checkout="/another/checkout")
        out = run_snakemake("--cores", "1", "--configfile", "config/test.yaml", "--config",
                            f"results_dir={results}", "--", str(results / "data" / "split.npz"), timeout=600)
    finally:
        holder.kill()
        holder.wait()
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "in use by a running workflow" in text and "/another/checkout" in text
    assert not (results / "data" / "dataset.npz").exists()  # no job ran
