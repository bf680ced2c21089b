"""Losses, training, resume after a kill, the NaN guard and the teacher's labels, on the tiny data."""
import csv
import math
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from conftest import BASE_CONFIG
from tsmlip.config import load_config, validate
from tsmlip.ids import ConfigError, ModelId
from tsmlip.label import LabelError, label, load_labels
from tsmlip.core.losses import build_loss_terms, combine
from tsmlip.loss_weights import BornAgainSchedule, LossWeights
from tsmlip.train import TrainingError, hippynn_arrays, train


def settings(cfg, **training):
    s = {k: json.loads(json.dumps(cfg[k])) for k in ("network", "training", "born_again")}
    s["training"].update(training)
    return s


@pytest.fixture(scope="module")
def teacher(tiny_cfg, tiny_data, tmp_path_factory):
    ds, sp, _ = tiny_data
    d = tmp_path_factory.mktemp("teacher")
    mid = ModelId.parse("teacher/w12-s8-l2/seed0")
    metrics = train(mid, settings(tiny_cfg, max_epochs=8), ds, sp, d / "model", d / "ckpt")
    return d, metrics


def read_curve(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_teacher_learns(teacher):
    """The trained teacher beats the model it started from (epoch 0) on the test split."""
    d, metrics = teacher
    assert metrics["splits"]["test"]["force_rmse_eV_A"] < metrics["untrained"]["test"]["force_rmse_eV_A"]
    curve = read_curve(d / "model" / "curve.csv")
    assert [int(r["epoch"]) for r in curve] == list(range(0, 9))  # epoch 0 = untrained
    for split_name in ("train", "valid", "test"):
        for k, v in metrics["splits"][split_name].items():
            assert v is None or np.isfinite(v), (split_name, k)
    assert metrics["n_weights"] > 0 and metrics["epochs"] == 8 and 1 <= metrics["best_epoch"] <= 8
    assert (d / "model" / "model.pt").exists()


def test_trained_model_and_checkpoint_load_with_weights_only(teacher):
    """What training writes is tensors and plain data: the model and the checkpoint read back with
    torch.load(weights_only=True) (a shared file cannot run code)."""
    from tsmlip.core.model import MODEL_FORMAT, load_model

    d, metrics = teacher
    payload = torch.load(d / "model" / "model.pt", weights_only=True)
    assert payload["format"] == MODEL_FORMAT
    meta = payload["meta"]
    assert {k: meta[k] for k in ("model_id", "best_epoch", "epochs", "engine")} == {
        "model_id": "teacher/w12-s8-l2/seed0", "best_epoch": metrics["best_epoch"], "epochs": 8, "engine": "hippynn"}
    # what it was trained on (tsmlip.provenance): the dataset and split by content, and its provenance record
    assert {"dataset_fingerprint", "split_fingerprint", "provenance"} <= set(meta)
    assert load_model(d / "model" / "model.pt").arch.tag == "w12-s8-l2"
    ck = torch.load(d / "ckpt" / "checkpoint.pt", weights_only=True)
    assert ck["state"]["epoch"] == 8 and ck["state"]["finished"] is True
    assert {"model", "controller", "torch_rng", "db_rng", "fingerprint"} <= set(ck)
    assert [p.name for p in (d / "ckpt").iterdir()] == ["checkpoint.pt"]  # no temporary file left


class _RunsCode:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_unsafe_checkpoint_is_ignored_not_loaded(tiny_cfg, tiny_data, tmp_path, capsys):
    """A checkpoint holding a pickle that would run code is not loaded: training says so, starts over and
    replaces it with a safe one."""
    ds, sp, _ = tiny_data
    marker = tmp_path / "code_ran"
    (tmp_path / "c").mkdir()
    torch.save({"fingerprint": "x", "evil": _RunsCode(marker)}, tmp_path / "c" / "checkpoint.pt")
    train(ModelId.parse("control/w6-s6-l1/seed1"), settings(tiny_cfg, max_epochs=1), ds, sp,
          tmp_path / "m", tmp_path / "c")
    assert not marker.exists()
    out = capsys.readouterr().out
    assert "ignoring checkpoint" in out and "not readable with weights_only=True" in out
    assert torch.load(tmp_path / "c" / "checkpoint.pt", weights_only=True)["state"]["epoch"] == 1


def test_labels_sum_to_teacher_energy_and_corruption_is_refused(teacher, tiny_cfg, tiny_data, tmp_path):
    d, _ = teacher
    ds, _, arrays = tiny_data
    info = label([str(d / "model" / "model.pt")], str(ds), str(tmp_path / "labels.npz"), 1e-3, "0", "cpu")
    assert info["max_sum_deviation_eV"] < 1e-3
    assert info["vs_reference"]["n_atoms"] == int((arrays["Z"] != 0).sum())
    atom_E = load_labels(tmp_path / "labels.npz", arrays, 1e-3)
    assert np.all(atom_E[arrays["Z"] == 0] == 0)
    z = dict(np.load(tmp_path / "labels.npz"))
    z["atom_E"][3, 0] += 0.5  # one atom's label corrupted
    np.savez(tmp_path / "corrupt.npz", **z)
    with pytest.raises(LabelError, match="configuration 3"):
        load_labels(tmp_path / "corrupt.npz", arrays, 1e-3)
    with pytest.raises(TrainingError, match="configuration 3"):  # training re-checks what it reads
        train(ModelId.parse("student/w6-s6-l1/seed1"), settings(tiny_cfg), ds, tiny_data[1],
              tmp_path / "m", tmp_path / "c", labels_path=tmp_path / "corrupt.npz")


def _batch_terms(tiny_cfg, arrays, labels, kind_with_A, pad_garbage=False):
    """Loss terms of one batch for a freshly built model (seed 1) with or without the A term."""
    from hippynn.experiment import assemble_for_training
    from hippynn.graphs import GraphModule
    from tsmlip.ids import Arch
    from tsmlip.core.model import build_model

    g = build_model(Arch(6, 6, 1), tiny_cfg["network"], seed=1)
    terms, metrics = build_loss_terms(g, with_atom_energies=kind_with_A)
    tm, db_info = assemble_for_training(combine(LossWeights(1, 1, 1, 1, 1), terms), metrics)
    lab = labels.copy()
    if pad_garbage:
        lab[arrays["Z"] == 0] = 1e3
    arr = hippynn_arrays(arrays, lab)
    rows = slice(0, 6)
    inputs = [torch.as_tensor(arr[k][rows]) for k in db_info["inputs"]]
    targets = [torch.as_tensor(arr[k][rows]) for k in db_info["targets"]]
    names = [t for t in ("E", "F", "A", "L2", "R") if t in terms]
    mod = GraphModule(tm.loss.input_nodes, [terms[t] for t in names])
    return dict(zip(names, mod(*tm.model(*inputs), *targets)))


def test_student_loss_with_wA_zero_equals_control_loss(tiny_cfg, tiny_data):
    _, _, arrays = tiny_data
    labels = np.where(arrays["Z"] != 0, -0.01 * arrays["Z"], 0.0)
    student = _batch_terms(tiny_cfg, arrays, labels, True)
    control = _batch_terms(tiny_cfg, arrays, labels, False)
    w0 = LossWeights(1.0, 30.0, 0.0, 1e-4, 0.01)
    assert float(combine(w0, student)) == pytest.approx(float(combine(w0, control)), rel=1e-6)
    assert float(combine(LossWeights(1.0, 30.0, 100.0, 1e-4, 0.01), student)) > float(combine(w0, control))


def test_atom_energy_term_ignores_padding(tiny_cfg, tiny_data):
    _, _, arrays = tiny_data
    assert (arrays["Z"][:6] == 0).any(), "the first batch needs padded configurations"
    labels = np.where(arrays["Z"] != 0, -0.01, 0.0)
    clean = _batch_terms(tiny_cfg, arrays, labels, True)["A"]
    garbage = _batch_terms(tiny_cfg, arrays, labels, True, pad_garbage=True)["A"]
    assert float(clean) == pytest.approx(float(garbage), rel=1e-7)


def test_born_again_schedule_table1():
    cfg = load_config(BASE_CONFIG)
    rows = cfg["born_again"]["schedule"]
    step = BornAgainSchedule(rows, 1e-4, 0.01, epoch_scale=1.0, interpolation="step")
    assert step(1).as_dict() == {"w_E": 0.0, "w_F": 75.0, "w_A": 200.0, "w_L2": 1e-4, "w_R": 0.01}
    assert step(199).w_A == 200 and step(200).w_A == 160 and step(249).w_F == 63
    assert (step(400).w_E, step(400).w_F, step(400).w_A) == (1.0, 15.0, 0.0) == (step(900).w_E, step(900).w_F, 0.0)
    lin = BornAgainSchedule(rows, 0, 0, interpolation="linear")
    assert lin(225).w_A == pytest.approx(140.0) and lin(100).w_E == pytest.approx(0.2 * 99 / 199)
    scaled = BornAgainSchedule(rows, 0, 0, epoch_scale=0.1)
    assert scaled.final_epoch == 40 and scaled(20).w_A == 160
    with pytest.raises(ValueError, match="merges schedule rows"):
        BornAgainSchedule(rows, 0, 0, epoch_scale=0.001)


def test_load_config_reads_only_the_files_it_is_named():
    with pytest.raises(TypeError, match="name the config files"):
        load_config()


def test_config_errors_name_the_key():
    cfg = load_config(BASE_CONFIG)
    bad = json.loads(json.dumps(cfg))
    bad["training"]["batch_size"] = "sixteen"
    with pytest.raises(ConfigError, match="training.batch_size"):
        validate(bad)
    bad = json.loads(json.dumps(cfg))
    bad["teacher"]["widht"] = 3
    with pytest.raises(ConfigError, match="teacher"):
        validate(bad)
    bad = json.loads(json.dumps(cfg))
    bad["labels"]["teacher"] = 7
    with pytest.raises(ConfigError, match="labels.teacher"):
        validate(bad)


def test_nan_loss_stops_with_clear_message(tiny_cfg, tiny_data, tmp_path):
    ds, sp, arrays = tiny_data
    bad = dict(arrays)
    bad["F"] = arrays["F"].copy()
    train_rows = np.load(sp)["train"]
    bad["F"][train_rows[0], 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", **bad)
    with pytest.raises(TrainingError, match=r"loss became nan at epoch 1"):
        train(ModelId.parse("control/w6-s6-l1/seed1"), settings(tiny_cfg), tmp_path / "nan.npz", sp,
              tmp_path / "m", tmp_path / "c")


def test_killed_training_resumes_from_checkpoint(tiny_cfg, tiny_data, tmp_path):
    """SIGKILL a training run after a few epochs, rerun it: it resumes, no epoch is repeated."""
    ds, sp, _ = tiny_data
    s = json.dumps(settings(tiny_cfg, max_epochs=40, torch_threads=1))
    cmd = [sys.executable, "-m", "tsmlip.cli", "train", "--model-id", "control/w6-s6-l1/seed2",
           "--config-json", s, "--dataset", str(ds), "--split", str(sp),
           "--out-dir", str(tmp_path / "m"), "--checkpoint-dir", str(tmp_path / "c")]
    ckpt = tmp_path / "c" / "checkpoint.pt"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    killed_after = None
    t0 = time.time()
    while time.time() - t0 < 600 and proc.poll() is None:  # a loaded machine takes minutes to import torch
        if ckpt.exists():
            try:
                epoch = torch.load(ckpt, weights_only=True)["state"]["epoch"]
            except Exception:  # caught mid-replace: try again
                epoch = 0
            if epoch >= 3:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                killed_after = epoch
                break
        time.sleep(0.02)
    if killed_after is None:
        ended = proc.poll() is not None
        proc.kill()
        log = proc.communicate()[0].decode(errors="replace")
        pytest.fail(f"training {'ended' if ended else 'had not reached epoch 3'} after {time.time() - t0:.0f} s "
                    f"(exit {proc.returncode}):\n{log[-3000:]}")
    assert not (tmp_path / "m" / "metrics.json").exists()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    resumed = [l for l in out.stdout.splitlines() if "resuming from checkpoint at epoch" in l]
    assert resumed, out.stdout
    k = int(resumed[0].split("at epoch")[1].split()[0])
    assert k >= killed_after
    epochs_run_now = [int(l.split("epoch")[1].split()[0]) for l in out.stdout.splitlines() if "] epoch " in l
                      and "loss weights" not in l]
    assert epochs_run_now and epochs_run_now[0] == k + 1  # nothing repeated from zero
    curve = [int(r["epoch"]) for r in read_curve(tmp_path / "m" / "curve.csv")]
    assert curve == list(range(0, len(curve)))


def test_split_batches_equal_hippynn_generator(tiny_cfg, tiny_data):
    """The training batches (tsmlip.core.batches) hold exactly hippynn's make_generator tensors, pair cache included,
    already coalesced."""
    from tsmlip import train as T

    ds, sp, _ = tiny_data
    mid = ModelId.parse("control/w6-s6-l1/seed1")
    data = T.load_training_data(mid, ds, sp, None)
    run = T.assemble_training(mid, settings(tiny_cfg), data, torch.device("cpu"))
    for split in ("train", "valid", "test"):
        old = list(run.db.make_generator(split, "eval", 3))
        new = list(run.batches[split].batches(3))
        assert len(old) == len(new)
        for a, b in zip(old, new):
            assert len(a) == len(b)
            for x, y in zip(a, b):
                if x.is_sparse:
                    assert y.is_coalesced() and x.shape == y.shape
                    x = x.coalesce()
                    assert torch.equal(x.indices(), y.indices()) and torch.equal(x.values(), y.values())
                else:
                    assert torch.equal(x, y)
    shuffled = [b[0] for b in run.batches["train"].batches(3, shuffle=True)]
    assert sum(len(b) for b in shuffled) == len(data.split["train"])


def test_pair_cache_gives_the_same_model(tiny_cfg, tiny_data, tmp_path, capsys):
    """A model trained with the shared pair cache (first job computes, second loads) equals one trained without."""
    ds, sp, _ = tiny_data
    mid = ModelId.parse("control/w6-s6-l1/seed1")
    s = settings(tiny_cfg, max_epochs=3)
    ref = train(mid, s, ds, sp, tmp_path / "ref", tmp_path / "ref_ck")
    first = train(mid, s, ds, sp, tmp_path / "a", tmp_path / "a_ck", pair_cache_dir=tmp_path / "pairs")
    assert len(list((tmp_path / "pairs").glob("pairs-*.pt"))) == 1
    second = train(mid, s, ds, sp, tmp_path / "b", tmp_path / "b_ck", pair_cache_dir=tmp_path / "pairs")
    for m in (first, second):
        for split in ("train", "valid", "test"):
            assert m["splits"][split]["force_rmse_eV_A"] == ref["splits"][split]["force_rmse_eV_A"]


def test_patience_counts_only_progress_beyond_the_threshold(tiny_cfg, tiny_data, tmp_path):
    """With an improvement threshold no tiny improvement resets the patience: training stops by the rule."""
    ds, sp, _ = tiny_data
    mid = ModelId.parse("control/w6-s6-l1/seed1")
    m = train(mid, settings(tiny_cfg, max_epochs=200, learning_rate=1e-6, improvement_threshold=0.5,
                            lr_patience=1, termination_patience=3, min_learning_rate=None), ds, sp, tmp_path / "m",
              tmp_path / "c")
    # lr 1e-6 barely moves the model: after epoch 1 no epoch improves by 50 %, so hippynn's controller stops it
    # when the patience (3) has run out: epoch 1 + 3 + 1; the best weights still follow any improvement
    assert m["convergence"]["stopped_by"] == "patience"
    assert m["epochs"] == 5
    assert m["best_epoch"] > 1


def test_no_patience_runs_out_during_the_warm_up(tiny_cfg, tiny_data, tmp_path):
    """The first min_epochs epochs count against neither patience: the same stalled run as above neither halves
    its learning rate nor stops before the warm-up is over, then both patiences run as before."""
    ds, sp, _ = tiny_data
    mid = ModelId.parse("control/w6-s6-l1/seed1")
    m = train(mid, settings(tiny_cfg, max_epochs=200, learning_rate=1e-6, improvement_threshold=0.5,
                            lr_patience=1, termination_patience=3, min_epochs=6, min_learning_rate=None), ds, sp,
              tmp_path / "m", tmp_path / "c")
    # warm-up epochs 1-6 count as progress, so the patience (3) runs out at epoch 6 + 3 + 1
    assert m["convergence"]["stopped_by"] == "patience"
    assert m["epochs"] == 10
    lr = {int(r["epoch"]): float(r["lr"]) for r in read_curve(tmp_path / "m" / "curve.csv")}
    assert all(lr[e] == 1e-6 for e in range(1, 8)), lr     # epoch 7: the first bad epoch, within lr_patience 1
    assert lr[10] < 1e-6, lr                                # halved after the warm-up


def _run_rule(tiny_cfg, metrics, engine="hippynn", **training):
    """The stopping rule (tsmlip.train.loop.epoch_end, both engines) driven by a given validation curve: the
    learning rate of each epoch and the epoch it stopped at (None: it never stopped). ``engine``: the hippynn engine's
    torch Adam and ReduceLROnPlateau, or the fast engine's rate in its stack's optimizer (a stack of two models, the
    rule driving the second's) and its PlateauLR."""
    import copy

    from tsmlip.ids import ModelId
    from tsmlip.loss_weights import schedule_for
    from tsmlip.train.fast import PlateauLR, StackAdam
    from tsmlip.train.loop import epoch_end, epoch_start, make_controller, make_optimizer, plateau_settings

    cfg = copy.deepcopy(tiny_cfg)
    cfg["training"].update(min_epochs=0, improvement_threshold=0.01, max_epochs=len(metrics) + 1, **training)
    mid = ModelId.parse("control/w6-s6-l1/seed1")
    if engine == "hippynn":
        opt, controller, _ = make_optimizer(mid, cfg, torch.nn.Linear(1, 1))
        group = opt.param_groups[0]
    else:
        adam = StackAdam({"w": torch.zeros(2, 3)}, cfg["training"]["learning_rate"])
        group = adam.param_groups[1]
        controller = make_controller(mid, cfg, None, PlateauLR(group, **plateau_settings(cfg["training"])))
    schedule = schedule_for("control", cfg)
    state = {"epoch": 0, "best_metric": math.inf, "best_epoch": 0, "best_state": None, "curve": [], "phase": 0}
    lrs, stopped = [], None
    for epoch, m in enumerate(metrics, 1):
        w = epoch_start(mid, schedule, state, epoch)
        ev = {"force_rmse_eV_A": m, "energy_rmse_eV": m, "energy_per_atom_rmse_eV": m, "force_mae_eV_A": m,
              "err_F": m, "err_E": 0.0}
        lrs.append(group["lr"])
        if not epoch_end(mid, schedule, state, controller, cfg["training"], epoch, w, 0.0, ev, ev, group, 0.0, 0.0,
                         lambda: None):
            stopped = epoch
            break
    if engine == "fast":  # the stack's other model kept its own rate
        assert adam.param_groups[0]["lr"] == cfg["training"]["learning_rate"]
    return lrs, stopped


def test_the_stopping_rule_terminates_only_at_the_learning_rate_floor(tiny_cfg):
    """A flat curve: without a floor the termination patience ends training at the starting rate; with a floor
    every halving restarts the patience and training ends only after the patience at the floor."""
    flat = [1.0] * 300
    lrs, stopped = _run_rule(tiny_cfg, flat, learning_rate=1e-3, lr_factor=0.5, lr_patience=3,
                             termination_patience=5, min_learning_rate=None)
    assert stopped is not None and stopped <= 8 and min(lrs) >= 0.5e-3
    lrs, stopped = _run_rule(tiny_cfg, flat, learning_rate=1e-3, lr_factor=0.5, lr_patience=3,
                             termination_patience=5, min_learning_rate=1e-3 / 8)
    assert stopped is not None
    assert min(lrs) == pytest.approx(1e-3 / 8)  # three halvings, then the floor
    at_floor = [e for e, lr in enumerate(lrs, 1) if lr <= 1e-3 / 8 * (1 + 1e-6)]
    assert stopped - (at_floor[0] - 1) >= 5  # the full termination patience at the floor
    # a curve that keeps improving by more than the threshold never stops early
    falling = [0.97 ** e for e in range(60)]
    _, stopped = _run_rule(tiny_cfg, falling, learning_rate=1e-3, lr_factor=0.5, lr_patience=3,
                           termination_patience=5, min_learning_rate=1e-3 / 8)
    assert stopped is None


@pytest.mark.parametrize("floor", [None, 1e-3 / 8])
def test_the_fast_engines_rate_follows_the_hippynn_engines_rule(tiny_cfg, floor):
    """The fast engine's learning rate (its model's group in the stack's optimizer, lowered by PlateauLR) takes the
    same values at the same epochs, and stops at the same epoch, as torch's ReduceLROnPlateau on the hippynn engine's
    Adam, for a flat, a falling and a noisy validation curve."""
    rng = np.random.default_rng(0)
    curves = {"flat": [1.0] * 120, "falling": [0.97 ** e for e in range(60)],
              "noisy": list(np.exp(-np.arange(150) / 40) * (1 + 0.05 * rng.standard_normal(150)))}
    for name, curve in curves.items():
        args = dict(learning_rate=1e-3, lr_factor=0.5, lr_patience=3, termination_patience=5, min_learning_rate=floor)
        assert _run_rule(tiny_cfg, curve, "fast", **args) == _run_rule(tiny_cfg, curve, **args), name


def test_a_learning_rate_floor_above_the_rate_is_refused_in_one_line(tiny_cfg):
    import copy

    cfg = copy.deepcopy(tiny_cfg)
    cfg["training"].update(learning_rate=1e-4, min_learning_rate=1e-3)
    with pytest.raises(ConfigError, match="training.min_learning_rate"):
        validate(cfg)


def test_a_learning_rate_by_width_that_is_not_a_width_is_refused_in_one_line(tiny_cfg):
    cfg = json.loads(json.dumps(tiny_cfg))
    cfg["training"]["learning_rate_by_width"] = {"teacher": 1e-3}
    with pytest.raises(ConfigError, match="training.learning_rate_by_width.*not a network width"):
        validate(cfg)
    cfg["training"]["learning_rate_by_width"] = {"48": -1.0}
    with pytest.raises(ConfigError, match="learning_rate_by_width"):
        validate(cfg)
