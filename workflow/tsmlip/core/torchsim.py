"""A trained model (or its TorchScript export) as a TorchSim model: batched MD of many systems in one call.

>>> import torch_sim as ts
>>> from tsmlip.core.torchsim import TsmlipModel
>>> model = TsmlipModel("results/models/student/w16-s10-l2/seed1/model.pt")   # or an exported model.ts
>>> state = ts.io.atoms_to_state([atoms_a, atoms_b, atoms_c], model.device, model.dtype)
>>> out = model(state)   # energy [n_systems] eV, forces [n_atoms, 3] eV/A, stress [n_systems, 3, 3] eV/A^3

Units are TorchSim's metal units (eV, Angstrom, amu; time in sqrt(amu A^2 / eV), ASE's unit: ``dt = 2 *
ase.units.fs``). Periodic systems only. Pairs are vesin-torch's full neighbour list of each system, rebuilt
every call; all systems are evaluated in one pass of the exported network (tsmlip.core.export).
"""
from pathlib import Path

import torch
from torch_sim.models.interface import ModelInterface
from torch_sim.state import SimState

from .export import exported_from_payload, load_exported
from .model import ModelFileError, read_model_payload


def scripted_model(path: str | Path, device: torch.device, dtype: torch.dtype):
    """The scripted network of ``path``: a ``model.pt`` of the workflow (exported in memory) or a file
    written by ``tsmlip export``."""
    path = Path(path)
    try:
        payload = read_model_payload(path)
    except ModelFileError:
        return load_exported(path, device).to(dtype)
    module = exported_from_payload(payload, str(path)).to(dtype)
    for p in module.parameters():
        p.requires_grad_(False)
    return torch.jit.script(module.eval()).to(device)


class TsmlipModel(ModelInterface):
    """TorchSim ``ModelInterface`` of a tsmlip model (energies, forces, stress; per-atom energies on request)."""

    def __init__(self, model: str | Path, device: str | torch.device | None = None,
                 dtype: torch.dtype = torch.float32, compute_stress: bool = True, compute_forces: bool = True,
                 per_atom_energies: bool = False):
        super().__init__()
        self._device = torch.device(device) if device is not None else torch.device(
            "cuda" if torch.cuda.is_available() else "cpu")
        self._dtype = dtype
        self._compute_stress = bool(compute_stress)
        self._compute_forces = bool(compute_forces)
        self._memory_scales_with = "n_atoms_x_density"
        self.per_atom_energies = bool(per_atom_energies)
        self.net = scripted_model(model, self._device, dtype)
        self.cutoff = float(self.net.cutoff)
        from vesin_torch import NeighborList

        self._nl = NeighborList(cutoff=self.cutoff, full_list=True)

    def pairs(self, state: SimState):
        """Full pair list of all systems (global atom indices) and Cartesian shifts, r_ij = x_j + shift - x_i."""
        cells = state.row_vector_cell
        first = torch.cumsum(torch.bincount(state.system_idx, minlength=state.n_systems), 0)
        starts = torch.cat([first.new_zeros(1), first[:-1]]).tolist()
        ends = first.tolist()
        out_i, out_j, out_s = [], [], []
        for k, (a, b) in enumerate(zip(starts, ends)):
            box = cells[k].detach().to(torch.float64)
            i, j, S = self._nl.compute(points=state.positions[a:b].detach().to(torch.float64), box=box,
                                       periodic=True, quantities="ijS")
            out_i.append(i.to(torch.int64) + a)
            out_j.append(j.to(torch.int64) + a)
            out_s.append((S.to(torch.float64) @ box).to(self._dtype))
        return torch.cat(out_i), torch.cat(out_j), torch.cat(out_s)

    def forward(self, state: SimState | dict, **kwargs) -> dict[str, torch.Tensor]:
        if isinstance(state, dict):
            state = SimState(**state, masses=torch.ones_like(state["positions"]))
        if not state.pbc:
            raise ValueError("tsmlip models run periodic systems only (pbc=True)")
        if state.system_idx is None:
            state.system_idx = torch.zeros(state.n_atoms, dtype=torch.int64, device=state.device)
        i, j, shift = self.pairs(state)
        pos = state.positions.to(self._dtype)
        n_sys = state.n_systems
        _, atom_e, forces, _, atom_w = self.net.compute(pos, state.atomic_numbers.to(torch.int64), i, j, shift,
                                                        pos.shape[0], self._compute_stress)
        sys_idx = state.system_idx
        energy = torch.zeros(n_sys, dtype=atom_e.dtype, device=atom_e.device).index_add_(0, sys_idx, atom_e)
        out = {"energy": energy}
        if self._compute_forces:
            out["forces"] = forces
        if self._compute_stress:
            w6 = torch.zeros((n_sys, 6), dtype=atom_w.dtype, device=atom_w.device).index_add_(0, sys_idx, atom_w)
            w = torch.stack([w6[:, [0, 3, 4]], w6[:, [3, 1, 5]], w6[:, [4, 5, 2]]], dim=1)
            out["stress"] = -w / state.volume.to(w.dtype).view(-1, 1, 1)
        if self.per_atom_energies:
            out["energies"] = atom_e
        return out
