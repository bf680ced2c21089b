"""The models a configuration plans, by id (:class:`tsmlip.ids.ModelId`): the teacher, the student/control sweep,
the Born-Again students and the budget check (models trained a second time with every budget scaled).
Plain arithmetic on the (validated) configuration; imports only the base layer.
"""
from __future__ import annotations

import itertools

from .ids import Arch, ModelId
from .kinds import BORN_AGAIN_KINDS, REGISTRY

__all__ = ["all_model_ids", "arch_training", "born_again_ids", "budget_check_ids", "budget_check_training",
           "learning_rate_for", "sweep_archs", "sweep_ids", "teacher_arch", "teacher_ids", "weight_estimate"]


def teacher_arch(cfg: dict) -> Arch:
    return Arch.from_dict(cfg["teacher"])


def teacher_ids(cfg: dict) -> list[ModelId]:
    arch = teacher_arch(cfg)
    return [ModelId("teacher", arch, int(s)) for s in cfg["teacher"]["seeds"]]


def sweep_archs(cfg: dict) -> list[Arch]:
    """Architectures of the student/control sweep (``axes`` or ``grid`` mode), sorted, no repeats."""
    sw = cfg["sweep"]
    keys = ("width", "n_sensitivities", "n_atom_layers")
    if sw["mode"] == "grid":
        archs = {Arch(*combo) for combo in itertools.product(*(sw[k] for k in keys))}
    else:
        base = sw["base"]
        archs = {Arch.from_dict(base)}
        for k in keys:
            for v in sw[k]:
                d = dict(base)
                d[k] = v
                archs.add(Arch.from_dict(d))
    return sorted(archs)


def sweep_ids(cfg: dict) -> list[ModelId]:
    return [
        ModelId(kind, arch, int(seed))
        for kind in cfg["sweep"]["kinds"]
        for arch in sweep_archs(cfg)
        for seed in cfg["sweep"]["seeds"]
    ]


def born_again_ids(cfg: dict) -> list[ModelId]:
    ba = cfg["born_again"]
    if not ba["enabled"]:
        return []
    arch = teacher_arch(cfg)
    kinds = [k for k in BORN_AGAIN_KINDS if REGISTRY[k].scheduled or ba["static"]]
    return [ModelId(k, arch, int(s)) for k in kinds for s in ba["seeds"]]


def weight_estimate(arch: Arch) -> int:
    """A HIPNN's weight count up to lower-order terms: interaction (sensitivities x width^2) and atom layers
    (width^2 each); orders architectures by size without building them."""
    return arch.width ** 2 * (arch.n_sensitivities + arch.n_atom_layers)


def budget_check_ids(cfg: dict) -> list[ModelId]:
    """The models trained a second time with every budget doubled (``budget_check:``): the teacher (its first
    seed), each checked sweep kind at every sweep architecture (``archs: all``) or at the smallest and the largest
    (``extremes``, by :func:`weight_estimate`), with each of ``budget_check.seeds`` (``all``: the sweep's seeds), and
    each checked Born-Again kind (its first seed)."""
    bc = cfg["budget_check"]
    kinds = list(bc["kinds"])
    ids = [teacher_ids(cfg)[0]] if "teacher" in kinds else []
    archs = sorted(sweep_archs(cfg), key=lambda a: (weight_estimate(a), a))
    if bc["archs"] == "extremes":
        archs = list(dict.fromkeys([archs[0], archs[-1]])) if archs else []
    seeds = budget_check_seeds(cfg)
    ids += [ModelId(kind, arch, seed) for kind in kinds if kind != "teacher"
            and kind in cfg["sweep"]["kinds"] for arch in archs for seed in seeds]
    ba = born_again_ids(cfg)
    ids += [next(m for m in ba if m.kind == kind) for kind in kinds if any(m.kind == kind for m in ba)]
    return ids


def budget_check_seeds(cfg: dict) -> list[int]:
    """The sweep seeds trained again with every budget doubled: ``budget_check.seeds`` (``all``: every sweep
    seed, so that a kind x architecture's check compares the mean of the seeds the claims compare)."""
    seeds = cfg["budget_check"]["seeds"]
    return [int(s) for s in (cfg["sweep"]["seeds"] if seeds == "all" else seeds)]


def budget_check_training(training: dict, scale: float) -> dict:
    """The ``training:`` section of a budget-check model: both patiences, the warm-up and the epoch cap times
    ``scale``."""
    out = dict(training)
    for k in ("lr_patience", "termination_patience", "min_epochs", "max_epochs"):
        out[k] = int(round(training[k] * scale))
    return out


def learning_rate_for(training: dict, width: int) -> float:
    """The starting learning rate of a network of ``width``: its entry in ``learning_rate_by_width`` (a property
    of the network, never of the kind: a student and its control share it), else ``learning_rate``. The keys may
    be integers (YAML) or strings (the same settings passed on as JSON)."""
    by_width = training.get("learning_rate_by_width") or {}
    rate = by_width.get(width, by_width.get(str(width)))
    return float(training["learning_rate"] if rate is None else rate)


def arch_training(training: dict, width: int) -> dict:
    """The ``training:`` section as a network of ``width`` trains: ``learning_rate`` its own rate
    (:func:`learning_rate_for`) and ``min_learning_rate`` the same fraction of it as the configured floor is of
    ``learning_rate`` (so every width halves its rate the same number of times before it may stop)."""
    out = dict(training)
    rate = learning_rate_for(training, width)
    if training.get("min_learning_rate") is not None:
        out["min_learning_rate"] = float(training["min_learning_rate"]) * rate / float(training["learning_rate"])
    out["learning_rate"] = rate
    return out


def all_model_ids(cfg: dict) -> list[ModelId]:
    return teacher_ids(cfg) + sweep_ids(cfg) + born_again_ids(cfg)
