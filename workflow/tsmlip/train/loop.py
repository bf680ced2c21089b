"""The epoch loop and its stopping rule: Adam with hippynn's ``PatienceController`` and ``ReduceLROnPlateau``,
checkpoints (what they must match, resuming, writing), one optimiser step, the per-epoch metrics and the learning
curve, and the summary of why training stopped (:func:`convergence_summary`)."""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..ids import ModelId
from ..data.split import SPLITS, dataset_fingerprint, split_fingerprint
from ..io_utils import atomic_torch_save
from ..core.losses import combine, error_loss
from ..loss_weights import max_epochs_for
from ..core.model import to_cpu
from ..provenance import step_code_stamp
from ..records import Convergence
from ..model_ids import arch_training
from ..settings import settings_fingerprint
from .assembly import TrainingError, quiet_hippynn, _Run, log

CURVE_COLUMNS = ["epoch", "lr", "w_E", "w_F", "w_A", "train_loss",
                 "train_force_rmse_eV_A", "valid_force_rmse_eV_A",
                 "train_energy_rmse_eV", "valid_energy_rmse_eV",
                 "train_energy_per_atom_rmse_eV", "valid_energy_per_atom_rmse_eV",
                 "valid_atom_energy_rmse_eV", "stop_metric", "epoch_time_s", "wall_time_s"]


def _read_checkpoint(path: Path, model_id) -> dict | None:
    """A checkpoint, read with ``weights_only=True`` like a shared model file: it holds only tensors and plain
    data (model/optimizer state, the controller's ints/floats/strs, torch RNG states as byte tensors:
    hippynn's database shuffles with a ``torch.Generator``). None (logged) if it cannot be read so; training
    then starts over and overwrites it."""
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # damaged, or not a checkpoint of this code (pickled objects are refused)
        log(f"[{model_id}] ignoring checkpoint {path}: not readable with weights_only=True ({type(exc).__name__})")
        return None
    return ck if isinstance(ck, dict) else None


def run_fingerprint(model_id: ModelId, cfg: dict, dataset_path, labels_path, split_path=None, step: str = "train") -> str:
    """What a checkpoint must match to be resumed: the model's settings (:func:`tsmlip.settings.settings_fingerprint`,
    the same hash as its rule's stamp and its provenance record: the model id, the network, training and Born-Again
    settings), the code (the step's code stamp), the data, the split and the labels: a checkpoint of other code never
    resumes (a fix must not inherit the old code's epochs). ``step``: the command whose code trains it (``train`` or
    the fast engine's ``train-stack``).

    The split enters by its content (the train/valid/test index arrays, hence also the valid/test fractions
    and the split seed), not by its file's bytes: a split rewritten with the same indices resumes, any other
    split starts over (a checkpoint of a model trained on other configurations would leak test data)."""
    relevant = {"settings": settings_fingerprint(step, cfg, model_id=model_id),
                "data": dataset_fingerprint(dataset_path),
                "split": split_fingerprint(split_path) if split_path is not None else None,
                "labels": dataset_fingerprint(labels_path) if labels_path else None,
                "code": step_code_stamp(step)}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class Checkpoint:
    path: Path
    fingerprint: str  # the settings, code, data, split and labels it was made with (see run_fingerprint)
    settings: str = ""  # the settings alone (tsmlip.settings.settings_fingerprint), recorded beside it


def make_optimizer(model_id: ModelId, cfg: dict, model: torch.nn.Module):
    """(optimizer, controller, max_epochs) of the hippynn engine: torch's Adam over the model's weights, the stopping
    rule (:func:`make_controller`) with torch's ``ReduceLROnPlateau`` on the optimizer, and the epoch limit
    (``born_again.max_epochs`` for a Born-Again model, if set). The rate and its floor are the network's own
    (:func:`tsmlip.model_ids.arch_training`)."""
    tr = arch_training(cfg["training"], model_id.arch.width)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=tr["learning_rate"])
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, **plateau_settings(tr))
    return optimizer, make_controller(model_id, cfg, optimizer, scheduler), max_epochs_for(model_id.kind, cfg)


def plateau_settings(tr: dict) -> dict:
    """The learning-rate rule of ``training:`` as ``ReduceLROnPlateau``'s arguments (mode min): the rate times
    ``lr_factor`` after more than ``lr_patience`` epochs without a relative improvement beyond
    ``improvement_threshold``, never below :func:`min_learning_rate`."""
    return dict(factor=tr["lr_factor"], patience=tr["lr_patience"], threshold=tr["improvement_threshold"],
                threshold_mode="rel", min_lr=min_learning_rate(tr))


def make_controller(model_id: ModelId, cfg: dict, optimizer, scheduler):
    """hippynn's ``PatienceController`` of one model (its termination patience and epoch limit) over ``scheduler``,
    the rule that lowers the model's learning rate (:func:`plateau_settings`). ``optimizer``: the torch optimizer
    the controller saves and restores with its own state (the hippynn engine's), or None where the rate lives in an
    optimizer of its own (the fast engine's stack)."""
    from hippynn.experiment.controllers import PatienceController

    tr = cfg["training"]
    return PatienceController(optimizer, scheduler, batch_size=tr["batch_size"],
                              max_epochs=max_epochs_for(model_id.kind, cfg), stopping_key="stop_metric",
                              eval_batch_size=tr["eval_batch_size"], fraction_train_eval=tr["train_eval_fraction"],
                              termination_patience=tr["termination_patience"], quiet=True)


def min_learning_rate(tr: dict) -> float:
    """The learning-rate floor of the stopping rule: ``min_learning_rate`` (null: 0, no floor). Training
    terminates only once the rate has decayed to it (:func:`epoch_end`)."""
    return float(tr.get("min_learning_rate") or 0.0)


def _resume(model_id: ModelId, ckpt: Checkpoint, run: _Run, controller) -> dict:
    """The training state: from the checkpoint when there is an unfinished one made with the same fingerprint
    (model, controller and RNG states restored), else a fresh one.

    A *finished* checkpoint is never resumed: this step runs only when Snakemake (or a person) asks for the
    model to be trained, e.g. ``--forcerun train`` or a changed code stamp, and handing back the old model
    would ignore that request; training starts from scratch (logged) and overwrites the checkpoint. The
    checkpoint folder must be writable (checked here, before any epoch is spent)."""
    state = {"epoch": 0, "best_metric": math.inf, "best_epoch": 0, "best_state": None, "curve": [],
             "elapsed_s": 0.0, "phase": 0}
    _check_writable(model_id, ckpt.path.parent)
    if ckpt.path.exists() and (ck := _read_checkpoint(ckpt.path, model_id)) is not None:
        if ck.get("fingerprint") != ckpt.fingerprint:
            log(f"[{model_id}] ignoring checkpoint {ckpt.path}: made with other settings, data, split or code")
        elif (ck.get("state") or {}).get("finished", False):
            log(f"[{model_id}] checkpoint {ckpt.path} is of a finished training: retraining from scratch "
                f"(a finished checkpoint never stands in for a requested retrain)")
        else:
            run.model.load_state_dict(ck["model"])
            controller.load_state_dict(ck["controller"])
            torch.random.set_rng_state(ck["torch_rng"])
            run.db.random_state.set_state(ck["db_rng"])
            state = ck["state"]
            log(f"[{model_id}] resuming from checkpoint at epoch {state['epoch']} ({ckpt.path})")
    return state


def _check_writable(model_id: ModelId, folder: Path) -> None:
    """:class:`TrainingError` naming ``folder`` when checkpoints cannot be written there."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test."):
            pass
    except OSError as e:
        raise TrainingError(f"{model_id}: cannot write checkpoints to {folder} ({e.strerror or e}); "
                            f"make the folder writable or remove it") from None


def _score_untrained(model_id: ModelId, run: _Run, optimizer, state: dict, tr: dict) -> None:
    """Epoch 0: the model as training starts it (after the energy-offset initialisation), recorded in
    ``state["untrained"]`` and as the curve's first row."""
    run.model.eval()
    with quiet_hippynn():
        ev = {name: run.evaluator.evaluate(run.batches[name].batches(tr["eval_batch_size"]), name, 0)
              for name in SPLITS}
    state["untrained"] = {name: {k: ev[name][k] for k in ("energy_rmse_eV", "energy_per_atom_rmse_eV",
                                                           "force_rmse_eV_A", "force_mae_eV_A")}
                          for name in SPLITS}
    w0 = run.schedule(1)
    state["curve"].append(_curve_row(0, optimizer.param_groups[0]["lr"], w0, float("nan"), ev["train"], ev["valid"],
                                     error_loss(run.schedule.final, ev["valid"]), 0.0, 0.0))
    log(f"[{model_id}] epoch    0  (untrained) force RMSE train {ev['train']['force_rmse_eV_A']:.4f} "
        f"valid {ev['valid']['force_rmse_eV_A']:.4f} eV/A")


def train_one_epoch(model_id: ModelId, run: _Run, optimizer, batch_size: int, w, epoch: int,
                     ckpt: Checkpoint) -> float:
    """One pass over the training split with loss weights ``w``; the mean batch loss. A loss that is not
    finite stops training (:class:`TrainingError` naming the epoch and batch)."""
    run.model.train()
    loss_sum, n_batches = 0.0, 0
    for b, batch in enumerate(run.batches["train"].batches(batch_size, shuffle=True)):
        loss, values = train_step(run, optimizer, batch, w)
        if not torch.isfinite(loss):
            bad = {k: float(v) for k, v in values.items()}
            where = (f"last good checkpoint: {ckpt.path}" if ckpt.path.exists()
                     else "no checkpoint was written yet")
            raise TrainingError(f"{model_id}: loss became {loss.item()} at epoch {epoch}, batch {b} "
                                f"(terms {bad}); {where}")
        loss_sum += loss.item()
        n_batches += 1
    return loss_sum / max(n_batches, 1)


def train_step(run: _Run, optimizer, batch, w):
    """One optimiser step on ``batch`` (a database batch: inputs then targets) with loss weights ``w``;
    returns (loss, the loss terms' values). A loss that is not finite is returned before any update."""
    batch = [x.to(run.device, non_blocking=True) for x in batch]
    outputs = run.model(*batch[:run.n_in])
    values = dict(zip(run.term_names, run.term_module(*outputs, *batch[run.n_in:])))
    loss = combine(w, values)
    if not torch.isfinite(loss):
        return loss, values
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss, values


def _epoch_loop(model_id: ModelId, run: _Run, optimizer, controller, max_epochs: int, state: dict,
                ckpt: Checkpoint, tr: dict, t_start: float) -> tuple[int, float]:
    """Train epoch by epoch from ``state`` until the controller or ``max_epochs`` stops it, keeping the best
    weights (per schedule phase) and the curve in ``state`` and writing a checkpoint every
    ``checkpoint_every`` epochs and at the end. Returns (last epoch, start of the time not yet in
    ``state["elapsed_s"]``)."""
    epoch = state["epoch"]
    keep_going = epoch < max_epochs and not state.get("finished", False)
    while keep_going:
        epoch += 1
        t_epoch = time.time()
        w = epoch_start(model_id, run.schedule, state, epoch)
        train_loss = train_one_epoch(model_id, run, optimizer, controller.batch_size, w, epoch, ckpt)
        ev_train, ev_valid = evaluate_epoch(run, tr, epoch)
        now = time.time()
        elapsed = state["elapsed_s"] + (now - t_start)
        keep_going = epoch_end(model_id, run.schedule, state, controller, tr, epoch, w, train_loss, ev_train,
                               ev_valid, optimizer.param_groups[0], now - t_epoch, elapsed,
                               lambda: to_cpu(run.model.state_dict()))
        if not keep_going or epoch % tr["checkpoint_every"] == 0:
            state["epoch"] = epoch
            state["finished"] = not keep_going
            _save_checkpoint(ckpt, run, controller, dict(state, elapsed_s=elapsed))
            state["elapsed_s"], t_start = elapsed, now
    return epoch, t_start


def epoch_start(model_id, schedule, state: dict, epoch: int):
    """The loss weights of ``epoch``; at a new row of a Born-Again schedule the best model is looked for anew
    within the new phase (both engines)."""
    w = schedule(epoch)
    phase = schedule.phase(epoch)
    if phase != state["phase"]:
        state["phase"], state["best_metric"], state["progress_metric"] = phase, math.inf, math.inf
        log(f"[{model_id}] epoch {epoch}: loss weights now {w.as_dict()}")
    return w


def epoch_end(model_id, schedule, state: dict, controller, tr: dict, epoch: int, w, train_loss: float,
              ev_train: dict, ev_valid: dict, group: dict, epoch_time: float, elapsed: float, best_state) -> bool:
    """The stopping rule after one epoch (both engines): the stopping metric, the best weights (``best_state()``
    is called on an improvement), progress beyond ``improvement_threshold``, the warm-up of ``min_epochs``, hippynn's
    ``PatienceController`` (learning-rate cuts by its scheduler, and termination), the curve row and the log line.
    ``group``: the model's parameter group in its optimizer (a dict whose ``lr`` is the rate the epoch trained with,
    and which the controller's scheduler lowers: the hippynn engine's torch Adam, the fast engine's
    :class:`tsmlip.train.optim.StackAdam`). Returns whether training goes on."""
    lr = group["lr"]
    stop_metric = error_loss(schedule.final, ev_valid)
    if not math.isfinite(stop_metric):
        raise TrainingError(f"{model_id}: validation loss became {stop_metric} at epoch {epoch}")
    better = stop_metric < state["best_metric"]
    if better:
        state.update(best_metric=stop_metric, best_epoch=epoch, best_state=best_state())
    # progress for the patience: an improvement by more than improvement_threshold (relative) over the best
    # metric that counted as progress (small-batch noise alone never resets it)
    progress = stop_metric < state.get("progress_metric", math.inf) * (1 - tr["improvement_threshold"])
    if progress:
        state["progress_metric"] = stop_metric
    # the first min_epochs epochs count against neither patience: a model whose validation error rises while
    # it starts to fit (a bad initial draw) is neither stopped nor slowed before it has trained
    warm_up = epoch <= tr["min_epochs"]
    keep_going = controller.push_epoch(epoch, progress or warm_up, stop_metric, _print=lambda *a: None)
    if warm_up:
        for sch in controller.scheduler_list:
            sch.num_bad_epochs = 0
    # the learning-rate floor: a halving restarts the termination patience (each rate gets its own chance to make
    # progress) and the rule terminates only at the floor, where the curve is smooth enough to rank epochs (at the
    # starting rate the validation error moves by several % from epoch to epoch: a lucky dip is not convergence)
    floor = min_learning_rate(tr)
    if floor > 0:
        new_lr = group["lr"]
        if new_lr < lr * (1 - 1e-6):
            controller.last_best, controller.boredom = epoch, 0
        if new_lr > floor * (1 + 1e-6) and epoch < controller._max_epochs:
            keep_going = True
    row = _curve_row(epoch, lr, w, train_loss, ev_train, ev_valid, stop_metric, epoch_time, elapsed)
    state["curve"].append(row)
    log(f"[{model_id}] epoch {epoch:4d}  lr {row['lr']:.2e}  loss {row['train_loss']:.4g}  "
        f"force RMSE train {row['train_force_rmse_eV_A']:.4f} valid {row['valid_force_rmse_eV_A']:.4f} eV/A  "
        f"E/atom RMSE valid {1000 * row['valid_energy_per_atom_rmse_eV']:.2f} meV  "
        f"{'*best* ' if better else ''}{row['epoch_time_s']:.1f} s")
    return keep_going


def evaluate_epoch(run: _Run, tr: dict, epoch: int) -> tuple[dict, dict]:
    """The metrics after an epoch: the validation split (the stopping metric) every epoch; a random
    ``train_eval_fraction`` of the training split every ``train_eval_every`` epochs (the learning curve's train
    columns; NaN in between)."""
    run.model.eval()
    with quiet_hippynn():
        ev_valid = run.evaluator.evaluate(run.batches["valid"].batches(tr["eval_batch_size"]), "valid", epoch)
        if epoch % tr["train_eval_every"] == 0:
            ev_train = run.evaluator.evaluate(run.batches["train"].batches(
                tr["eval_batch_size"], subsample=tr["train_eval_fraction"]), "train", epoch)
        else:
            ev_train = {k: math.nan for k in ev_valid}
    return ev_train, ev_valid


def _save_checkpoint(ckpt: Checkpoint, run: _Run, controller, state: dict) -> None:
    atomic_torch_save({"fingerprint": ckpt.fingerprint, "settings": ckpt.settings, "model": run.model.state_dict(),
                       "controller": controller.state_dict(), "torch_rng": torch.random.get_rng_state(),
                       "db_rng": run.db.random_state.get_state(), "state": state}, ckpt.path)


#: the last fraction of the epochs over which the late improvement is measured
LATE_FRACTION = 0.2


def convergence_summary(curve: list[dict], stopped_early: bool, best_epoch: int,
                        max_epochs: int) -> Convergence:
    """Why training stopped and how much it was still improving.

    ``stopped_by`` is ``patience`` when the termination patience ended training before ``max_epochs``,
    else ``max_epochs``. ``late_relative_improvement`` is how much the best validation force RMSE
    improved over the last ``LATE_FRACTION`` of the epochs, relative to the best before them:
    ``(best before the window - best overall) / best before the window`` (0 = no progress at the end).
    """
    rows = [r for r in curve if r["epoch"] >= 1 and math.isfinite(r["valid_force_rmse_eV_A"])]
    n = len(rows)
    window = max(1, int(round(LATE_FRACTION * n))) if n else 0
    late = math.nan
    if n > window:
        before = min(r["valid_force_rmse_eV_A"] for r in rows[:n - window])
        best = min(r["valid_force_rmse_eV_A"] for r in rows)
        late = (before - best) / before if before > 0 else 0.0
    return Convergence(stopped_by="patience" if stopped_early else "max_epochs", best_epoch=int(best_epoch),
                       epochs=n, max_epochs=int(max_epochs), late_window_epochs=window,
                       late_fraction=LATE_FRACTION, late_relative_improvement=late)


def _curve_row(epoch, lr, w, train_loss, ev_train, ev_valid, stop_metric, epoch_time, wall) -> dict:
    return {"epoch": epoch, "lr": float(lr), "w_E": w.w_E, "w_F": w.w_F, "w_A": w.w_A,
            "train_loss": train_loss,
            "train_force_rmse_eV_A": ev_train["force_rmse_eV_A"], "valid_force_rmse_eV_A": ev_valid["force_rmse_eV_A"],
            "train_energy_rmse_eV": ev_train["energy_rmse_eV"], "valid_energy_rmse_eV": ev_valid["energy_rmse_eV"],
            "train_energy_per_atom_rmse_eV": ev_train["energy_per_atom_rmse_eV"],
            "valid_energy_per_atom_rmse_eV": ev_valid["energy_per_atom_rmse_eV"],
            "valid_atom_energy_rmse_eV": ev_valid.get("atom_energy_rmse_eV", float("nan")),
            "stop_metric": stop_metric, "epoch_time_s": epoch_time, "wall_time_s": wall}
