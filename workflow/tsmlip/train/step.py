"""Training of every model kind: teacher, student, control, control_fw, Born-Again (static and scheduled).

Built on hippynn's pieces: the model graph (:mod:`tsmlip.core.model`), loss nodes (:mod:`tsmlip.core.losses`),
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
import sys
import time
from pathlib import Path

import torch

from ..ids import ModelId
from ..data.split import SPLITS
from ..io_utils import atomic_open
from ..kinds import REGISTRY
from ..model_ids import arch_training
from ..core.model import device_description, load_model, resolve_device, save_model
from ..core.predict import error_metrics, predict
from ..provenance import ProvenanceError, check_inputs, model_data_meta, record, write_sidecar
from ..provenance_checks import describing_model
from ..records import SplitErrors, TrainMetrics
from ..settings import settings_fingerprint, step_settings
from .assembly import TrainingError, assemble_training, TrainingData, load_training_data, _Run, log
from .loop import (CURVE_COLUMNS, Checkpoint, _epoch_loop, run_fingerprint, make_optimizer, _resume, _score_untrained,
                   convergence_summary)


def train(model_id: ModelId, cfg: dict, dataset_path, split_path, out_dir, checkpoint_dir,
          labels_path=None, pair_cache_dir=None) -> dict:
    """Train one model; returns its metrics dict (also written to ``out_dir/metrics.json``).

    The steps, in order (the order matters: the model's weights, the database's shuffling and the
    checkpoint's RNG states all draw on torch's global generator): read the data (:func:`load_training_data`), build
    the model, its losses and the hippynn database (:func:`assemble_training`), the optimizer and its controllers
    (:func:`make_optimizer`), resume from a checkpoint (:func:`_resume`), score the untrained model
    (:func:`_score_untrained`), the epoch loop (:func:`_epoch_loop`), and write the outputs (:func:`finish_training`).
    """
    tr = arch_training(cfg["training"], model_id.arch.width)  # its own learning rate; cfg as configured (records)
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

    if tr["ema_decay"] > 0:
        raise TrainingError(f"{model_id}: training.ema_decay (an average of the weights) is the fast engine's; set "
                            f"training.engine: fast or ema_decay: 0")
    check_inputs({"dataset": dataset_path, "split": split_path, "labels": labels_path})
    data = load_training_data(model_id, dataset_path, split_path, labels_path)
    run = assemble_training(model_id, cfg, data, device, pair_cache_dir)
    optimizer, controller, max_epochs = make_optimizer(model_id, cfg, run.model)
    ckpt = Checkpoint(checkpoint_dir / "checkpoint.pt",
                      run_fingerprint(model_id, cfg, dataset_path, labels_path, split_path),
                      settings_fingerprint("train", cfg, model_id=model_id))
    state = _resume(model_id, ckpt, run, controller)
    split = data.split
    log(f"[{model_id}] {run.n_weights} trainable weights, device {device_description(device)}, "
        f"{len(split['train'])}/{len(split['valid'])}/{len(split['test'])} train/valid/test configs, "
        f"max {max_epochs} epochs, patience {tr['termination_patience']}, "
        f"final loss weights {run.schedule.final.as_dict()}")
    if state["epoch"] == 0 and not state["curve"]:
        _score_untrained(model_id, run, optimizer, state, tr)
    epoch, t_start = _epoch_loop(model_id, run, optimizer, controller, max_epochs, state, ckpt, tr, t_start)
    if state["best_state"] is None:
        raise TrainingError(f"{model_id}: no epoch was trained (max_epochs={max_epochs})")
    run.model.load_state_dict(state["best_state"])
    wall = state["elapsed_s"] + (time.time() - t_start)
    return finish_training(model_id, cfg, data, run.graph, run.schedule, run.n_weights, run.device, state, epoch,
                   max_epochs, out_dir, labels_path, wall, "hippynn",
                   made_of(model_id, cfg, dataset_path, split_path, labels_path))


def made_of(model_id: ModelId, cfg: dict, dataset_path, split_path, labels_path) -> dict:
    """The dataset and split fingerprints and the provenance record (tsmlip.provenance) of a trained model; its
    settings are the model's training settings (:func:`tsmlip.settings.step_settings`), as its rule's stamp and its
    checkpoint hash them."""
    return {**model_data_meta(dataset_path, split_path),
            "provenance": record("train", step_settings("train", cfg, model_id=model_id),
                                 {"dataset": dataset_path, "split": split_path, "labels": labels_path})}


def finish_training(model_id: ModelId, cfg: dict, data: TrainingData, graph, schedule, n_weights: int, device, state: dict,
            epoch: int, max_epochs: int, out_dir: Path, labels_path, wall: float, engine: str,
            made: dict | None = None) -> dict:
    """Write the best weights (``graph`` holds them: ``model.pt``), the curve (``curve.csv``) and the metrics of
    the saved model on every split, scored by hippynn (``metrics.json``); returns the metrics. ``made``: the
    dataset and split fingerprints and the provenance record (:func:`made_of`), kept in the model's meta, beside
    the curve (its sidecar) and in metrics.json, which also records the content of the model.pt it scores."""
    tr = cfg["training"]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"model_id": str(model_id), "best_epoch": state["best_epoch"], "epochs": epoch, "engine": engine,
            **(made or {})}
    convergence = convergence_summary(state["curve"], stopped_early=epoch < max_epochs,
                                      best_epoch=state["best_epoch"], max_epochs=max_epochs)
    save_model(graph, out_dir / "model.pt", **meta)
    rec = made["provenance"] if made else None
    with atomic_open(out_dir / "curve.csv", "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=CURVE_COLUMNS)
        wr.writeheader()
        wr.writerows(state["curve"])
    if rec is not None:  # the curve's record beside it: the training's, with the curve's own content hash
        write_sidecar(out_dir / "curve.csv", rec)
    final = load_model(out_dir / "model.pt", device=device)  # scores exactly what was saved
    splits = {}
    for name in SPLITS:
        pred = predict(final, data.arrays, data.split[name], device=device, batch_size=tr["eval_batch_size"])
        splits[name] = error_metrics(pred, data.arrays, data.split[name], data.labels)
    metrics = TrainMetrics(
        model_id=str(model_id), kind=model_id.kind, width=model_id.arch.width,
        n_sensitivities=model_id.arch.n_sensitivities, n_atom_layers=model_id.arch.n_atom_layers,
        seed=model_id.seed, n_weights=n_weights, epochs=epoch, best_epoch=state["best_epoch"],
        wall_time_s=wall, device=device_description(device),
        convergence=convergence,
        loss_weights=schedule.final.as_dict(),
        loss_schedule=cfg["born_again"] if REGISTRY[model_id.kind].scheduled else None,
        teacher_labels=str(labels_path) if labels_path else None,
        atom_energy_labels_in_loss=data.distilled,
        splits={name: SplitErrors(**errors) for name, errors in splits.items()},
        untrained=state.get("untrained"),
    ).with_provenance(describing_model(rec, out_dir / "model.pt")).write(out_dir / "metrics.json", indent=2)
    t = splits["test"]
    log(f"[{model_id}] stopped by {convergence.stopped_by} after {epoch} epochs (best {state['best_epoch']}); "
        f"validation force RMSE improved {100 * convergence.late_relative_improvement:.1f}% over the last "
        f"{convergence.late_window_epochs} epochs")
    log(f"[{model_id}] done: {epoch} epochs (best {state['best_epoch']}), {wall:.0f} s; test force RMSE "
        f"{t['force_rmse_eV_A']:.4f} eV/A, energy RMSE {1000 * t['energy_per_atom_rmse_eV']:.2f} meV/atom")
    return metrics


def main(argv=None) -> int:
    from ..cli import step_parser

    from ..cli import add_threads, with_threads

    p = step_parser("train", __doc__)
    add_threads(p)
    p.add_argument("--model-id", required=True, help="e.g. student/w16-s4-l1/seed1")
    p.add_argument("--dataset", required=True)
    p.add_argument("--split", required=True)
    p.add_argument("--labels", default=None, help="teacher atom-energy labels (students; others: evaluation)")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--checkpoint-dir", required=True)
    p.add_argument("--pair-cache-dir", default=None,
                   help="keep the pre-computed pairs here, keyed by dataset, split and cut-off (shared by all models)")
    a = p.parse_args(argv)
    a.config_json = with_threads(p, a)
    try:
        train(ModelId.parse(a.model_id), a.config_json, a.dataset, a.split, a.out_dir, a.checkpoint_dir, a.labels,
              a.pair_cache_dir)
    except (TrainingError, ProvenanceError) as e:
        print(f"tsmlip train: error: {e}", file=sys.stderr)
        return 1
    return 0
