"""What one training reads and runs on: the dataset, split and labels (:func:`load_training_data`), and the model with its
loss terms, hippynn's training modules and database, and the shared pair cache (:func:`assemble_training`)."""
from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.batches import SplitBatches
from ..ids import ModelId
from ..data import load_dataset, load_split
from ..data.split import SPLITS, dataset_fingerprint
from ..io_utils import atomic_torch_save
from ..kinds import REGISTRY
from ..label import LabelError, load_labels
from ..core.losses import TERMS, build_loss_terms, combine
from ..loss_weights import schedule_for
from ..core.model import (DB_ATOM_ENERGIES, DB_CELL, DB_ENERGY, DB_ENERGY_PER_ATOM, DB_FORCES, DB_POSITIONS,
                     DB_SPECIES, build_model, count_weights)


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


@dataclass
class TrainingData:
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
    graph: object  # tsmlip.core.model.ModelGraph
    schedule: object  # loss_weights.StaticSchedule or loss_weights.BornAgainSchedule
    model: torch.nn.Module  # inputs -> outputs (hippynn GraphModule)
    evaluator: object  # hippynn Evaluator of the validation metrics
    db: object  # hippynn Database
    batches: dict  # split name -> SplitBatches (the database's arrays, batched without per-sample indexing)
    term_names: list  # the loss terms, in TERMS order
    term_module: torch.nn.Module  # (outputs, targets) -> the loss terms' values
    n_in: int  # how many of a batch's tensors are model inputs (the rest are targets)
    n_weights: int


def load_training_data(model_id: ModelId, dataset_path, split_path, labels_path) -> TrainingData:
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
    return TrainingData(arrays, split, labels, distilled, fingerprint)


def assemble_training(model_id: ModelId, cfg: dict, data: TrainingData, device: torch.device, pair_cache_dir=None) -> _Run:
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

    with quiet_hippynn():
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


def _precompute_pairs(model, db, data: TrainingData, cfg: dict, device, cache_dir) -> None:
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


class quiet_hippynn:
    """Silence hippynn's chatty prints (database tables, assembly) in the training log."""

    def __enter__(self):
        self._stdout = sys.stdout
        sys.stdout = open(os.devnull, "w")

    def __exit__(self, *exc):
        sys.stdout.close()
        sys.stdout = self._stdout
        return False
