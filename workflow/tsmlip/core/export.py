"""A trained model as one TorchScript file that runs without hippynn or Python (LAMMPS, TorchSim, C++).

``tsmlip export --model model.pt --output model.ts`` writes a scripted plain-torch copy of the model's
network (hippynn's ``HipnnVec``: tensor sensitivity l_max=1, inverse sensitivities with the cos^2 cutoff,
ResNet blocks, softplus) and energy head (``HEnergy``: one linear read-out per feature level, summed).

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

Properties: ``cutoff`` (the model's ``dist_hard_max``), ``n_interactions`` (message-passing layers: a local
atom's energy depends on atoms up to ``n_interactions * cutoff`` away, the ghost shell a domain needs),
``species_list`` (atomic numbers the model knows).
"""

import argparse
import math
import sys
from pathlib import Path
from typing import List

import torch
from torch import Tensor, nn

from .model import ModelFileError, read_model_payload

#: marker stored in the scripted file (``extra_files``) so readers can refuse other TorchScript files
EXPORT_FORMAT = "tsmlip-export/1"


class _Interaction(nn.Module):
    """hippynn's ``InteractLayerVec`` (inverse sensitivities, cos^2 cutoff), optionally in its ResNet wrapper."""

    def __init__(self, nf_in: int, nf_mid: int, nf_out: int, n_dist: int, hard_max: float, cusp_reg: float,
                 resnet: bool):
        super().__init__()
        self.mu = nn.Parameter(torch.zeros(1, n_dist))
        self.sigma = nn.Parameter(torch.zeros(1, n_dist))
        self.int_weights = nn.Parameter(torch.zeros(n_dist, nf_mid, nf_in))
        self.vecscales = nn.Parameter(torch.zeros(nf_mid))
        self.selfint = nn.Linear(nf_in, nf_mid)
        self.n_dist = n_dist
        self.nf_in = nf_in
        self.hard_max = float(hard_max)
        self.cusp_reg = float(cusp_reg)
        self.resnet = bool(resnet)
        self.res_layer = nn.Linear(nf_mid, nf_out) if resnet else nn.Identity()
        self.needs_adjust = bool(resnet and nf_in != nf_out)
        self.adjust_layer = nn.Linear(nf_in, nf_out, bias=False) if self.needs_adjust else nn.Identity()

    def base(self, x: Tensor, pair_i: Tensor, pair_j: Tensor, dist: Tensor, vec: Tensor) -> Tensor:
        n_atoms = x.shape[0]
        nondim = (dist.unsqueeze(1) ** -1 - self.mu ** -1) ** 2 / (self.sigma ** -2)
        cut = torch.cos(math.pi / 2 * dist / self.hard_max) ** 2 * (dist <= self.hard_max).to(dist.dtype)
        sense = torch.exp(-0.5 * nondim) * cut.unsqueeze(1)                     # (P, nu)
        sense_vec = (sense.unsqueeze(1) * (vec / dist.unsqueeze(1)).unsqueeze(2)).reshape(-1, self.n_dist * 3)
        stacked = torch.cat([sense, sense_vec], dim=1)                           # (P, 4 nu)
        env = torch.zeros((n_atoms, 4 * self.n_dist, self.nf_in), dtype=x.dtype, device=x.device)
        env.index_add_(0, pair_i, stacked.unsqueeze(2) * x[pair_j].unsqueeze(1))
        env = env.reshape(n_atoms, 4, self.n_dist * self.nf_in)
        w = self.int_weights.permute(0, 2, 1).reshape(self.n_dist * self.nf_in, -1)
        scalar = torch.mm(env[:, 0], w)
        vector = torch.mm(env[:, 1:].reshape(n_atoms * 3, -1), w).reshape(n_atoms, 3, -1)
        vector = torch.sqrt(torch.square(vector).sum(dim=1) + self.cusp_reg) * self.vecscales.unsqueeze(0)
        return scalar + vector + self.selfint(x)

    def forward(self, x: Tensor, pair_i: Tensor, pair_j: Tensor, dist: Tensor, vec: Tensor) -> Tensor:
        out = self.base(x, pair_i, pair_j, dist, vec)
        if not self.resnet:
            return nn.functional.softplus(out)
        res = self.res_layer(nn.functional.softplus(out))
        if self.needs_adjust:
            return res + self.adjust_layer(x)
        return res + x


class _AtomLayer(nn.Module):
    """A hippynn atom layer: ``Linear`` (+ ResNet wrapper), softplus."""

    def __init__(self, nf: int, nf_mid: int, resnet: bool):
        super().__init__()
        self.base = nn.Linear(nf, nf_mid)
        self.resnet = bool(resnet)
        self.res_layer = nn.Linear(nf_mid, nf) if resnet else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        if not self.resnet:
            return nn.functional.softplus(self.base(x))
        return self.res_layer(nn.functional.softplus(self.base(x))) + x


class ExportedHipnn(nn.Module):
    """Plain-torch HIPNN (l_max=1) + hierarchical energy head; see the module docstring for the contract."""

    species_list: List[int]

    def __init__(self, species: list[int], width: int, n_sensitivities: int, n_atom_layers: int,
                 n_interaction_layers: int, hard_max: float, cusp_reg: float, resnet: bool, mid: int):
        super().__init__()
        zmax = max(species)
        zmap = torch.full((zmax + 1,), -1, dtype=torch.long)
        zmap[torch.tensor(species)] = torch.arange(len(species))
        self.register_buffer("species_map", zmap)
        self.species_list = [int(z) for z in species]
        self.n_species = len(species)
        self.cutoff = float(hard_max)
        self.n_interactions = int(n_interaction_layers)
        sizes = [len(species)] + [width] * n_interaction_layers
        self.interactions = nn.ModuleList(
            _Interaction(sizes[k], mid, sizes[k + 1], n_sensitivities, hard_max, cusp_reg, resnet)
            for k in range(n_interaction_layers))
        self.atom_layers = nn.ModuleList(
            nn.ModuleList(_AtomLayer(sizes[k + 1], mid, resnet) for _ in range(n_atom_layers))
            for k in range(n_interaction_layers))
        # HEnergy: no bias on the (one-hot) input level, a bias on every later level
        self.readouts = nn.ModuleList(nn.Linear(n, 1, bias=k > 0) for k, n in enumerate(sizes))

    def atom_energies_from_pairs(self, species: Tensor, pair_i: Tensor, pair_j: Tensor, vec: Tensor) -> Tensor:
        idx = self.species_map[species.clamp(0, self.species_map.shape[0] - 1)]
        bad = (idx < 0) | (species >= self.species_map.shape[0]) | (species < 0)
        if bool(bad.any()):
            raise ValueError(f"tsmlip model: species outside the model's {self.species_list}")
        x = nn.functional.one_hot(idx, self.n_species).to(vec.dtype)
        dist = torch.linalg.vector_norm(vec, dim=1)
        energies = self.readouts[0](x)
        k = 0
        for interaction, layers in zip(self.interactions, self.atom_layers):
            x = interaction(x, pair_i, pair_j, dist, vec)
            for layer in layers:
                x = layer(x)
            k += 1
            energies = energies + self._readout(k, x)
        return energies.squeeze(1)

    def _readout(self, k: int, x: Tensor) -> Tensor:
        out = torch.zeros((x.shape[0], 1), dtype=x.dtype, device=x.device)
        for m, lay in enumerate(self.readouts):
            if m == k:
                out = lay(x)
        return out

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


def _copy_linear(dst: nn.Linear, state: dict, prefix: str) -> None:
    dst.weight.data.copy_(state[prefix + ".weight"])
    if dst.bias is not None:
        dst.bias.data.copy_(state[prefix + ".bias"])


def exported_from_payload(payload: dict, where: str = "model") -> ExportedHipnn:
    """The plain-torch module (not yet scripted, float32, CPU) holding a model file's weights."""
    arch, net = payload["arch"], payload["network_cfg"]
    if net.get("l_max") != 1 or net.get("sensitivity_type") != "inverse":
        raise ModelFileError(f"{where}: export supports l_max = 1 with inverse sensitivities, not "
                             f"l_max={net.get('l_max')}, sensitivity_type={net.get('sensitivity_type')!r}")
    resnet = net["resnet"]
    width = int(arch["width"])
    if resnet is True or resnet is False:
        mid = width
    elif isinstance(resnet, int):
        mid = int(resnet)
    else:
        raise ModelFileError(f"{where}: export supports resnet = true/false or one int, not {resnet!r}")
    species = sorted(int(z) for z in payload["species"])
    m = ExportedHipnn(species, width, int(arch["n_sensitivities"]), int(arch["n_atom_layers"]),
                      int(net["n_interaction_layers"]), float(net["dist_hard_max"]), float(net["cusp_reg"]),
                      bool(resnet), mid)
    st, hs = payload["network_state"], payload["henergy_state"]
    try:
        for k, (inter, layers) in enumerate(zip(m.interactions, m.atom_layers)):
            p = f"blocks.{k}.0" + (".base_layer" if resnet else "")
            inter.mu.data.copy_(st[p + ".sensitivity.mu"])
            inter.sigma.data.copy_(st[p + ".sensitivity.sigma"])
            inter.int_weights.data.copy_(st[p + ".int_weights"])
            inter.vecscales.data.copy_(st[p + ".vecscales"])
            _copy_linear(inter.selfint, st, p + ".selfint")
            extra = st.get(p + "._extra_state")
            if isinstance(extra, dict) and "cusp_reg" in extra:
                inter.cusp_reg = float(extra["cusp_reg"])
            if resnet:
                _copy_linear(inter.res_layer, st, f"blocks.{k}.0.res_layer")
                if inter.needs_adjust:
                    _copy_linear(inter.adjust_layer, st, f"blocks.{k}.0.adjust_layer")
            for a, lay in enumerate(layers):
                q = f"blocks.{k}.{a + 1}"
                if resnet:
                    _copy_linear(lay.base, st, q + ".base_layer")
                    _copy_linear(lay.res_layer, st, q + ".res_layer")
                else:
                    _copy_linear(lay.base, st, q)
        for k, lay in enumerate(m.readouts):
            _copy_linear(lay, hs, f"layers.{k}")
    except (KeyError, RuntimeError) as exc:
        raise ModelFileError(f"{where}: its weights do not fit the exported architecture "
                             f"({type(exc).__name__}: {exc})") from None
    return m


def export_model(model_path: str | Path, output: str | Path, dtype: str = "float32") -> Path:
    """Script the model of ``model_path`` and save it to ``output`` (TorchScript archive)."""
    payload = read_model_payload(model_path)
    module = exported_from_payload(payload, str(model_path)).to(getattr(torch, dtype))
    for param in module.parameters():
        param.requires_grad_(False)  # inference only: gradients are taken with respect to the pair vectors
    scripted = torch.jit.script(module.eval())
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    meta = (f'{{"format": "{EXPORT_FORMAT}", "species": {module.species_list}, "cutoff": {module.cutoff}, '
            f'"n_interactions": {module.n_interactions}, "dtype": "{dtype}", "energy_unit": "eV", '
            f'"length_unit": "Angstrom"}}')
    tmp = output.with_name(output.name + ".tmp")
    torch.jit.save(scripted, str(tmp), _extra_files={"tsmlip.json": meta})
    tmp.replace(output)
    return output


def load_exported(path: str | Path, device: str | torch.device = "cpu"):
    """A scripted model written by :func:`export_model` (refuses other TorchScript files in one line)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no exported model at {path}")
    extra = {"tsmlip.json": ""}
    try:
        module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except Exception as exc:  # not a TorchScript archive
        raise ModelFileError(f"{path} is not an exported tsmlip model ({type(exc).__name__})") from None
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
    p.add_argument("--model", required=True, help="a trained model.pt of this workflow")
    p.add_argument("--output", required=True, help="the TorchScript file to write (e.g. model.ts)")
    args = p.parse_args(argv)
    try:
        out = export_model(args.model, args.output)
    except FileNotFoundError as exc:
        print(f"tsmlip export: error: {exc}", file=sys.stderr)
        return 1
    print(f"tsmlip export: wrote {out}")
    return 0
