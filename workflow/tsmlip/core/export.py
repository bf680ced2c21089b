"""A trained model as one TorchScript file that runs without hippynn or Python (LAMMPS, TorchSim, C++).

``tsmlip export --model model.pt --output model.ts`` writes a scripted plain-torch copy of the model's
network and energy head (hippynn's ``HipnnVec`` and ``HEnergy``, as :class:`tsmlip.core.hipnn.Hipnn` computes
them; what it supports: :func:`tsmlip.core.hipnn.check_supported`).

Contract of the scripted module (energies in eV, distances in Angstrom, like the model file):

``forward(positions[N,3], species[N] (atomic numbers, int64), pair_i[P], pair_j[P], pair_shift[P,3], n_local)``
    -> ``atom_energies[N]``. The pairs are a *full* list: every ordered pair (i, j) with
    ``|r_ij| < cutoff`` once in each direction, ``r_ij = positions[j] + pair_shift - positions[i]``
    (``pair_shift`` = the periodic image vector in Cartesian coordinates, zeros for explicit ghost atoms).
    This is hippynn's convention too (its pair indexers return both orders; a message goes from
    ``pair_j`` to ``pair_i``); there are no padding atoms (species 0 is refused like any species the
    model was not trained on).

``compute(positions, species, pair_i, pair_j, pair_shift, n_local, per_atom_virial)``
    -> ``(energy, atom_energies[N], forces[N,3], virial[3,3], atom_virial[N,6])``: ``energy`` is the sum
    of the first ``n_local`` atoms' energies (the others are ghosts: images of atoms owned elsewhere);
    ``forces = -dE/dpositions`` on *every* atom including ghosts (a caller adds the ghosts' forces to their
    owners, as LAMMPS's reverse communication does); ``virial = sum_pairs -r_ij (x) dE/dr_ij``, i.e.
    LAMMPS's ``sum_i r_i f_i`` convention (stress = -virial / volume); ``atom_virial`` (xx, yy, zz, xy, xz,
    yz; half of each pair's term to each of its atoms, empty unless ``per_atom_virial``).

``compute_half(positions, species, pair_i, pair_j, pair_shift, n_local, per_atom_virial)``
    -> the same tuple from a *half* pair list (LAMMPS's half neighbour list with newton off; one interaction
    layer): each pair of two of the first ``n_local`` atoms once (either order), each pair of one of them with
    another atom (a ghost) once with the local atom as ``pair_i``; ``pair_shift`` as above, or ``[0, 3]`` for none.
    A local-local pair adds to both atoms' environments, a local-ghost pair to the local atom's only (the ghost's
    owner holds the pair seen from its side, and the forces on ghosts go to their owners as above); the ghosts'
    atom energies are zero (their owners' are computed there), the network runs on the local atoms only. Equal to
    ``compute`` on the full list to float32 rounding; the fused loops evaluate each pair's sensitivities,
    cut-off and exponentials once instead of twice. ``pair_style tsmlip`` calls it for a model with one
    interaction layer (a file without it, written before it existed, gets the full list).

Properties: ``cutoff`` (the model's ``dist_hard_max``), ``n_interactions`` (message-passing layers: a local
atom's energy depends on atoms up to ``n_interactions * cutoff`` away, the ghost shell a domain needs),
``species_list`` (atomic numbers the model knows), ``kernels`` (``torch`` or ``tsmlip-ops``, below).

A committee (``tsmlip export --model a.pt --model b.pt ...``: two or more model files of one architecture, network
settings and species, e.g. the seeds of a kind; :func:`export_committee`) is one file of the same contract whose
energies, forces and virials are the members' means (:class:`ExportedCommittee`: each member the single-model module
above, run in turn), with ``n_members`` (a single model has none) and one method more:

``compute_committee(positions, species, pair_i, pair_j, pair_shift, n_local, per_atom_virial, half)``
    -> ``compute``'s tuple (``compute_half``'s for ``half``) of the members' means, then ``member_energies[M]`` (each
    member's energy of the local atoms) and ``member_forces[M, N, 3]`` (each member's forces on every atom, ghosts
    included): what DeePMD's per-atom force deviation eps_i = sqrt(<|F_i - <F_i>|^2>) (:mod:`tsmlip.core.committee`)
    is computed from once the ghosts' forces are added to their owners (``pair_style tsmlip`` does that).

Pair terms (``--kernels``, :data:`KERNELS`): ``torch`` scripts :class:`tsmlip.core.hipnn.Hipnn` as it is (pair terms
as torch operations, forces by autograd through them; runs anywhere, CPU or GPU). ``cpp`` computes a model with one
interaction layer as the fast training engine does (:mod:`.hipnn_stack`'s fused path): the pair geometry, the
sensitivities and environment sum, and the pair forces and virials are the fused loops of ``pair_kernels.cpp``
(torch operators ``torch.ops.tsmlip.*``), autograd runs through the per-atom network only
(:meth:`tsmlip.core.hipnn.Hipnn.from_environment`); on a GPU or in float64 it runs the torch path of the same file.
Loading such a file needs the operators first (:func:`load_exported` builds them; pair_style tsmlip loads
``lammps/build/tsmlip_ops.so``). ``auto`` (the default): ``cpp`` where it applies (float32, one interaction layer)
and the loops build, else ``torch``.
"""

import argparse
import sys
from pathlib import Path
from typing import List

import torch
from torch import Tensor, nn

from .hipnn import Hipnn, UnsupportedModel, plain_from_payload
from .model import ModelFileError, read_model_payload

#: marker stored in the scripted file (``extra_files``) so readers can refuse other TorchScript files
EXPORT_FORMAT = "tsmlip-export/1"
#: the export's pair terms: auto | torch | cpp (the module docstring)
KERNELS = ("auto", "torch", "cpp")


class ExportedHipnn(nn.Module):
    """One model's plain-torch HIPNN (:class:`tsmlip.core.hipnn.Hipnn`) behind the contract of the module docstring:
    atomic numbers in, forces and virials out."""

    species_list: List[int]

    def __init__(self, net: Hipnn):
        super().__init__()
        species = list(net.shape.species)
        zmap = torch.full((max(species) + 1,), -1, dtype=torch.long)
        zmap[torch.tensor(species)] = torch.arange(len(species))
        self.register_buffer("species_map", zmap)
        self.species_list = [int(z) for z in species]
        self.n_species = len(species)
        self.cutoff = float(net.shape.hard_max)
        self.n_interactions = int(net.shape.n_interactions)
        self.net = net
        self.kernels = "torch"

    kernels: str

    def species_index(self, species: Tensor) -> Tensor:
        """Each atom's index in ``species_list`` (``ValueError`` for an atomic number the model does not know)."""
        idx = self.species_map[species.clamp(0, self.species_map.shape[0] - 1)]
        bad = (idx < 0) | (species >= self.species_map.shape[0]) | (species < 0)
        if bool(bad.any()):
            raise ValueError(f"tsmlip model: species outside the model's {self.species_list}")
        return idx

    def atom_energies_from_pairs(self, species: Tensor, pair_i: Tensor, pair_j: Tensor, vec: Tensor) -> Tensor:
        idx = self.species_index(species)
        return self.net(nn.functional.one_hot(idx, self.n_species).to(vec.dtype), pair_i, pair_j, vec)

    @torch.jit.export
    def pair_vectors(self, positions: Tensor, pair_i: Tensor, pair_j: Tensor, pair_shift: Tensor) -> Tensor:
        return positions[pair_j] + pair_shift - positions[pair_i]

    def forward(self, positions: Tensor, species: Tensor, pair_i: Tensor, pair_j: Tensor, pair_shift: Tensor,
                n_local: int) -> Tensor:
        return self.atom_energies_from_pairs(species, pair_i, pair_j,
                                             self.pair_vectors(positions, pair_i, pair_j, pair_shift))

    @torch.jit.export
    def compute(self, positions: Tensor, species: Tensor, pair_i: Tensor, pair_j: Tensor, pair_shift: Tensor,
                n_local: int, per_atom_virial: bool = False):
        """(energy of the local atoms, atom energies, forces on all atoms, virial 3x3, per-atom virial Nx6)."""
        return self.compute_torch(positions, species, pair_i, pair_j, pair_shift, n_local, per_atom_virial)

    @torch.jit.export
    def compute_half(self, positions: Tensor, species: Tensor, pair_i: Tensor, pair_j: Tensor, pair_shift: Tensor,
                     n_local: int, per_atom_virial: bool = False):
        """:meth:`compute` from a half pair list (the module docstring); here by the full list it stands for: each
        pair of two local atoms also in the other order."""
        pi, pj, shift = self.full_from_half(positions, pair_i, pair_j, pair_shift, n_local)
        return self.compute_torch(positions, species, pi, pj, shift, n_local, per_atom_virial)

    def full_from_half(self, positions: Tensor, pair_i: Tensor, pair_j: Tensor, pair_shift: Tensor, n_local: int):
        """The full pair list of a half one: the pairs of two local atoms added in the other order."""
        if pair_shift.shape[0] == 0:
            pair_shift = torch.zeros((pair_i.shape[0], 3), dtype=positions.dtype, device=positions.device)
        both = pair_j < n_local
        return (torch.cat([pair_i, pair_j[both]]), torch.cat([pair_j, pair_i[both]]),
                torch.cat([pair_shift, -pair_shift[both]]))

    def compute_torch(self, positions: Tensor, species: Tensor, pair_i: Tensor, pair_j: Tensor, pair_shift: Tensor,
                      n_local: int, per_atom_virial: bool):
        """:meth:`compute` with the pair terms as torch operations and autograd through them."""
        vec = self.pair_vectors(positions.detach(), pair_i, pair_j, pair_shift.detach()).requires_grad_(True)
        atom_e = self.atom_energies_from_pairs(species, pair_i, pair_j, vec)
        energy = atom_e[:n_local].sum()
        grads = torch.autograd.grad([energy], [vec], allow_unused=True)
        g = grads[0]
        if g is None:
            g = torch.zeros_like(vec)
        n = positions.shape[0]
        # r_ij = x_j - x_i: dE/dx_i = -sum_j g_ij, dE/dx_j = +g_ij; F = -dE/dx
        forces = torch.zeros((n, 3), dtype=vec.dtype, device=vec.device)
        forces.index_add_(0, pair_i, g)
        forces.index_add_(0, pair_j, -g)
        pair_w = -vec.detach().unsqueeze(2) * g.unsqueeze(1)                      # (P, 3, 3)
        virial = pair_w.sum(0)
        if per_atom_virial:
            voigt = torch.stack([pair_w[:, 0, 0], pair_w[:, 1, 1], pair_w[:, 2, 2],
                                 pair_w[:, 0, 1], pair_w[:, 0, 2], pair_w[:, 1, 2]], dim=1) * 0.5
            atom_virial = torch.zeros((n, 6), dtype=vec.dtype, device=vec.device)
            atom_virial.index_add_(0, pair_i, voigt)
            atom_virial.index_add_(0, pair_j, voigt)
        else:
            atom_virial = torch.zeros((0, 6), dtype=vec.dtype, device=vec.device)
        return energy.detach(), atom_e.detach(), forces.detach(), virial.detach(), atom_virial.detach()


class FusedExportedHipnn(ExportedHipnn):
    """:class:`ExportedHipnn` whose :meth:`compute` is the fast training engine's fused path (``--kernels cpp``):
    ``pair_geometry``, ``sens_env_forward`` (sensitivities x cut-off -> environment sum), the per-atom network
    (:meth:`tsmlip.core.hipnn.Hipnn.from_environment`, dE/d(environment) by autograd through it), ``forces_virial``
    (dE/dr of each pair -> forces and virials); one interaction layer; on a GPU or in float64 the torch path."""

    def __init__(self, net: Hipnn):
        super().__init__(net)
        if self.n_interactions != 1:
            raise UnsupportedModel(f"the fused pair loops compute one interaction layer (this model has "
                                   f"{self.n_interactions}); export with kernels torch")
        block = net.blocks[0]
        self.n_sens = int(block.mu.shape[1])
        # the loops' per-model constants (as hipnn_stack's fused path passes them): 1 / mu and sigma^2, (1, nu)
        self.register_buffer("inv_mu", (1.0 / block.mu.detach()).clone())
        self.register_buffer("sig2", block.sigma.detach().square())
        self.register_buffer("no_model", torch.zeros(0, dtype=torch.long))  # every pair of model 0
        self.kernels = "tsmlip-ops"

    @torch.jit.export
    def compute(self, positions: Tensor, species: Tensor, pair_i: Tensor, pair_j: Tensor, pair_shift: Tensor,
                n_local: int, per_atom_virial: bool = False):
        """(energy of the local atoms, atom energies, forces on all atoms, virial 3x3, per-atom virial Nx6)."""
        if positions.device.type != "cpu" or positions.dtype != torch.float32 or self.inv_mu.dtype != torch.float32:
            return self.compute_torch(positions, species, pair_i, pair_j, pair_shift, n_local, per_atom_virial)
        n, n_sp, nu = positions.shape[0], self.n_species, self.n_sens
        idx = self.species_index(species)
        dist, unit, row = torch.ops.tsmlip.pair_geometry(positions.detach().contiguous(), idx.contiguous(),
                                                         pair_i.contiguous(), pair_j.contiguous(),
                                                         pair_shift.detach().contiguous(), n_sp)
        env_rows, s, ds, _g, _geo = torch.ops.tsmlip.sens_env_forward(dist, unit, self.inv_mu, self.sig2,
                                                                      self.no_model, row, n * n_sp, self.cutoff,
                                                                      False)
        energy, atom_e, g_rows = self.energy_and_gradient(env_rows, idx, n_local, positions)
        forces, virial, atom_virial = torch.ops.tsmlip.forces_virial(g_rows, s, ds, dist, unit, row,
                                                                     pair_i.contiguous(), pair_j.contiguous(), n,
                                                                     per_atom_virial)
        return energy, atom_e, forces, virial, atom_virial

    @torch.jit.export
    def compute_half(self, positions: Tensor, species: Tensor, pair_i: Tensor, pair_j: Tensor, pair_shift: Tensor,
                     n_local: int, per_atom_virial: bool = False):
        """:meth:`compute` from a half pair list (the module docstring): ``pair_geometry_half``, ``sens_env_half``
        (each pair's sensitivities once, into both atoms' environments), the per-atom network, ``forces_virial_half``
        (dE/dr of a pair through both environments)."""
        if positions.device.type != "cpu" or positions.dtype != torch.float32 or self.inv_mu.dtype != torch.float32:
            pi, pj, shift = self.full_from_half(positions, pair_i, pair_j, pair_shift, n_local)
            return self.compute_torch(positions, species, pi, pj, shift, n_local, per_atom_virial)
        n, n_sp = positions.shape[0], self.n_species
        idx = self.species_index(species)
        pi, pj = pair_i.contiguous(), pair_j.contiguous()
        dist, unit, row, row2 = torch.ops.tsmlip.pair_geometry_half(positions.detach().contiguous(), idx.contiguous(),
                                                                    pi, pj, pair_shift.detach().contiguous(), n_sp,
                                                                    n_local)
        # every environment row is a local atom's (pair_i is local): the per-atom network runs on those only
        env_rows, s, ds = torch.ops.tsmlip.sens_env_half(dist, unit, self.inv_mu, self.sig2, row, row2,
                                                         n_local * n_sp, self.cutoff)
        energy, atom_e, g_rows = self.energy_and_gradient(env_rows, idx[:n_local], n_local, positions)
        forces, virial, atom_virial = torch.ops.tsmlip.forces_virial_half(g_rows, s, ds, dist, unit, row, row2, pi,
                                                                          pj, n, per_atom_virial)
        if n > n_local:  # the ghosts' energies are their owners' (not computed here): zero
            atom_e = torch.cat([atom_e, torch.zeros([n - n_local], dtype=atom_e.dtype)])
        return energy, atom_e, forces, virial, atom_virial

    def energy_and_gradient(self, env_rows: Tensor, idx: Tensor, n_local: int, like: Tensor):
        """(energy of the first n_local atoms, atom energies, dE/d(environment) per row) from the environment rows
        (atom, species of the neighbour) [N * n_species, 4, nu] of the atoms of ``idx`` (their species indices): the
        per-atom network and autograd through it only; ``like``: a tensor of the network's dtype."""
        n_sp, nu = self.n_species, self.n_sens
        n = idx.shape[0]
        # rows (atom, species of the neighbour) -> hipnn's environment (N, 4, nu * n_species), nu-major
        env = env_rows.reshape(n, n_sp, 4, nu).permute(0, 2, 3, 1).reshape(n, 4, nu * n_sp).requires_grad_(True)
        atom_e = self.net.from_environment(nn.functional.one_hot(idx, n_sp).to(like.dtype), env)
        energy = atom_e[:n_local].sum()
        grads = torch.autograd.grad([energy], [env], allow_unused=True)
        g = grads[0]
        if g is None:
            g = torch.zeros_like(env)
        g_rows = g.reshape(n, 4, nu, n_sp).permute(0, 3, 1, 2).contiguous()  # (N * n_species rows, 4, nu)
        return energy.detach(), atom_e.detach(), g_rows


class ExportedCommittee(nn.Module):
    """A committee of single-model modules (:class:`ExportedHipnn` or :class:`FusedExportedHipnn`, one architecture)
    behind the same contract: energies, forces and virials are the members' means; :meth:`compute_committee` adds the
    members' own energies and forces (the module docstring). Each member runs its own network on the same pairs, so a
    committee of M costs about M single models."""

    species_list: List[int]
    kernels: str

    def __init__(self, members: List[ExportedHipnn]):
        super().__init__()
        first = members[0]
        self.members = nn.ModuleList(members)
        self.n_members = len(members)
        self.species_list = list(first.species_list)
        self.cutoff = first.cutoff
        self.n_interactions = first.n_interactions
        self.kernels = first.kernels

    def forward(self, positions: Tensor, species: Tensor, pair_i: Tensor, pair_j: Tensor, pair_shift: Tensor,
                n_local: int) -> Tensor:
        energies: List[Tensor] = []
        for member in self.members:
            energies.append(member(positions, species, pair_i, pair_j, pair_shift, n_local))
        return torch.stack(energies).mean(0)

    @torch.jit.export
    def compute(self, positions: Tensor, species: Tensor, pair_i: Tensor, pair_j: Tensor, pair_shift: Tensor,
                n_local: int, per_atom_virial: bool = False):
        """The members' mean (energy, atom energies, forces on all atoms, virial 3x3, per-atom virial Nx6)."""
        out = self.compute_committee(positions, species, pair_i, pair_j, pair_shift, n_local, per_atom_virial, False)
        return out[0], out[1], out[2], out[3], out[4]

    @torch.jit.export
    def compute_half(self, positions: Tensor, species: Tensor, pair_i: Tensor, pair_j: Tensor, pair_shift: Tensor,
                     n_local: int, per_atom_virial: bool = False):
        """:meth:`compute` from a half pair list (the module docstring)."""
        out = self.compute_committee(positions, species, pair_i, pair_j, pair_shift, n_local, per_atom_virial, True)
        return out[0], out[1], out[2], out[3], out[4]

    @torch.jit.export
    def compute_committee(self, positions: Tensor, species: Tensor, pair_i: Tensor, pair_j: Tensor,
                          pair_shift: Tensor, n_local: int, per_atom_virial: bool = False, half: bool = False):
        """The members' means (:meth:`compute`'s tuple; from a half list with ``half``), then each member's energy
        of the local atoms (M,) and forces on every atom (M, N, 3)."""
        energy: List[Tensor] = []
        atom_e: List[Tensor] = []
        forces: List[Tensor] = []
        virial: List[Tensor] = []
        atom_virial: List[Tensor] = []
        for member in self.members:
            if half:
                e, ae, f, w, aw = member.compute_half(positions, species, pair_i, pair_j, pair_shift, n_local,
                                                      per_atom_virial)
            else:
                e, ae, f, w, aw = member.compute(positions, species, pair_i, pair_j, pair_shift, n_local,
                                                 per_atom_virial)
            energy.append(e)
            atom_e.append(ae)
            forces.append(f)
            virial.append(w)
            atom_virial.append(aw)
        member_e, member_f = torch.stack(energy), torch.stack(forces)
        return (member_e.mean(0), torch.stack(atom_e).mean(0), member_f.mean(0), torch.stack(virial).mean(0),
                torch.stack(atom_virial).mean(0), member_e, member_f)


def fused_applies(payload: dict, dtype: str = "float32") -> str | None:
    """Why ``--kernels cpp`` does not apply to a model file's payload in ``dtype`` (None: it does)."""
    if dtype != "float32":
        return f"the fused pair loops compute float32 (not {dtype})"
    n = int(payload["network_cfg"]["n_interaction_layers"])
    if n != 1:
        return f"the fused pair loops compute one interaction layer (this model has {n})"
    return None


def exported_from_payload(payload: dict, where: str = "model", kernels: str = "torch",
                          dtype: str = "float32") -> ExportedHipnn:
    """The module (not yet scripted, float32, CPU) holding a model file's weights; ``kernels`` (:data:`KERNELS`):
    the pair terms as torch operations, or the fused loops (``cpp``; ``auto``: where they apply and build)."""
    from . import pair_kernels

    if kernels not in KERNELS:
        raise ValueError(f"kernels {kernels!r}: one of {', '.join(KERNELS)}")
    fused = False
    if kernels != "torch":
        why = fused_applies(payload, dtype)
        if why and kernels == "cpp":
            raise ModelFileError(f"{where}: not exported with kernels cpp: {why}")
        fused = why is None and pair_kernels.use_cpp(kernels, "cpu")
    try:
        return (FusedExportedHipnn if fused else ExportedHipnn)(plain_from_payload(payload))
    except UnsupportedModel as exc:
        raise ModelFileError(f"{where}: not exported: {exc}") from None
    except (KeyError, RuntimeError) as exc:
        raise ModelFileError(f"{where}: its weights do not fit the exported architecture "
                             f"({type(exc).__name__}: {exc})") from None


def export_model(model_path: str | Path, output: str | Path, dtype: str = "float32", kernels: str = "auto") -> Path:
    """Script the model of ``model_path`` and save it to ``output`` (TorchScript archive); ``kernels``: the pair
    terms (:data:`KERNELS`, the module docstring)."""
    payload = read_model_payload(model_path)
    module = exported_from_payload(payload, str(model_path), kernels, dtype)
    return _save_scripted(module, output, dtype)


def _save_scripted(module: nn.Module, output: str | Path, dtype: str, more_meta: str = "") -> Path:
    """Script ``module`` in ``dtype`` and write it to ``output`` with the export's metadata (``more_meta``: further
    ``"key": value`` pairs of the JSON, after the others)."""
    module = module.to(getattr(torch, dtype))
    for param in module.parameters():
        param.requires_grad_(False)  # inference only: gradients are taken with respect to the pair vectors
    scripted = torch.jit.script(module.eval())
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    meta = (f'{{"format": "{EXPORT_FORMAT}", "species": {module.species_list}, "cutoff": {module.cutoff}, '
            f'"n_interactions": {module.n_interactions}, "dtype": "{dtype}", "kernels": "{module.kernels}", '
            f'"energy_unit": "eV", '
            f'"length_unit": "Angstrom"{more_meta}}}')
    tmp = output.with_name(output.name + ".tmp")
    torch.jit.save(scripted, str(tmp), _extra_files={"tsmlip.json": meta})
    tmp.replace(output)
    return output


#: what the members of a committee share (their model files' payload keys): one architecture
COMMITTEE_KEYS = ("arch", "network_cfg", "species")


def export_committee(model_paths: list, output: str | Path, dtype: str = "float32", kernels: str = "auto") -> Path:
    """Script the committee of ``model_paths`` (two or more model files of one architecture, network settings and
    species; else :class:`ModelFileError` in one line naming the first that differs) into one file
    (:class:`ExportedCommittee`, the module docstring); ``kernels`` as :func:`export_model`."""
    paths = [str(p) for p in model_paths]
    if len(paths) < 2:
        raise ModelFileError(f"a committee needs two models or more, got {len(paths)}")
    payloads = [read_model_payload(p) for p in paths]
    for path, pl in zip(paths[1:], payloads[1:]):
        for key in COMMITTEE_KEYS:
            if pl[key] != payloads[0][key]:
                raise ModelFileError(f"{path}: its {key} {pl[key]} differs from {paths[0]}'s {payloads[0][key]}: a "
                                     f"committee holds models of one architecture")
    members = [exported_from_payload(pl, path, kernels, dtype) for path, pl in zip(paths, payloads)]
    return _save_scripted(ExportedCommittee(members), output, dtype, f', "n_members": {len(members)}')


def load_exported(path: str | Path, device: str | torch.device = "cpu"):
    """A scripted model written by :func:`export_model` (refuses other TorchScript files in one line)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no exported model at {path}")
    extra = {"tsmlip.json": ""}
    try:
        module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except Exception as exc:  # not a TorchScript archive, or one calling the fused loops, not loaded yet
        if "tsmlip::" not in str(exc):
            raise ModelFileError(f"{path} is not an exported tsmlip model ({type(exc).__name__})") from None
        from . import pair_kernels

        if not pair_kernels.use_cpp("auto", "cpu"):
            raise ModelFileError(f"{path} calls the fused pair loops, which could not be built here "
                                 f"({pair_kernels._error}); export it with --kernels torch") from None
        module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    text = extra["tsmlip.json"]
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    if EXPORT_FORMAT not in text:
        raise ModelFileError(f"{path} is a TorchScript file but not an exported tsmlip model "
                             f"(no {EXPORT_FORMAT!r} marker); write one with tsmlip export")
    return module


def ase_pairs(atoms, cutoff: float):
    """Full pair list of an ASE ``Atoms`` in the export's convention (``i, j, shift`` numpy arrays)."""
    from ase.neighborlist import neighbor_list

    i, j, S = neighbor_list("ijS", atoms, cutoff)
    shift = S @ atoms.cell.array
    return i, j, shift


def evaluate_atoms(module, atoms, device="cpu", dtype=torch.float32):
    """Energy (eV), forces (eV/A), atom energies and stress (ASE's convention: eV/A^3, 3x3) of ``atoms``
    from an exported ``module`` (pairs from ASE's neighbour list)."""
    i, j, shift = ase_pairs(atoms, module.cutoff)
    t = lambda a, dt: torch.as_tensor(a, dtype=dt, device=device)  # noqa: E731
    e, ae, f, w, _ = module.compute(t(atoms.positions, dtype), t(atoms.numbers, torch.long), t(i, torch.long),
                                    t(j, torch.long), t(shift, dtype), len(atoms), False)
    stress = (-w / atoms.get_volume()).cpu().numpy() if atoms.cell.rank == 3 else None
    return float(e), f.cpu().numpy(), ae.cpu().numpy(), stress


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tsmlip export", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, action="extend", nargs="+",
                   help="a trained model.pt of this workflow; two or more (--model a.pt b.pt, or --model a.pt --model "
                        "b.pt): a committee of models of one architecture (e.g. the seeds of a kind) in one file, the "
                        "members' mean energy and forces and what their per-atom force deviation needs")
    p.add_argument("--output", required=True, help="the TorchScript file to write (e.g. model.ts)")
    p.add_argument("--kernels", choices=KERNELS, default="auto",
                   help="the pair terms: torch operations (runs anywhere), the fused loops of pair_kernels.cpp (cpp: "
                        "float32, one interaction layer; LAMMPS loads them from lammps/build/tsmlip_ops.so), or "
                        "auto (cpp where it applies and builds; the default)")
    args = p.parse_args(argv)
    try:
        if len(args.model) == 1:
            out = export_model(args.model[0], args.output, kernels=args.kernels)
        else:
            out = export_committee(args.model, args.output, kernels=args.kernels)
    except (FileNotFoundError, ModelFileError) as exc:
        print(f"tsmlip export: error: {exc}", file=sys.stderr)
        return 1
    print(f"tsmlip export: wrote {out}" + (f" (a committee of {len(args.model)})" if len(args.model) > 1 else ""))
    return 0
