"""The stacked engine's optimizer: Adam over stacked weights with one learning rate per model
(:class:`StackAdam`), and torch's plateau rule on one model's rate (:class:`PlateauLR`)."""
from __future__ import annotations

import contextlib
import math

import torch

__all__ = ["StackAdam", "PlateauLR"]

_BETAS, _EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults, as the hippynn engine uses them


class StackAdam:
    """torch.optim.Adam (defaults, no weight decay) over stacked weights (the first axis of each: the model) with one
    learning rate per model, held here: ``param_groups[m]["lr"]`` is model m's rate (one parameter group per model,
    as torch's optimizers hold theirs), which its scheduler (:class:`PlateauLR`) lowers; the checkpoint slice of a
    model carries it. With ``ema_decay`` > 0 also an exponential moving average of the weights (as MACE and NequIP
    train: the average is what is evaluated, kept as the best weights and written), its decay ramped up as
    min(decay, (1 + t) / (10 + t)).

    ``lr``: the starting rate of every model, or one per model."""

    def __init__(self, params: dict[str, torch.Tensor], lr, ema_decay: float = 0.0):
        n_models = next(iter(params.values())).shape[0]
        rates = [float(lr)] * n_models if isinstance(lr, (int, float)) else [float(x) for x in lr]
        if len(rates) != n_models:
            raise ValueError(f"{len(rates)} learning rates for a stack of {n_models} models")
        self.param_groups = [{"lr": r} for r in rates]
        self._rates: tuple = ((), None)  # the rates as a tensor beside the weights, made anew when one changes
        # the moments and the average of every weight in one (n_models, n_weights) buffer each, so a step is a
        # handful of operations on it whatever the number of weight tensors; m, v and ema are views by name
        self._layout = []
        start = 0
        for k, p in params.items():
            n = p[0].numel()
            self._layout.append((k, start, n, tuple(p.shape[1:])))  # one model's shape: the stack may shrink
            start += n
        like = next(iter(params.values()))
        self._m = torch.zeros(n_models, start, dtype=like.dtype, device=like.device)
        self._v = torch.zeros_like(self._m)
        self.step_count: torch.Tensor | None = None  # (n_models,)
        self.ema_decay = float(ema_decay)
        self._ema = self._flat(params).clone() if self.ema_decay > 0 else None
        self._views()

    def _flat(self, params: dict[str, torch.Tensor], grad: bool = False) -> torch.Tensor:
        """The weights (or their gradients) of ``params`` as one (n_models, n_weights) tensor, in the buffers' order."""
        n = self._m.shape[0]
        return torch.cat([(params[k].grad if grad else params[k].detach()).reshape(n, -1) for k, *_ in self._layout], 1)

    def _views(self) -> None:
        """``m``, ``v`` and ``ema`` by weight name: views into the flat buffers (writing one writes the buffer)."""
        def views(flat):
            return {k: flat[:, a:a + n].view((flat.shape[0],) + shape) for k, a, n, shape in self._layout}
        self.m, self.v = views(self._m), views(self._v)
        self.ema = views(self._ema) if self._ema is not None else None

    def rates(self, like: torch.Tensor) -> torch.Tensor:
        """The models' learning rates (n_models,), of ``like``'s dtype and device (built once per change)."""
        key = tuple(g["lr"] for g in self.param_groups)
        if self._rates[0] != key or self._rates[1].device != like.device:
            self._rates = (key, torch.tensor(key, dtype=like.dtype, device=like.device))
        return self._rates[1]

    @contextlib.contextmanager
    def averaged(self, params: dict[str, torch.Tensor]):
        """The averaged weights in place of the trained ones while inside (nothing without an average)."""
        if self.ema is None:
            yield
            return
        saved = {k: p.detach().clone() for k, p in params.items()}
        with torch.no_grad():
            for k, p in params.items():
                p.copy_(self.ema[k])
        try:
            yield
        finally:
            with torch.no_grad():
                for k, p in params.items():
                    p.copy_(saved[k])

    @torch.no_grad()
    def step(self, params: dict[str, torch.Tensor]) -> None:
        """One Adam step of every model at its own rate (the gradients are read and cleared)."""
        b1, b2 = _BETAS
        lr = self.rates(next(iter(params.values())))
        if self.step_count is None:
            self.step_count = torch.zeros(len(self.param_groups), dtype=torch.float64)
        self.step_count += 1
        bc1 = (1 - b1 ** self.step_count).to(lr.dtype)
        bc2_sqrt = torch.sqrt(1 - b2 ** self.step_count).to(lr.dtype)
        g = self._flat(params, grad=True)
        self._m.lerp_(g, 1 - b1)
        self._v.mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = (self._v.sqrt() / bc2_sqrt.reshape(-1, 1)).add_(_EPS)
        update = (lr / bc1).reshape(-1, 1) * self._m / denom
        for k, a, n, shape in self._layout:
            p = params[k]
            p.sub_(update[:, a:a + n].view(p.shape))
            p.grad = None
        if self._ema is not None:
            d = torch.clamp((1 + self.step_count) / (10 + self.step_count), max=self.ema_decay).to(lr.dtype)
            self._ema.lerp_(self._flat(params), (1 - d).reshape(-1, 1))

    def keep(self, rows: list[int]) -> None:
        idx = torch.as_tensor(rows, dtype=torch.long, device=self._m.device)
        self._m, self._v = self._m.index_select(0, idx), self._v.index_select(0, idx)
        if self._ema is not None:
            self._ema = self._ema.index_select(0, idx)
        self._views()
        idx = idx.cpu()
        if self.step_count is not None:
            self.step_count = self.step_count[idx]
        self.param_groups = [self.param_groups[r] for r in rows]  # the same group objects: schedulers keep theirs

    def slice(self, m: int) -> dict:
        """Model ``m``'s state (its checkpoint's ``adam``): the moments, the average, the step count and the rate."""
        return {"lr": self.param_groups[m]["lr"],
                "m": {k: v[m].detach().cpu().clone() for k, v in self.m.items()},
                "v": {k: v[m].detach().cpu().clone() for k, v in self.v.items()},
                "ema": {k: v[m].detach().cpu().clone() for k, v in self.ema.items()} if self.ema is not None else None,
                "step": float(self.step_count[m]) if self.step_count is not None else 0.0}

    def load_slice(self, m: int, sl: dict) -> None:
        for k in self.m:
            self.m[k][m] = sl["m"][k].to(self.m[k].device)
            self.v[k][m] = sl["v"][k].to(self.v[k].device)
            if self.ema is not None and sl.get("ema") is not None:
                self.ema[k][m] = sl["ema"][k].to(self.ema[k].device)
        if self.step_count is None:
            self.step_count = torch.zeros(len(self.param_groups), dtype=torch.float64)
        self.step_count[m] = sl["step"]
        self.param_groups[m]["lr"] = float(sl["lr"])  # in place: the model's scheduler holds this group


class PlateauLR:
    """torch's ``ReduceLROnPlateau`` rule (mode min, relative threshold, no cooldown; :func:`.loop.plateau_settings`)
    on one parameter group: the model's own group of a :class:`StackAdam`. After more than ``patience`` epochs whose
    metric did not beat the best by the relative ``threshold``, the group's rate becomes max(rate * factor, min_lr)
    (unchanged when that is less than ``eps`` lower). Its ``step``, ``num_bad_epochs`` and state dict are torch's, so
    hippynn's ``PatienceController`` and :func:`.loop.epoch_end` drive it as they drive torch's."""

    def __init__(self, group: dict, factor: float, patience: int, threshold: float, threshold_mode: str = "rel",
                 min_lr: float = 0.0, eps: float = 1e-8):
        if factor >= 1.0:
            raise ValueError("Factor should be < 1.0.")
        if threshold_mode != "rel":
            raise ValueError(f"threshold_mode {threshold_mode!r}: only 'rel' is implemented")
        self.group = group
        self.factor, self.patience, self.threshold = float(factor), int(patience), float(threshold)
        self.min_lr, self.eps = float(min_lr), float(eps)
        self.best, self.num_bad_epochs, self.last_epoch = math.inf, 0, 0

    def step(self, metrics) -> None:
        current = float(metrics)
        self.last_epoch += 1
        if current < self.best * (1.0 - self.threshold):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.num_bad_epochs > self.patience:
            old = float(self.group["lr"])
            new = max(old * self.factor, self.min_lr)
            if old - new > self.eps:
                self.group["lr"] = new
            self.num_bad_epochs = 0

    def state_dict(self) -> dict:
        return {"best": self.best, "num_bad_epochs": self.num_bad_epochs, "last_epoch": self.last_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.num_bad_epochs, self.last_epoch = (float(state["best"]), int(state["num_bad_epochs"]),
                                                           int(state["last_epoch"]))
