"""The pair geometry of a dataset, computed once per configuration: for every ordered pair (i, j) of atoms closer
than the hard cut-off (periodic images included, both directions, as hippynn's periodic pair finders list them)
the distance d_ij (A) and the unit vector u_ij = (R_j + shift - R_i) / d_ij, stored as one flat run per
configuration (CSR layout). Positions never change during training, so the fast engine gathers these runs
instead of searching pairs or recomputing distances at each step."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class PairGeometry:
    """Pairs of every configuration of a dataset (float32 geometry, int64 indices).

    ``ptr[c]:ptr[c+1]`` is configuration ``c``'s run of pairs; ``first``/``second`` are atom indices within the
    configuration (its padded row), ``species_second`` the species slot (0-based index into the model's species
    list) of the second atom."""

    ptr: torch.Tensor  # (n_configs + 1,)
    first: torch.Tensor  # (n_pairs,)
    second: torch.Tensor  # (n_pairs,)
    species_second: torch.Tensor  # (n_pairs,)
    dist: torch.Tensor  # (n_pairs,)
    unit: torch.Tensor  # (n_pairs, 3)
    species_slot: torch.Tensor  # (n_configs, n_atoms_max): species slot of each atom, -1 for padding
    cutoff: float
    n_species: int

    def to(self, device) -> "PairGeometry":
        return PairGeometry(*(getattr(self, f).to(device) for f in
                              ("ptr", "first", "second", "species_second", "dist", "unit", "species_slot")),
                            self.cutoff, self.n_species)

    @property
    def n_pairs(self) -> torch.Tensor:
        return self.ptr[1:] - self.ptr[:-1]


def species_slots(Z: np.ndarray, species: list[int]) -> np.ndarray:
    """Each atom's index in ``species`` (sorted atomic numbers), -1 for padding (Z = 0)."""
    lut = np.full(max(int(Z.max()), max(species)) + 1, -1, dtype=np.int64)
    lut[np.asarray(species)] = np.arange(len(species))
    out = lut[Z]
    if np.any((out < 0) & (Z != 0)):
        bad = sorted(set(Z[(out < 0) & (Z != 0)].tolist()))
        raise ValueError(f"species {bad} are not among the model's species {species}")
    return out


def pair_geometry(arrays: dict, species: list[int], cutoff: float) -> PairGeometry:
    """:class:`PairGeometry` of the dataset ``arrays`` (``Z``, ``R``, ``cell``; periodic in all three directions)
    within ``cutoff`` (A), from ASE's neighbour list."""
    from ase import Atoms
    from ase.neighborlist import neighbor_list

    Z, R, cells = arrays["Z"], arrays["R"], arrays["cell"]
    slots = species_slots(Z, species)
    ptr, first, second, dist, unit = [0], [], [], [], []
    for c in range(len(Z)):
        real = np.flatnonzero(Z[c] != 0)  # real atoms: hippynn's padding is trailing, but do not rely on it
        atoms = Atoms(numbers=Z[c, real], positions=R[c, real].astype(np.float64), cell=cells[c], pbc=True)
        i, j, D = neighbor_list("ijD", atoms, cutoff)
        # float32 geometry, as hippynn computes it from float32 positions
        D = D.astype(np.float32)
        d = np.linalg.norm(D, axis=1)
        keep = d < cutoff
        i, j, D, d = i[keep], j[keep], D[keep], d[keep]
        order = np.lexsort((j, i))
        first.append(real[i[order]])
        second.append(real[j[order]])
        dist.append(d[order])
        unit.append(D[order] / d[order, None])
        ptr.append(ptr[-1] + len(order))
    first = np.concatenate(first) if first else np.zeros(0, np.int64)
    second = np.concatenate(second) if second else np.zeros(0, np.int64)
    conf = np.repeat(np.arange(len(Z)), np.diff(ptr))
    return PairGeometry(
        ptr=torch.as_tensor(np.asarray(ptr, dtype=np.int64)),
        first=torch.as_tensor(first.astype(np.int64)), second=torch.as_tensor(second.astype(np.int64)),
        species_second=torch.as_tensor(slots[conf, second] if len(second) else np.zeros(0, np.int64)),
        dist=torch.as_tensor(np.concatenate(dist) if dist else np.zeros(0, np.float32)),
        unit=torch.as_tensor(np.concatenate(unit) if unit else np.zeros((0, 3), np.float32)),
        species_slot=torch.as_tensor(slots), cutoff=float(cutoff), n_species=len(species))
