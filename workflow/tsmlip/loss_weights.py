"""The loss weights of each kind (``training.loss_weights``, :mod:`tsmlip.kinds`) and the Born-Again loss schedule
(the paper's Table 1): plain arithmetic on the configuration, read by the config checks and by training; the loss
terms they weight are :mod:`tsmlip.core.losses`."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .kinds import REGISTRY

__all__ = ["BornAgainSchedule", "LossWeights", "max_epochs_for", "schedule_for"]


@dataclass(frozen=True)
class LossWeights:
    w_E: float
    w_F: float
    w_A: float
    w_L2: float
    w_R: float

    def as_dict(self) -> dict:
        return asdict(self)


def weights_for(kind: str, training_cfg: dict) -> LossWeights:
    """Static weights of a model kind, from its entry of ``training.loss_weights`` (:mod:`tsmlip.kinds`;
    w_L2, w_R shared by all)."""
    entry = REGISTRY[kind].loss_weights
    if entry is None:
        raise ValueError(f"{kind} weights follow a schedule: use BornAgainSchedule")
    w = training_cfg["loss_weights"][entry]
    return LossWeights(float(w["w_E"]), float(w["w_F"]), float(w["w_A"]),
                       float(training_cfg["w_L2"]), float(training_cfg["w_R"]))


class StaticSchedule:
    """The same weights at every epoch."""

    def __init__(self, weights: LossWeights):
        self.weights = weights
        self.final_epoch = 1

    def __call__(self, epoch: int) -> LossWeights:
        return self.weights

    def phase(self, epoch: int) -> int:
        return 0

    @property
    def final(self) -> LossWeights:
        return self.weights


class BornAgainSchedule:
    """Table 1 of the paper: (epoch, w_A, w_F, w_E) rows, epochs scaled by ``epoch_scale``.

    Interpolation policy ``step``: the weights of a row hold from its (scaled) epoch until the next
    row's epoch; ``linear``: weights interpolate linearly between rows. Before the first row the first
    row's weights apply; after the last row its weights hold (they equal the static teacher weights).
    Epochs are 1-based, as in the table.
    """

    def __init__(self, rows: list[dict], w_L2: float, w_R: float, epoch_scale: float = 1.0,
                 interpolation: str = "step"):
        if not rows:
            raise ValueError("born_again.schedule is empty")
        rows = sorted(rows, key=lambda r: r["epoch"])
        self.epochs = np.array([max(1, round(r["epoch"] * epoch_scale)) for r in rows], dtype=float)
        if len(set(self.epochs.tolist())) != len(self.epochs):
            raise ValueError(f"born_again.epoch_scale={epoch_scale} merges schedule rows "
                             f"(scaled epochs {self.epochs.astype(int).tolist()}); use a larger scale")
        self.table = {k: np.array([float(r[k]) for r in rows]) for k in ("w_E", "w_F", "w_A")}
        self.w_L2, self.w_R = float(w_L2), float(w_R)
        if interpolation not in ("step", "linear"):
            raise ValueError(f"unknown interpolation {interpolation!r}")
        self.interpolation = interpolation
        self.final_epoch = int(self.epochs[-1])

    def __call__(self, epoch: int) -> LossWeights:
        if self.interpolation == "linear":
            w = {k: float(np.interp(epoch, self.epochs, v)) for k, v in self.table.items()}
        else:
            i = self.phase(epoch)
            w = {k: float(v[i]) for k, v in self.table.items()}
        return LossWeights(w["w_E"], w["w_F"], w["w_A"], self.w_L2, self.w_R)

    def phase(self, epoch: int) -> int:
        """Index of the schedule row in force at ``epoch`` (linear: the last row passed)."""
        return int(max(0, np.searchsorted(self.epochs, epoch, side="right") - 1))

    @property
    def final(self) -> LossWeights:
        return self(self.final_epoch)


def schedule_for(kind: str, cfg: dict):
    tr = cfg["training"]
    if REGISTRY[kind].scheduled:
        ba = cfg["born_again"]
        return BornAgainSchedule(ba["schedule"], tr["w_L2"], tr["w_R"], ba["epoch_scale"], ba["interpolation"])
    return StaticSchedule(weights_for(kind, tr))


def max_epochs_for(kind: str, cfg: dict) -> int:
    """The epoch cap of a model of ``kind``: ``born_again.max_epochs`` for a Born-Again student (scheduled
    weights) where set, else ``training.max_epochs``."""
    cap = cfg["born_again"].get("max_epochs") if REGISTRY[kind].scheduled else None
    return int(cfg["training"]["max_epochs"] if cap is None else cap)
