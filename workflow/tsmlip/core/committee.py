"""A committee of saved models of one architecture (e.g. the seeds of a kind, which the workflow trains in one stack)
as one ASE calculator: the committee's energy and forces are the members' means, and its uncertainty is the spread
of the members' forces, DeePMD-kit's "model deviation":

    eps_i = sqrt( < |F_i - <F_i>|^2 > )     (per atom i; < > the mean over the M members)

with ``max_force_deviation`` = max_i eps_i (what DP-GEN's trust levels read) and ``mean_force_deviation`` = mean_i
eps_i; ``energy_deviation`` is the members' standard deviation of the energy per atom (population, over M).

>>> from tsmlip.core.committee import load_committee
>>> atoms.calc = load_committee(["results/models/student/w8-s4-l1/seed1/model.pt", ...])
>>> atoms.get_forces(); atoms.calc.results["max_force_deviation"]   # eV/A

All members run in ONE stacked force call (:class:`tsmlip.core.md.stacked_forces.StackedForces`: the fast engine's
forward, every member on the same atoms), so a committee of M costs one call with M times the pair work, not M calls.
Periodic cells only (the stacked pair search is vesin's cell list).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .md.stacked_forces import StackedForces, StackError, load_stack

__all__ = ["CommitteeCalculator", "load_committee", "force_deviation", "force_deviation_torch"]


def force_deviation(forces) -> np.ndarray:
    """DeePMD's per-atom force deviation of the members' forces ``forces`` (M, N, 3): sqrt(mean over members of
    |F - mean F|^2), shape (N,)."""
    F = np.asarray(forces, dtype=np.float64)
    return np.sqrt(np.square(F - F.mean(0, keepdims=True)).sum(2).mean(0))


def force_deviation_torch(forces: torch.Tensor) -> torch.Tensor:
    """:func:`force_deviation` of a tensor (M, N, 3), in its dtype and device (the TorchSim committee's)."""
    return (forces - forces.mean(0, keepdim=True)).square().sum(2).mean(0).sqrt()


class CommitteeCalculator:
    """Built by :func:`load_committee`; an ASE calculator (``ase.calculators.calculator.Calculator``)."""


def load_committee(model_paths: list, device: str = "cpu", skin: float = 1.0):
    """An ASE calculator of the committee of ``model_paths`` (at least two model files of one architecture, network
    settings and species; else :class:`StackError` naming the first that differs). Results: ``energy`` and
    ``forces`` (the members' means, eV and eV/A), ``member_energies`` (M,), ``member_forces`` (M, N, 3),
    ``force_deviation`` (N,), ``max_force_deviation``, ``mean_force_deviation`` (eV/A), ``energy_deviation``
    (eV/atom)."""
    from ase.calculators.calculator import Calculator, all_changes

    paths = [str(Path(p)) for p in model_paths]
    if len(paths) < 2:
        raise StackError(f"a committee needs two models or more, got {len(paths)}")
    model, payload = load_stack(paths, device)
    species = [int(z) for z in payload["species"] if int(z) != 0]

    class _Committee(Calculator, CommitteeCalculator):
        implemented_properties = ["energy", "free_energy", "forces"]

        def __init__(self):
            super().__init__()
            self.model_paths = paths
            self.n_members = len(paths)
            self._forces = None
            self._key = None

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            at = self.atoms
            if not all(at.pbc):
                raise ValueError("the committee's pair search needs a periodic cell (pbc True on every axis)")
            other = sorted(set(int(z) for z in at.numbers) - set(species))
            if other:
                from ase.data import chemical_symbols as sym

                raise ValueError(f"{paths[0]}: the committee knows {', '.join(sym[z] for z in species)} only; the "
                                 f"atoms hold {', '.join(sym[z] for z in other)}")
            key = (tuple(int(z) for z in at.numbers), tuple(np.asarray(at.cell).ravel().round(12)))
            if self._forces is None or key != self._key:  # new atoms or cell: new pair lists
                self._forces = StackedForces(model, species, at.numbers, at.cell, skin)
                self._key = key
            M = self.n_members
            R = torch.as_tensor(at.get_positions(), dtype=torch.float64, device=device)
            F, E = self._forces(R.unsqueeze(0).expand(M, -1, -1).contiguous())
            F, E = F.cpu().numpy(), E.cpu().numpy()
            dev = force_deviation(F)
            self.results.update(
                energy=float(E.mean()), free_energy=float(E.mean()), forces=F.mean(0),
                member_energies=E, member_forces=F, force_deviation=dev,
                max_force_deviation=float(dev.max()), mean_force_deviation=float(dev.mean()),
                energy_deviation=float(E.std() / len(at)))

    return _Committee()
