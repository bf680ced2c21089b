"""Energies and forces of many systems in one :meth:`tsmlip.core.hipnn_stack.StackedHipnn.forward`: system k with
model k of a stack of saved models of one architecture (the stacked liquid, :mod:`tsmlip.rdf.stacked`) or every model
on the same atoms (a committee, :mod:`tsmlip.core.committee`). Per-system Verlet lists from vesin's cell list; the pair
geometry recomputed at every call from float64 positions and handed to the model in float32, as the calculator
computes it."""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["StackError", "StackedPairs", "load_stack", "StackedForces"]


class StackError(ValueError):
    """Models that cannot share a stack, or a stack the engine cannot run (one line, no traceback)."""


# --------------------------------------------------------------------------------------------- integrator
class StackedPairs:
    """Per-system Verlet lists (cut-off ``cutoff + skin``) and the pair geometry within ``cutoff`` of all systems
    in the layout of :meth:`tsmlip.core.hipnn_stack.SlotBatch.from_pairs` (atom rows ``system * n_atoms + i``)."""

    def __init__(self, cell, cutoff: float, skin: float, n_atoms: int):
        self.cell = torch.as_tensor(np.asarray(cell), dtype=torch.float64)
        self.cutoff, self.skin, self.n_atoms = float(cutoff), float(skin), int(n_atoms)
        self.lists: list = []  # per system: (first, second, shift vector) or None (no pairs: broken system)
        self.ref = None
        self.broken: dict[int, str] = {}
        self.rebuilds = 0
        self._cat = None

    def keep(self, rows: list[int]) -> None:
        self.lists = [self.lists[k] for k in rows]
        self.ref = self.ref[rows]
        self.broken = {new: self.broken[old] for new, old in enumerate(rows) if old in self.broken}
        self._cat = None

    def _build(self, k: int, R_k) -> None:
        from .pairs import vesin_pairs

        try:
            if not bool(torch.isfinite(R_k).all()):
                raise ValueError("non-finite positions")
            i, j, offsets = vesin_pairs(self.cutoff + self.skin, R_k, self.cell.to(R_k.device))
        except (RuntimeError, ValueError) as exc:
            self.lists[k] = None
            self.broken[k] = f"no neighbour list ({exc})"
            return
        # vesin: D = R_j - R_i + S @ box, S = -offsets
        shift = -(offsets.to(R_k.dtype) @ self.cell.to(R_k.device))
        self.lists[k] = (i, j, shift)
        self.rebuilds += 1

    def update(self, R) -> None:
        """Rebuild the lists of the systems with an atom moved beyond ``skin / 2`` since their last build."""
        M = R.shape[0]
        if self.ref is None or len(self.lists) != M:
            self.lists, self.ref = [None] * M, R.clone()
            todo = list(range(M))
        else:
            moved2 = (R - self.ref).square().sum(2).amax(1)
            todo = torch.nonzero(~(moved2 <= (self.skin / 2) ** 2)).flatten().tolist()  # nan: rebuild
        for k in todo:
            if k in self.broken:
                continue
            self.ref[k] = R[k]
            self._build(k, R[k])
        if todo:
            self._cat = None

    def geometry(self, R):
        """(first, second, model_of_pair, dist float32, unit float32) of every pair within the cut-off."""
        if self._cat is None:
            parts = [(k, lst) for k, lst in enumerate(self.lists) if lst is not None]
            dev = R.device
            if parts:
                N = self.n_atoms
                self._cat = (torch.cat([lst[0] + k * N for k, lst in parts]),
                             torch.cat([lst[1] + k * N for k, lst in parts]),
                             torch.cat([lst[2] for _, lst in parts]))
            else:
                self._cat = (torch.zeros(0, dtype=torch.long, device=dev), torch.zeros(0, dtype=torch.long, device=dev),
                             torch.zeros(0, 3, dtype=R.dtype, device=dev))
        first, second, shift = self._cat
        flat = R.reshape(-1, 3)
        D = flat.index_select(0, second) - flat.index_select(0, first) + shift
        d = torch.linalg.vector_norm(D, dim=1)
        inside = torch.nonzero(d < self.cutoff).flatten()
        D, d = D.index_select(0, inside), d.index_select(0, inside)
        first, second = first.index_select(0, inside), second.index_select(0, inside)
        return first, second, first // self.n_atoms, d.to(torch.float32), (D / d.unsqueeze(1)).to(torch.float32)


def load_stack(model_paths: list, device="cpu"):
    """The :class:`StackedHipnn` of the model files (one architecture, network settings and species; else
    :class:`StackError` naming the first that differs) and the first model's payload."""
    from ..hipnn import UnsupportedModel, check_supported
    from ..hipnn_stack import StackedHipnn
    from ..model import read_model_payload

    payloads = [read_model_payload(p) for p in model_paths]
    first = payloads[0]
    for path, pl in zip(model_paths, payloads):
        for key in ("arch", "network_cfg", "species"):
            if pl[key] != first[key]:
                raise StackError(f"{path}: its {key} {pl[key]} differs from {model_paths[0]}'s {first[key]}: a stack "
                                 f"holds models of one architecture")
    try:
        check_supported(first["network_cfg"], "stacked", "the stacked liquid",
                        "set rdf.stack: false for these models")
    except UnsupportedModel as exc:
        raise StackError(str(exc)) from None
    model = StackedHipnn([(pl["network_state"], pl["henergy_state"]) for pl in payloads],
                         int(first["arch"]["n_atom_layers"]), float(first["network_cfg"]["dist_hard_max"]),
                         device=device)
    for p in model.params.values():
        p.requires_grad_(False)
    return model, first


class StackedForces:
    """Energies and forces of ``n_systems`` systems of the atoms ``numbers``, system k with model k of ``model``
    (one :meth:`StackedHipnn.forward` per call)."""

    def __init__(self, model, species: list[int], numbers, cell, skin: float):
        from ..geometry import species_slots
        from ..hipnn_stack import SlotBatch

        self.model = model
        self.n_atoms = len(numbers)
        self.pairs = StackedPairs(cell, model.dist_hard_max, skin, self.n_atoms)
        self.species = sorted(int(z) for z in species if int(z) != 0)
        self.slots = torch.as_tensor(species_slots(np.asarray(numbers)[None], self.species)[0])
        self._SlotBatch = SlotBatch

    def keep(self, rows: list[int]) -> None:
        self.model.keep(rows)
        for p in self.model.params.values():
            p.requires_grad_(False)
        self.pairs.keep(rows)

    def __call__(self, R):
        """(forces float64 (M, N, 3) eV/A, energies float64 (M,) eV) at positions ``R`` (M, N, 3)."""
        M = R.shape[0]
        self.pairs.update(R)
        first, second, model_of_pair, dist, unit = self.pairs.geometry(R)
        slots = self.slots.to(R.device).unsqueeze(0).expand(M, -1)
        batch = self._SlotBatch.from_pairs(first, second, slots.reshape(-1)[second], dist, unit, model_of_pair,
                                           slots, self.model.n_species, self.model.dist_hard_max)
        out = self.model.forward(batch, forces=True)
        return out["F"].detach().to(torch.float64), out["E"].detach()[:, 0].to(torch.float64)


# --------------------------------------------------------------------------------------------- the run
