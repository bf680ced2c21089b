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

Properties: ``cutoff`` (the model's ``dist_hard_max``), ``n_interactions`` (message-passing layers: a local
atom's energy depends on atoms up to ``n_interactions * cutoff`` away, the ghost shell a domain needs),
``species_list`` (atomic numbers the model knows).
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

    def atom_energies_from_pairs(self, species: Tensor, pair_i: Tensor, pair_j: Tensor, vec: Tensor) -> Tensor:
        idx = self.species_map[species.clamp(0, self.species_map.shape[0] - 1)]
        bad = (idx < 0) | (species >= self.species_map.shape[0]) | (species < 0)
        if bool(bad.any()):
            raise ValueError(f"tsmlip model: species outside the model's {self.species_list}")
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


def exported_from_payload(payload: dict, where: str = "model") -> ExportedHipnn:
    """The plain-torch module (not yet scripted, float32, CPU) holding a model file's weights."""
    try:
        return ExportedHipnn(plain_from_payload(payload))
    except UnsupportedModel as exc:
        raise ModelFileError(f"{where}: not exported: {exc}") from None
    except (KeyError, RuntimeError) as exc:
        raise ModelFileError(f"{where}: its weights do not fit the exported architecture "
                             f"({type(exc).__name__}: {exc})") from None


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
