"""The fast training engine (``training.engine: fast``): a stack of HIPNN models trained together in plain torch
(:mod:`tsmlip.core.hipnn_stack`), each with its own initial weights (hippynn's, from its seed), its own data order
(a generator seeded by its seed), its own loss weights, learning rate (its parameter group in the stack's optimizer,
:class:`StackAdam`), stopping rule (hippynn's ``PatienceController`` over :class:`PlateauLR`, torch's
``ReduceLROnPlateau`` rule on the model's own rate, one per model, driven by the same :func:`.loop.epoch_end` as the
hippynn engine), best weights, checkpoint and outputs. A model that stops leaves the stack and writes its
``model.pt`` (hippynn's state dict, the same file as the hippynn engine writes), ``metrics.json`` (scored by hippynn)
and ``curve.csv`` at once.

The models of one stack share the dataset and split (their atom-energy labels may differ); a step costs about as
much for a stack as for one model up to a few dozen models on a CPU (docs/training.md)."""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..ids import ModelId
from ..core.geometry import pair_geometry
from ..core.hipnn import UnsupportedModel, check_supported
from ..core.hipnn_stack import SlotBatch, StackedHipnn, loss_terms, metrics
from ..data.split import SPLITS
from ..io_utils import atomic_torch_save
from ..core.losses import TERMS
from ..core.model import build_model, count_weights, device_description, resolve_device
from .assembly import TrainingError, load_training_data, quiet_hippynn, log
from ..loss_weights import max_epochs_for, schedule_for
from ..model_ids import arch_training
from .loop import (_check_writable, run_fingerprint, make_controller, plateau_settings, _read_checkpoint, epoch_end,
                   epoch_start)
from ..provenance import ProvenanceError, check_inputs
from ..settings import settings_fingerprint
from .optim import PlateauLR, StackAdam
from .step import finish_training, made_of



@dataclass
class _Member:
    """One model of the stack and everything that is its own."""

    model_id: ModelId
    data: object  # assembly.TrainingData (its labels)
    out_dir: Path
    ckpt: Path
    fingerprint: str  # what its checkpoint must match (.loop.run_fingerprint)
    settings: str  # its settings alone (tsmlip.settings.settings_fingerprint), recorded in the checkpoint
    labels_path: str | None
    dataset_path: str
    split_path: str
    schedule: object
    max_epochs: int
    generator: torch.Generator
    controller: object = None  # hippynn's PatienceController over a PlateauLR on the model's group of the StackAdam
    state: dict = field(default_factory=dict)
    epoch: int = 0
    t_start: float = 0.0


def initial_state(model_id: ModelId, cfg: dict, arrays: dict, split: dict, species: list[int]):
    """The hippynn graph of the model (weights from its seed, as :mod:`.assembly` builds it) after hippynn's
    ``hierarchical_energy_initialization`` on the training split: (graph, network state, energy-head state)."""
    from hippynn.pretraining import hierarchical_energy_initialization

    graph = build_model(model_id.arch, cfg["network"], seed=model_id.seed, species=species)
    train = split["train"]

    class _TrainSplit:  # what hierarchical_energy_initialization reads of a database
        splits = {"train": {"Z": torch.as_tensor(arrays["Z"][train].astype(np.int64)),
                            "E": torch.as_tensor(arrays["E"][train].astype(np.float32))[:, None]}}

    with quiet_hippynn():
        hierarchical_energy_initialization(graph.henergy, _TrainSplit(), trainable_after=False, decay_factor=1e-2)
    return graph, graph.network.torch_module.state_dict(), graph.henergy.torch_module.state_dict()


def stack_targets(arrays: dict, labels, configs: np.ndarray, device) -> dict:
    """Targets of the slots ``configs`` (n_models, slots): energies, forces and atom energies per atom row."""
    M, B = configs.shape
    flat = configs.reshape(-1)
    out = {"E": torch.as_tensor(arrays["E"][flat], dtype=torch.float32).reshape(M, B),
           "F": torch.as_tensor(arrays["F"][flat], dtype=torch.float32).reshape(M, -1, 3)}
    if labels is not None:
        out["atom_E"] = torch.as_tensor(labels[flat], dtype=torch.float32).reshape(M, -1)
    return {k: v.to(device) for k, v in out.items()}


def _stacked_labels(members: list[_Member]):
    """Each member's atom-energy labels stacked (n_models, n_configs, n_atoms) for distilled members (the others
    zero: they carry no atom-energy term), or None when no member is distilled."""
    if not any(m.data.distilled for m in members):
        return None
    shape = members[0].data.arrays["Z"].shape
    return np.stack([m.data.labels if m.data.distilled else np.zeros(shape) for m in members])


def evaluate_stack(stack: StackedHipnn, geom, arrays: dict, members: list[_Member], rows_per_model: np.ndarray,
              eval_batch_size: int, device) -> list[dict]:
    """hippynn's Evaluator for each model: its metrics over the whole set of rows (n_models, n_rows), as floats."""
    M = stack.n_models
    outs, tgts, masks = [], [], []
    labels = _stacked_labels(members)
    for s in range(0, rows_per_model.shape[1], eval_batch_size):
        cfgs = rows_per_model[:, s:s + eval_batch_size]
        batch = SlotBatch(geom, torch.as_tensor(cfgs))
        out = stack.forward(batch, forces=True, create_graph=False)
        outs.append({k: v.detach() for k, v in out.items()})
        t = stack_targets(arrays, None, cfgs, device)
        if labels is not None:
            t["atom_E"] = torch.as_tensor(np.stack([labels[m][cfgs[m]] for m in range(M)]),
                                          dtype=torch.float32, device=device).reshape(M, -1)
        tgts.append(t)
        masks.append(batch.mask)

    class _All:
        mask = torch.cat(masks, 1)

    cat = {k: torch.cat([o[k] for o in outs], 1) for k in ("E", "F", "atom_E")}
    tcat = {k: torch.cat([t[k] for t in tgts], 1) for k in tgts[0]}
    vals = metrics(cat, _All, tcat)
    res = []
    for m, member in enumerate(members):
        d = {k: float(v[m]) for k, v in vals.items()}
        if not member.data.distilled:  # as the hippynn engine: atom energies scored only where they are learned
            d.pop("err_A", None)
            d.pop("atom_energy_rmse_eV", None)
        res.append(d)
    return res


def train_stack(model_ids: list[ModelId], cfg: dict, dataset_path, split_path, labels: dict[str, str | None],
                out_root, checkpoint_root, stack_name: str = "stack") -> list[dict]:
    """Train ``model_ids`` (one architecture, one dataset and split) as one stack; returns their metrics.

    ``labels`` maps each model id (str) to its atom-energy labels file (None for the teacher). Outputs under
    ``out_root/<model id>/``, checkpoints under ``checkpoint_root/<model id>/checkpoint.pt``."""
    archs = {m.arch for m in model_ids}
    if len(archs) != 1:
        raise TrainingError(f"stack {stack_name}: one architecture per stack, got {sorted(a.tag for a in archs)}")
    tr = arch_training(cfg["training"], next(iter(archs)).width)  # its own learning rate; cfg as configured (records)
    check_supported(cfg["network"], "stacked", "the fast training engine",
                    "set training.engine: hippynn for this model")
    device = resolve_device(tr["device"])
    if device.type == "cpu":
        torch.set_num_threads(int(tr["torch_threads"]))
        torch.set_flush_denormal(True)
    torch.set_default_dtype(torch.float32)
    t0 = time.time()

    members: list[_Member] = []
    graphs, states = {}, []
    arrays = split = None
    for mid in model_ids:
        lp = labels.get(str(mid))
        check_inputs({"dataset": dataset_path, "split": split_path, "labels": lp})
        data = load_training_data(mid, dataset_path, split_path, lp)
        if arrays is None:
            arrays, split = data.arrays, data.split
            species = sorted(int(z) for z in np.unique(arrays["Z"]) if z != 0)
        graph, net_state, he_state = initial_state(mid, cfg, arrays, split, species)
        graphs[str(mid)] = graph
        states.append((net_state, he_state))
        gen = torch.Generator().manual_seed(int(mid.seed))
        ckpt = Path(checkpoint_root) / str(mid) / "checkpoint.pt"
        _check_writable(mid, ckpt.parent)
        members.append(_Member(mid, data, Path(out_root) / str(mid), ckpt,
                               run_fingerprint(mid, cfg, dataset_path, lp, split_path, "train-stack"),
                               settings_fingerprint("train-stack", cfg, model_id=mid), lp,
                               str(dataset_path), str(split_path), schedule_for(mid.kind, cfg),
                               max_epochs_for(mid.kind, cfg), gen))
    n_weights = count_weights(next(iter(graphs.values())))
    geom = pair_geometry(arrays, species, float(cfg["network"]["dist_hard_max"])).to(device)
    stack = StackedHipnn(states, next(iter(archs)).n_atom_layers, cfg["network"]["dist_hard_max"], device=device,
                         pair_kernels=tr["pair_kernels"])
    adam = StackAdam(stack.trainable(), tr["learning_rate"], tr["ema_decay"])
    for i, m in enumerate(members):
        m.controller = make_controller(m.model_id, cfg, None, PlateauLR(adam.param_groups[i], **plateau_settings(tr)))
        m.state = {"epoch": 0, "best_metric": math.inf, "best_epoch": 0, "best_state": None, "curve": [],
                   "elapsed_s": 0.0, "phase": 0}
        _resume(m, i, stack, adam)
        m.t_start = t0
    log(f"[{stack_name}] fast engine: {len(members)} models of {n_weights} trainable weights "
        f"({', '.join(str(m.model_id) for m in members)}), device {device_description(device)}, "
        f"{len(split['train'])}/{len(split['valid'])}/{len(split['test'])} train/valid/test configs, "
        f"{int(geom.ptr[-1])} pairs, set up in {time.time() - t0:.1f} s")

    results: dict[str, dict] = {}
    active = list(range(len(members)))
    # epoch 0: the untrained models, as the hippynn engine records them
    fresh = [i for i in active if members[i].state["epoch"] == 0 and not members[i].state["curve"]]
    if fresh:
        ev = {name: evaluate_stack(stack, geom, arrays, members, np.tile(split[name], (len(members), 1)),
                              tr["eval_batch_size"], device) for name in SPLITS}
        from .loop import _curve_row
        from ..core.losses import error_loss
        for i in fresh:
            m = members[i]
            m.state["untrained"] = {name: {k: ev[name][i][k] for k in ("energy_rmse_eV", "energy_per_atom_rmse_eV",
                                                                         "force_rmse_eV_A", "force_mae_eV_A")}
                                    for name in SPLITS}
            m.state["curve"].append(_curve_row(0, adam.param_groups[i]["lr"], m.schedule(1), float("nan"),
                                               ev["train"][i], ev["valid"][i],
                                               error_loss(m.schedule.final, ev["valid"][i]), 0.0, 0.0))
    # models whose checkpoint says they finished are written straight away
    for i in [i for i in active if members[i].state.get("finished")]:
        results[str(members[i].model_id)] = _write_outputs(members[i], i, stack, graphs, cfg, n_weights, device)
    active = [i for i in active if not members[i].state.get("finished")]
    _shrink(stack, adam, members, active)
    members = [members[i] for i in active]

    n_train = len(split["train"])
    B = int(tr["batch_size"])
    while members:
        t_epoch = time.time()
        M = len(members)
        for m in members:
            m.epoch = m.state["epoch"] + 1
        ws = [epoch_start(m.model_id, m.schedule, m.state, m.epoch) for m in members]
        wvec = {t: torch.tensor([getattr(w, f"w_{t}") for w in ws], device=device) for t in TERMS}
        orders = np.stack([split["train"][torch.randperm(n_train, generator=m.generator).numpy()] for m in members])
        labels_all = _stacked_labels(members)
        distilled = labels_all is not None
        loss_sum = torch.zeros(M, dtype=torch.float64)
        n_batches = 0
        for s in range(0, n_train, B):
            cfgs = orders[:, s:s + B]
            batch = SlotBatch(geom, torch.as_tensor(cfgs))
            tg = stack_targets(arrays, None, cfgs, device)
            if distilled:
                tg["atom_E"] = torch.as_tensor(np.stack([labels_all[k][cfgs[k]] for k in range(M)]),
                                               dtype=torch.float32, device=device).reshape(M, -1)
            out = stack.forward(batch, forces=True, create_graph=True)
            terms = loss_terms(stack, out, batch, tg, distilled)
            loss = sum(wvec[t] * terms[t] for t in terms)
            if not bool(torch.isfinite(loss).all()):
                bad = [str(members[k].model_id) for k in range(M) if not math.isfinite(float(loss[k]))]
                raise TrainingError(f"{', '.join(bad)}: loss became non-finite at epoch {members[0].epoch}, "
                                    f"batch {n_batches}; the last good checkpoint is in each model's folder")
            loss.sum().backward()
            adam.step(stack.trainable())
            loss_sum += loss.detach().double().cpu()
            n_batches += 1
        with adam.averaged(stack.trainable()):  # the weights evaluated and kept (the average, with ema_decay)
            valid = evaluate_stack(stack, geom, arrays, members, np.tile(split["valid"], (M, 1)), tr["eval_batch_size"],
                              device)
            due = [m.epoch % tr["train_eval_every"] == 0 for m in members]
            train_ev = [{k: math.nan for k in v} for v in valid]
            if any(due):  # a random train_eval_fraction of the training split (each model its own draw)
                n_sub = max(1, int(n_train * tr["train_eval_fraction"])) if tr["train_eval_fraction"] < 1 else n_train
                sub = np.stack([split["train"][torch.randperm(n_train, generator=m.generator)[:n_sub].numpy()]
                                for m in members])
                ev = evaluate_stack(stack, geom, arrays, members, sub, tr["eval_batch_size"], device)
                train_ev = [ev[k] if due[k] else train_ev[k] for k in range(M)]
            now = time.time()
            goings = [epoch_end(m.model_id, m.schedule, m.state, m.controller, tr, m.epoch, ws[k],
                                float(loss_sum[k]) / max(n_batches, 1), train_ev[k], valid[k],
                                adam.param_groups[k], now - t_epoch,
                                m.state["elapsed_s"] + (now - m.t_start), lambda k=k: stack.state_dicts(k))
                      for k, m in enumerate(members)]
        keep = []
        for k, m in enumerate(members):
            elapsed = m.state["elapsed_s"] + (now - m.t_start)
            going = goings[k] and m.epoch < m.max_epochs
            m.state["epoch"] = m.epoch
            if not going or m.epoch % tr["checkpoint_every"] == 0:
                m.state["finished"] = not going
                _save_checkpoint(m, k, stack, adam, dict(m.state, elapsed_s=elapsed))
                m.state["elapsed_s"], m.t_start = elapsed, now
            if going:
                keep.append(k)
            else:
                results[str(m.model_id)] = _write_outputs(m, k, stack, graphs, cfg, n_weights, device)
        if len(keep) != M:
            _shrink(stack, adam, members, keep)
            members = [members[k] for k in keep]
    log(f"[{stack_name}] done: {len(results)} models in {time.time() - t0:.0f} s")
    return [results[str(m)] for m in model_ids]


def _shrink(stack: StackedHipnn, adam: StackAdam, members: list, keep: list[int]) -> None:
    if len(keep) != stack.n_models and keep:
        stack.keep(keep)
        adam.keep(keep)


def _resume(m: _Member, i: int, stack: StackedHipnn, adam: StackAdam) -> None:
    """Model ``i``'s state from its checkpoint when there is an unfinished one of the same fingerprint (a finished
    one is never resumed: the job runs because the model is to be trained)."""
    if not m.ckpt.exists() or (ck := _read_checkpoint(m.ckpt, m.model_id)) is None:
        return
    if ck.get("fingerprint") != m.fingerprint:
        log(f"[{m.model_id}] ignoring checkpoint {m.ckpt}: made with other settings, data, split or code")
        return
    if (ck.get("state") or {}).get("finished", False):
        log(f"[{m.model_id}] checkpoint {m.ckpt} is of a finished training: retraining from scratch "
            f"(a finished checkpoint never stands in for a requested retrain)")
        return
    with torch.no_grad():
        for key, p in stack.params.items():
            p[i] = ck["params"][key].to(p.device)
    adam.load_slice(i, ck["adam"])
    m.controller.load_state_dict(ck["controller"])
    m.generator.set_state(ck["generator"])
    m.state = ck["state"]
    log(f"[{m.model_id}] resuming from checkpoint at epoch {m.state['epoch']} ({m.ckpt})")


def _save_checkpoint(m: _Member, k: int, stack: StackedHipnn, adam: StackAdam, state: dict) -> None:
    atomic_torch_save({"fingerprint": m.fingerprint, "settings": m.settings, "engine": "fast",
                       "params": {key: p[k].detach().cpu().clone() for key, p in stack.params.items()},
                       "adam": adam.slice(k), "controller": m.controller.state_dict(),
                       "generator": m.generator.get_state(), "state": state}, m.ckpt)


def _write_outputs(m: _Member, k: int, stack: StackedHipnn, graphs: dict, cfg: dict, n_weights: int, device):
    """The model's best weights into its hippynn graph, then the same outputs as the hippynn engine writes."""
    if m.state["best_state"] is None:
        raise TrainingError(f"{m.model_id}: no epoch was trained (max_epochs={m.max_epochs})")
    graph = graphs[str(m.model_id)]
    net, he = m.state["best_state"]
    graph.network.torch_module.load_state_dict(net)
    graph.henergy.torch_module.load_state_dict(he)
    graph.network.torch_module.to(device)
    graph.henergy.torch_module.to(device)
    return finish_training(m.model_id, cfg, m.data, graph, m.schedule, n_weights, device, m.state, m.state["epoch"],
                   m.max_epochs, m.out_dir, m.labels_path, m.state["elapsed_s"], "fast",
                   made_of(m.model_id, cfg, m.dataset_path, m.split_path, m.labels_path))


def main(argv=None) -> int:
    from ..cli import add_threads, step_parser, with_threads

    p = step_parser("train-stack", __doc__)
    add_threads(p)
    p.add_argument("--model-ids", nargs="+", required=True, help="e.g. student/w8-s4-l1/seed1 control/w8-s4-l1/seed1")
    p.add_argument("--dataset", required=True)
    p.add_argument("--split", required=True)
    p.add_argument("--labels", nargs="*", default=[], metavar="MODEL_ID=FILE",
                   help="atom-energy labels of each model that reads them (students: in the loss; controls: reported)")
    p.add_argument("--out-root", required=True, help="outputs under <out-root>/<model id>/")
    p.add_argument("--checkpoint-root", required=True, help="checkpoints under <checkpoint-root>/<model id>/")
    p.add_argument("--name", default="stack", help="the stack's name in the log")
    a = p.parse_args(argv)
    a.config_json = with_threads(p, a)
    try:
        ids = [ModelId.parse(s) for s in a.model_ids]
        labels = {}
        for item in a.labels:
            mid, _, path = item.partition("=")
            labels[str(ModelId.parse(mid))] = path
        train_stack(ids, a.config_json, a.dataset, a.split, labels, a.out_root, a.checkpoint_root, a.name)
    except (TrainingError, UnsupportedModel, ProvenanceError) as e:
        print(f"tsmlip train-stack: error: {e}", file=sys.stderr)
        return 1
    return 0
