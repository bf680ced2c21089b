"""Training of every model kind: teacher, student, control, control_fw, Born-Again (static and scheduled).

Built on hippynn's pieces: the model graph (:mod:`tsmlip.model`), loss nodes (:mod:`tsmlip.losses`),
``assemble_for_training``, its ``Database``, pair pre-computation (``precompute_pairs``), the
``PatienceController`` with a ``ReduceLROnPlateau`` scheduler, and its ``Evaluator`` for per-epoch
metrics. The epoch loop is ours because the loss weights may change by epoch (Born-Again) and because
training must survive being killed:

* a checkpoint (model, optimizer, scheduler, controller, best weights, learning curve, RNG states) is
  written atomically every ``checkpoint_every`` epochs to ``<results>/checkpoints/<model id>/``, a place
  Snakemake does not delete when a job fails; a rerun of the same model with the same settings resumes
  from it (a preempted SLURM job loses at most one epoch);
* a loss that turns NaN/inf stops the job with a message naming the epoch and batch.

Outputs (``<results>/models/<model id>/``): ``model.pt`` (best weights), ``metrics.json`` and
``curve.csv`` (see docs/outputs.md).
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .batches import SplitBatches
from .config import ModelId
from .data import load_dataset, load_split
from .data.split import SPLITS, dataset_fingerprint, split_fingerprint
from .io_utils import atomic_open, atomic_torch_save, atomic_write_text
from .kinds import REGISTRY
from .label import LabelError, load_labels
from .losses import TERMS, build_loss_terms, combine, error_loss, schedule_for
from .model import (DB_ATOM_ENERGIES, DB_CELL, DB_ENERGY, DB_ENERGY_PER_ATOM, DB_FORCES, DB_POSITIONS,
                    DB_SPECIES, build_model, count_weights, device_description, load_model, resolve_device,
                    _to_cpu, save_model)
from .predict import error_metrics, predict
from .records import Convergence, SplitErrors, TrainMetrics

CURVE_COLUMNS = ["epoch", "lr", "w_E", "w_F", "w_A", "train_loss",
                 "train_force_rmse_eV_A", "valid_force_rmse_eV_A",
                 "train_energy_rmse_eV", "valid_energy_rmse_eV",
                 "train_energy_per_atom_rmse_eV", "valid_energy_per_atom_rmse_eV",
                 "valid_atom_energy_rmse_eV", "stop_metric", "epoch_time_s", "wall_time_s"]


class TrainingError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(msg, flush=True)


def hippynn_arrays(arrays: dict, labels: np.ndarray | None) -> dict[str, np.ndarray]:
    """The dataset as hippynn Database arrays (float32; energies as (n, 1), atom energies (n, N, 1))."""
    n_atoms = (arrays["Z"] != 0).sum(axis=1)
    out = {
        DB_SPECIES: arrays["Z"].astype(np.int64),
        DB_POSITIONS: arrays["R"].astype(np.float32),
        DB_CELL: arrays["cell"].astype(np.float32),
        DB_ENERGY: arrays["E"].astype(np.float32)[:, None],
        DB_ENERGY_PER_ATOM: (arrays["E"] / n_atoms).astype(np.float32)[:, None],
        DB_FORCES: arrays["F"].astype(np.float32),
    }
    if labels is not None:
        out[DB_ATOM_ENERGIES] = labels.astype(np.float32)[..., None]
    return out


def _n_images(arrays: dict, cutoff: float) -> int:
    """Periodic images needed for the pair cache: the cut-off over the smallest cell height."""
    cells = arrays["cell"]
    vol = np.abs(np.linalg.det(cells))
    heights = np.stack([vol / np.linalg.norm(np.cross(cells[:, (i + 1) % 3], cells[:, (i + 2) % 3]), axis=1)
                        for i in range(3)], axis=1)
    return int(math.ceil(cutoff / heights.min())) + 1


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


def _fingerprint(model_id: ModelId, cfg: dict, dataset_path, labels_path, split_path=None) -> str:
    """What a checkpoint must match to be resumed: the model, its settings, the data, the split and the labels.

    The split enters by its content (the train/valid/test index arrays, hence also the valid/test fractions
    and the split seed), not by its file's bytes: a split rewritten with the same indices resumes, any other
    split starts over (a checkpoint of a model trained on other configurations would leak test data)."""
    # where and how fast it runs does not change the experiment: a preempted job may resume elsewhere
    training = {k: v for k, v in cfg["training"].items() if k not in ("device", "torch_threads", "checkpoint_every")}
    relevant = {"id": str(model_id), "network": cfg["network"], "training": training,
                "born_again": cfg["born_again"] if REGISTRY[model_id.kind].scheduled else None,
                "data": dataset_fingerprint(dataset_path),
                "split": split_fingerprint(split_path) if split_path is not None else None,
                "labels": dataset_fingerprint(labels_path) if labels_path else None}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


def train(model_id: ModelId, cfg: dict, dataset_path, split_path, out_dir, checkpoint_dir,
          labels_path=None, pair_cache_dir=None) -> dict:
    """Train one model; returns its metrics dict (also written to ``out_dir/metrics.json``).

    The steps, in order (the order matters: the model's weights, the database's shuffling and the
    checkpoint's RNG states all draw on torch's global generator): read the data (:func:`_load_data`), build
    the model, its losses and the hippynn database (:func:`_assemble`), the optimizer and its controllers
    (:func:`_optimizer`), resume from a checkpoint (:func:`_resume`), score the untrained model
    (:func:`_score_untrained`), the epoch loop (:func:`_epoch_loop`), and write the outputs (:func:`_finish`).
    """
    tr = cfg["training"]
    t_start = time.time()
    out_dir, checkpoint_dir = Path(out_dir), Path(checkpoint_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(tr["device"])
    if device.type == "cpu":
        torch.set_num_threads(int(tr["torch_threads"]))
        # the sensitivities' tails underflow into subnormal floats, which a CPU multiplies 10-100x slower than
        # normal ones; flushing them to zero changes no result beyond float32 rounding (docs/default_experiment.md)
        torch.set_flush_denormal(True)
    torch.set_default_dtype(torch.float32)

    data = _load_data(model_id, dataset_path, split_path, labels_path)
    run = _assemble(model_id, cfg, data, device, pair_cache_dir)
    optimizer, controller, max_epochs = _optimizer(model_id, cfg, run.model)
    ckpt = _Checkpoint(checkpoint_dir / "checkpoint.pt", _fingerprint(model_id, cfg, dataset_path, labels_path, split_path))
    state = _resume(model_id, ckpt, run, controller)
    split = data.split
    log(f"[{model_id}] {run.n_weights} trainable weights, device {device_description(device)}, "
        f"{len(split['train'])}/{len(split['valid'])}/{len(split['test'])} train/valid/test configs, "
        f"max {max_epochs} epochs, patience {tr['termination_patience']}, "
        f"final loss weights {run.schedule.final.as_dict()}")
    if state["epoch"] == 0 and not state["curve"]:
        _score_untrained(model_id, run, optimizer, state, tr)
    epoch, t_start = _epoch_loop(model_id, run, optimizer, controller, max_epochs, state, ckpt, tr, t_start)
    return _finish(model_id, cfg, data, run, state, epoch, max_epochs, out_dir, labels_path, t_start)


@dataclass
class _Data:
    """What one training reads: the dataset arrays, the split, the teacher's labels (None without)."""

    arrays: dict
    split: dict
    labels: np.ndarray | None
    distilled: bool  # the loss has an atom-energy term
    fingerprint: str = ""  # content of the dataset and split files (keys the pair cache)


@dataclass
class _Run:
    """The assembled model: graph, loss terms and schedule, hippynn's training modules and database."""

    device: torch.device
    graph: object  # tsmlip.model.ModelGraph
    schedule: object  # losses.StaticSchedule or losses.BornAgainSchedule
    model: torch.nn.Module  # inputs -> outputs (hippynn GraphModule)
    evaluator: object  # hippynn Evaluator of the validation metrics
    db: object  # hippynn Database
    batches: dict  # split name -> SplitBatches (the database's arrays, batched without per-sample indexing)
    term_names: list  # the loss terms, in TERMS order
    term_module: torch.nn.Module  # (outputs, targets) -> the loss terms' values
    n_in: int  # how many of a batch's tensors are model inputs (the rest are targets)
    n_weights: int


@dataclass
class _Checkpoint:
    path: Path
    fingerprint: str  # the settings, data and labels it was made with (see _fingerprint)


def _load_data(model_id: ModelId, dataset_path, split_path, labels_path) -> _Data:
    distilled = REGISTRY[model_id.kind].distilled
    if distilled and labels_path is None:
        raise TrainingError(f"{model_id}: a {model_id.kind} model needs the teacher's atom-energy labels")
    arrays = load_dataset(dataset_path)
    split = load_split(split_path, len(arrays["E"]))
    labels = None
    if labels_path is not None:
        try:
            labels = load_labels(labels_path, arrays)
        except LabelError as e:
            raise TrainingError(str(e)) from None
    fingerprint = f"{dataset_fingerprint(dataset_path)}-{dataset_fingerprint(split_path)}"
    return _Data(arrays, split, labels, distilled, fingerprint)


def _assemble(model_id: ModelId, cfg: dict, data: _Data, device: torch.device, pair_cache_dir=None) -> _Run:
    """The model graph (weights seeded by the model's seed), its loss terms, hippynn's training modules and
    database (energy offsets initialised from the training data, pairs pre-computed), on ``device``."""
    from hippynn.databases import Database
    from hippynn.experiment import assemble_for_training
    from hippynn.graphs import GraphModule
    from hippynn.pretraining import hierarchical_energy_initialization

    tr = cfg["training"]
    arrays = data.arrays
    species = sorted(int(z) for z in np.unique(arrays["Z"]) if z != 0)
    graph = build_model(model_id.arch, cfg["network"], seed=model_id.seed, species=species)
    terms, metric_nodes = build_loss_terms(graph, with_atom_energies=data.distilled)
    schedule = schedule_for(model_id.kind, cfg)
    static_loss = combine(schedule.final, terms)  # defines what the model must output; weights applied per epoch

    def assemble():
        return assemble_for_training(static_loss, metric_nodes)

    with _quiet():
        training_modules, db_info = assemble()
        db = Database(hippynn_arrays(arrays, data.labels if data.distilled else None), inputs=db_info["inputs"],
                      targets=db_info["targets"], seed=model_id.seed, quiet=True)
        for name in ("test", "valid", "train"):
            db.make_explicit_split(name, torch.as_tensor(data.split[name]))
        hierarchical_energy_initialization(graph.henergy, db, trainable_after=False, decay_factor=1e-2)
        if tr["precompute_pairs"]:
            _precompute_pairs(training_modules.model, db, data, cfg, device, pair_cache_dir)
            training_modules, db_info = assemble()
            db.inputs, db.targets = db_info["inputs"], db_info["targets"]
    model, _, evaluator = training_modules
    term_names = [t for t in TERMS if t in terms]
    term_module = GraphModule(training_modules.loss.input_nodes, [terms[t] for t in term_names])
    model.to(device)
    term_module.to(device)
    evaluator.model_device = device
    if device.type == "cuda":
        db.send_to_device(device)
    batches = {name: SplitBatches(db, name) for name in SPLITS}
    return _Run(device, graph, schedule, model, evaluator, db, batches, term_names, term_module,
                len(db_info["inputs"]), count_weights(graph))


def _precompute_pairs(model, db, data: _Data, cfg: dict, device, cache_dir) -> None:
    """hippynn's pair pre-computation (``precompute_pairs``: the pairs of every configuration within the hard
    cut-off, stored in the database; the model graph then reads them instead of searching), with the result
    kept in ``cache_dir`` (when given) under a key of everything it depends on: the dataset's and split's
    content, the cut-off, the periodic images and hippynn's version. Every model of a run reads the same
    dataset and split, so only the first job pays for the search (about 9 s on one CPU core for the default
    data); the others load it. The cache is written atomically; a damaged file is recomputed."""
    import hippynn
    from hippynn.experiment.assembly import _PAIRCACHE_DB_NAME, precompute_pairs

    cutoff = float(cfg["network"]["dist_hard_max"])
    n_images = _n_images(data.arrays, cutoff)
    path = None
    if cache_dir is not None:
        key = hashlib.sha256(json.dumps([data.fingerprint, cutoff, n_images, hippynn.__version__]).encode())
        path = Path(cache_dir) / f"pairs-{key.hexdigest()[:16]}.pt"
    cached = None
    if path is not None and path.exists():
        try:
            cached = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # damaged (e.g. a disk filled up mid-write elsewhere): recompute it
            log(f"ignoring pair cache {path} ({type(exc).__name__}); recomputing")
    if cached is not None and set(cached) == set(db.splits):
        class _NoSplits:  # precompute_pairs rewires the graph and computes pairs for each split: here none
            splits = {}
        precompute_pairs(model, _NoSplits(), device=device, n_images=n_images)
        for name, cache in cached.items():
            db.splits[name][_PAIRCACHE_DB_NAME] = cache.to(device)
        return
    precompute_pairs(model, db, batch_size=cfg["training"]["eval_batch_size"], device=device, n_images=n_images)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save({name: split[_PAIRCACHE_DB_NAME].cpu() for name, split in db.splits.items()}, path)


def _optimizer(model_id: ModelId, cfg: dict, model: torch.nn.Module):
    """(optimizer, controller, max_epochs): Adam, hippynn's ``PatienceController`` with a ``ReduceLROnPlateau``
    scheduler, and the epoch limit (``born_again.max_epochs`` for a Born-Again model, if set)."""
    from hippynn.experiment.controllers import PatienceController

    tr = cfg["training"]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=tr["learning_rate"])
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=tr["lr_factor"],
                                                           patience=tr["lr_patience"],
                                                           threshold=tr["improvement_threshold"],
                                                           threshold_mode="rel")
    max_epochs = int(cfg["born_again"].get("max_epochs", tr["max_epochs"])) if REGISTRY[model_id.kind].scheduled \
        else int(tr["max_epochs"])
    controller = PatienceController(optimizer, scheduler, batch_size=tr["batch_size"], max_epochs=max_epochs,
                                    stopping_key="stop_metric", eval_batch_size=tr["eval_batch_size"],
                                    fraction_train_eval=tr["train_eval_fraction"],
                                    termination_patience=tr["termination_patience"], quiet=True)
    return optimizer, controller, max_epochs


def _resume(model_id: ModelId, ckpt: _Checkpoint, run: _Run, controller) -> dict:
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
            log(f"[{model_id}] ignoring checkpoint {ckpt.path}: made with other settings, data or split")
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
    with _quiet():
        ev = {name: run.evaluator.evaluate(run.batches[name].batches(tr["eval_batch_size"]), name, 0)
              for name in SPLITS}
    state["untrained"] = {name: {k: ev[name][k] for k in ("energy_rmse_eV", "energy_per_atom_rmse_eV",
                                                           "force_rmse_eV_A", "force_mae_eV_A")}
                          for name in SPLITS}
    w0 = run.schedule(1)
    state["curve"].append(_curve_row(0, optimizer, w0, float("nan"), ev["train"], ev["valid"],
                                     error_loss(run.schedule.final, ev["valid"]), 0.0, 0.0))
    log(f"[{model_id}] epoch    0  (untrained) force RMSE train {ev['train']['force_rmse_eV_A']:.4f} "
        f"valid {ev['valid']['force_rmse_eV_A']:.4f} eV/A")


def _train_one_epoch(model_id: ModelId, run: _Run, optimizer, batch_size: int, w, epoch: int,
                     ckpt: _Checkpoint) -> float:
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
                ckpt: _Checkpoint, tr: dict, t_start: float) -> tuple[int, float]:
    """Train epoch by epoch from ``state`` until the controller or ``max_epochs`` stops it, keeping the best
    weights (per schedule phase) and the curve in ``state`` and writing a checkpoint every
    ``checkpoint_every`` epochs and at the end. Returns (last epoch, start of the time not yet in
    ``state["elapsed_s"]``)."""
    epoch = state["epoch"]
    keep_going = epoch < max_epochs and not state.get("finished", False)
    while keep_going:
        epoch += 1
        t_epoch = time.time()
        w = run.schedule(epoch)
        phase = run.schedule.phase(epoch)
        if phase != state["phase"]:
            # Born-Again: a new row of the schedule -> pick the best model within the new phase
            state["phase"], state["best_metric"], state["progress_metric"] = phase, math.inf, math.inf
            log(f"[{model_id}] epoch {epoch}: loss weights now {w.as_dict()}")
        train_loss = _train_one_epoch(model_id, run, optimizer, controller.batch_size, w, epoch, ckpt)
        ev_train, ev_valid = _evaluate_epoch(run, tr, epoch)
        stop_metric = error_loss(run.schedule.final, ev_valid)
        if not math.isfinite(stop_metric):
            raise TrainingError(f"{model_id}: validation loss became {stop_metric} at epoch {epoch}")
        better = stop_metric < state["best_metric"]
        if better:
            state.update(best_metric=stop_metric, best_epoch=epoch, best_state=_to_cpu(run.model.state_dict()))
        # progress for the patience: an improvement by more than improvement_threshold (relative) over the best
        # metric that counted as progress (small-batch noise alone never resets it)
        progress = stop_metric < state.get("progress_metric", math.inf) * (1 - tr["improvement_threshold"])
        if progress:
            state["progress_metric"] = stop_metric
        keep_going = controller.push_epoch(epoch, progress, stop_metric, _print=lambda *a: None)
        now = time.time()
        elapsed = state["elapsed_s"] + (now - t_start)
        row = _curve_row(epoch, optimizer, w, train_loss, ev_train, ev_valid, stop_metric, now - t_epoch, elapsed)
        state["curve"].append(row)
        log(f"[{model_id}] epoch {epoch:4d}  lr {row['lr']:.2e}  loss {row['train_loss']:.4g}  "
            f"force RMSE train {row['train_force_rmse_eV_A']:.4f} valid {row['valid_force_rmse_eV_A']:.4f} eV/A  "
            f"E/atom RMSE valid {1000 * row['valid_energy_per_atom_rmse_eV']:.2f} meV  "
            f"{'*best* ' if better else ''}{row['epoch_time_s']:.1f} s")
        if not keep_going or epoch % tr["checkpoint_every"] == 0:
            state["epoch"] = epoch
            state["finished"] = not keep_going
            _save_checkpoint(ckpt, run, controller, dict(state, elapsed_s=elapsed))
            state["elapsed_s"], t_start = elapsed, now
    return epoch, t_start


def _evaluate_epoch(run: _Run, tr: dict, epoch: int) -> tuple[dict, dict]:
    """The metrics after an epoch: the validation split (the stopping metric) every epoch; a random
    ``train_eval_fraction`` of the training split every ``train_eval_every`` epochs (the learning curve's train
    columns; NaN in between)."""
    run.model.eval()
    with _quiet():
        ev_valid = run.evaluator.evaluate(run.batches["valid"].batches(tr["eval_batch_size"]), "valid", epoch)
        if epoch % tr["train_eval_every"] == 0:
            ev_train = run.evaluator.evaluate(run.batches["train"].batches(
                tr["eval_batch_size"], subsample=tr["train_eval_fraction"]), "train", epoch)
        else:
            ev_train = {k: math.nan for k in ev_valid}
    return ev_train, ev_valid


def _save_checkpoint(ckpt: _Checkpoint, run: _Run, controller, state: dict) -> None:
    atomic_torch_save({"fingerprint": ckpt.fingerprint, "model": run.model.state_dict(),
                       "controller": controller.state_dict(), "torch_rng": torch.random.get_rng_state(),
                       "db_rng": run.db.random_state.get_state(), "state": state}, ckpt.path)


def _finish(model_id: ModelId, cfg: dict, data: _Data, run: _Run, state: dict, epoch: int, max_epochs: int,
            out_dir: Path, labels_path, t_start: float) -> dict:
    """Write the best weights (``model.pt``), the curve (``curve.csv``) and the metrics of the saved model
    on every split (``metrics.json``); returns the metrics."""
    if state["best_state"] is None:
        raise TrainingError(f"{model_id}: no epoch was trained (max_epochs={max_epochs})")
    tr, device = cfg["training"], run.device
    run.model.load_state_dict(state["best_state"])
    wall = state["elapsed_s"] + (time.time() - t_start)
    meta = {"model_id": str(model_id), "best_epoch": state["best_epoch"], "epochs": epoch}
    convergence = convergence_summary(state["curve"], stopped_early=epoch < max_epochs,
                                      best_epoch=state["best_epoch"], max_epochs=max_epochs)
    save_model(run.graph, out_dir / "model.pt", **meta)
    with atomic_open(out_dir / "curve.csv", "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=CURVE_COLUMNS)
        wr.writeheader()
        wr.writerows(state["curve"])
    final = load_model(out_dir / "model.pt", device=device)  # scores exactly what was saved
    splits = {}
    for name in SPLITS:
        pred = predict(final, data.arrays, data.split[name], device=device, batch_size=tr["eval_batch_size"])
        splits[name] = error_metrics(pred, data.arrays, data.split[name], data.labels)
    metrics = TrainMetrics(
        model_id=str(model_id), kind=model_id.kind, width=model_id.arch.width,
        n_sensitivities=model_id.arch.n_sensitivities, n_atom_layers=model_id.arch.n_atom_layers,
        seed=model_id.seed, n_weights=run.n_weights, epochs=epoch, best_epoch=state["best_epoch"],
        wall_time_s=wall, device=device_description(device),
        convergence=convergence,
        loss_weights=run.schedule.final.as_dict(),
        loss_schedule=None if model_id.kind != "born_again" else cfg["born_again"],
        teacher_labels=str(labels_path) if labels_path else None,
        atom_energy_labels_in_loss=data.distilled,
        splits={name: SplitErrors(**errors) for name, errors in splits.items()},
        untrained=state.get("untrained"),
    ).to_json()
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2))
    t = splits["test"]
    log(f"[{model_id}] stopped by {convergence.stopped_by} after {epoch} epochs (best {state['best_epoch']}); "
        f"validation force RMSE improved {100 * convergence.late_relative_improvement:.1f}% over the last "
        f"{convergence.late_window_epochs} epochs")
    log(f"[{model_id}] done: {epoch} epochs (best {state['best_epoch']}), {wall:.0f} s; test force RMSE "
        f"{t['force_rmse_eV_A']:.4f} eV/A, energy RMSE {1000 * t['energy_per_atom_rmse_eV']:.2f} meV/atom")
    return metrics


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


def _curve_row(epoch, optimizer, w, train_loss, ev_train, ev_valid, stop_metric, epoch_time, wall) -> dict:
    return {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"], "w_E": w.w_E, "w_F": w.w_F, "w_A": w.w_A,
            "train_loss": train_loss,
            "train_force_rmse_eV_A": ev_train["force_rmse_eV_A"], "valid_force_rmse_eV_A": ev_valid["force_rmse_eV_A"],
            "train_energy_rmse_eV": ev_train["energy_rmse_eV"], "valid_energy_rmse_eV": ev_valid["energy_rmse_eV"],
            "train_energy_per_atom_rmse_eV": ev_train["energy_per_atom_rmse_eV"],
            "valid_energy_per_atom_rmse_eV": ev_valid["energy_per_atom_rmse_eV"],
            "valid_atom_energy_rmse_eV": ev_valid.get("atom_energy_rmse_eV", float("nan")),
            "stop_metric": stop_metric, "epoch_time_s": epoch_time, "wall_time_s": wall}


class _quiet:
    """Silence hippynn's chatty prints (database tables, assembly) in the training log."""

    def __enter__(self):
        self._stdout = sys.stdout
        sys.stdout = open(os.devnull, "w")

    def __exit__(self, *exc):
        sys.stdout.close()
        sys.stdout = self._stdout
        return False


def main(argv=None) -> int:
    from .cli import step_parser

    p = step_parser("train", __doc__, ("network", "training", "born_again"))
    p.add_argument("--model-id", required=True, help="e.g. student/w16-s10-l2/seed1")
    p.add_argument("--dataset", required=True)
    p.add_argument("--split", required=True)
    p.add_argument("--labels", default=None, help="teacher atom-energy labels (students; others: evaluation)")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--checkpoint-dir", required=True)
    p.add_argument("--pair-cache-dir", default=None,
                   help="keep the pre-computed pairs here, keyed by dataset, split and cut-off (shared by all models)")
    a = p.parse_args(argv)
    try:
        train(ModelId.parse(a.model_id), a.config_json, a.dataset, a.split, a.out_dir, a.checkpoint_dir, a.labels,
              a.pair_cache_dir)
    except TrainingError as e:
        print(f"tsmlip train: error: {e}", file=sys.stderr)
        return 1
    return 0

