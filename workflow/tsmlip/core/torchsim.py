"""A trained model (or its TorchScript export) as a TorchSim model: batched MD of many systems in one call.

>>> import torch_sim as ts
>>> from tsmlip.core.torchsim import TsmlipModel
>>> model = TsmlipModel("results/models/student/w16-s10-l2/seed1/model.pt")   # or an exported model.ts
>>> state = ts.io.atoms_to_state([atoms_a, atoms_b, atoms_c], model.device, model.dtype)
>>> out = model(state)   # energy [n_systems] eV, forces [n_atoms, 3] eV/A, stress [n_systems, 3, 3] eV/A^3
>>> committee = TsmlipCommittee([f"results/models/student/w8-s4-l1/seed{s}/model.pt" for s in (1, 2, 3, 4)])
>>> committee(state)["max_force_deviation"]   # [n_systems] eV/A: DeePMD's model deviation (tsmlip.core.committee)

Units are TorchSim's metal units (eV, Angstrom, amu; time in sqrt(amu A^2 / eV), ASE's unit: ``dt = 2 *
ase.units.fs``). Periodic systems only. Pairs are vesin-torch's full neighbour list of each system, rebuilt
every call; all systems are evaluated in one pass of the exported network (tsmlip.core.export).
"""
from pathlib import Path

import torch
from torch_sim.models.interface import ModelInterface
from torch_sim.state import SimState

from .committee import force_deviation_torch
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
        self._setup(float(self.net.cutoff))

    def _setup(self, cutoff: float) -> None:
        self.cutoff = cutoff
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

    @staticmethod
    def _prepare(state: SimState | dict) -> SimState:
        if isinstance(state, dict):
            state = SimState(**state, masses=torch.ones_like(state["positions"]))
        if not state.pbc:
            raise ValueError("tsmlip models run periodic systems only (pbc=True)")
        if state.system_idx is None:
            state.system_idx = torch.zeros(state.n_atoms, dtype=torch.int64, device=state.device)
        return state

    def forward(self, state: SimState | dict, **kwargs) -> dict[str, torch.Tensor]:
        state = self._prepare(state)
        atom_e, forces, atom_w = self._evaluate(state, self.pairs(state))
        return self._outputs(state, atom_e, forces, atom_w)

    def _evaluate(self, state: SimState, pairs, net=None):
        """(per-atom energies, forces, per-atom virial) of ``net`` (default: this model's) on ``state``."""
        i, j, shift = pairs
        pos = state.positions.to(self._dtype)
        _, atom_e, forces, _, atom_w = (self.net if net is None else net).compute(pos, state.atomic_numbers.to(torch.int64), i, j,
                                                                 shift, pos.shape[0], self._compute_stress)
        return atom_e, forces, atom_w

    def _outputs(self, state: SimState, atom_e, forces, atom_w) -> dict[str, torch.Tensor]:
        n_sys = state.n_systems
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


class TsmlipCommittee(TsmlipModel):
    """TorchSim ``ModelInterface`` of a committee (:mod:`tsmlip.core.committee`): the members' mean energy, forces,
    stress (and per-atom energies) drive the dynamics, and every call also returns DeePMD's model deviation,
    ``force_deviation`` [n_atoms] (sqrt of the members' mean squared distance from the mean force) and its maximum
    and mean per system, ``max_force_deviation`` and ``mean_force_deviation`` [n_systems] (eV/A). The members
    (``models``: two or more ``model.pt`` or exported files of one cutoff and species) share one neighbour list per
    call; each runs its own network, so a committee of M costs about M single models."""

    def __init__(self, models: list, device: str | torch.device | None = None, dtype: torch.dtype = torch.float32,
                 compute_stress: bool = True, compute_forces: bool = True, per_atom_energies: bool = False):
        models = list(models)
        if len(models) < 2:
            raise ValueError(f"a committee needs two models or more, got {len(models)}")
        super().__init__(models[0], device, dtype, compute_stress, compute_forces, per_atom_energies)
        self.members = torch.nn.ModuleList([self.net] + [scripted_model(m, self._device, dtype) for m in models[1:]])
        for m, net in zip(models[1:], self.members[1:]):
            if float(net.cutoff) != self.cutoff:
                raise ValueError(f"committee member {m}: cutoff {float(net.cutoff):g} A, the first member's is "
                                 f"{self.cutoff:g} A")

    def forward(self, state: SimState | dict, **kwargs) -> dict[str, torch.Tensor]:
        state = self._prepare(state)
        pairs = self.pairs(state)
        runs = [self._evaluate(state, pairs, net) for net in self.members]
        atom_e, forces = torch.stack([r[0] for r in runs]), torch.stack([r[1] for r in runs])
        atom_w = torch.stack([r[2] for r in runs]).mean(0) if self._compute_stress else runs[0][2]
        out = self._outputs(state, atom_e.mean(0), forces.mean(0), atom_w)
        eps = force_deviation_torch(forces)
        n_sys, sys_idx = state.n_systems, state.system_idx
        out["force_deviation"] = eps
        out["max_force_deviation"] = torch.zeros(n_sys, dtype=eps.dtype, device=eps.device).scatter_reduce_(
            0, sys_idx, eps, reduce="amax", include_self=False)
        counts = torch.bincount(sys_idx, minlength=n_sys).to(eps.dtype)
        out["mean_force_deviation"] = torch.zeros(n_sys, dtype=eps.dtype, device=eps.device).index_add_(
            0, sys_idx, eps) / counts
        return out
