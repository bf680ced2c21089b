"""One call to use any trained model (teacher, student, control, Born-Again) outside the workflow.

>>> from tsmlip.core.calculator import load_calculator
>>> atoms.calc = load_calculator("results/models/student/w16-s4-l1/seed1/model.pt")
>>> atoms.get_potential_energy()   # eV
>>> atoms.get_forces()             # eV/Angstrom

The MD rules of the workflow use this same call.
"""
from __future__ import annotations

from pathlib import Path

from .model import load_model, resolve_device


def load_calculator(model_path: str | Path, device: str | None = "auto", skin: float = 1.0,
                    atom_energies: bool = False):
    """An ASE calculator (hippynn's ``HippynnCalculator``) for a saved model, in eV and eV/Angstrom.

    :param device: ``auto`` (CUDA when present), ``cpu``, ``cuda``...
    :param skin: neighbour-list skin in Angstrom (pairs are rebuilt only when an atom moved skin/2).
    :param atom_energies: also offer per-atom energies as ``calc.results["atom_energies"]`` (eV).
    """
    from ase import units
    from hippynn.interfaces.ase_interface import HippynnCalculator

    graph = load_model(model_path, device="cpu")
    extra = {"atom_energies": graph.atom_energies} if atom_energies else None
    known = {int(z) for z in graph.network.torch_module.species_set.tolist() if int(z) != 0}

    class Calculator(HippynnCalculator):
        """hippynn's calculator, refusing atoms of an element the model was not trained on (one message naming
        both; hippynn itself fails with an IndexError deep in its species lookup)."""

        def calculate(self, atoms=None, *args, **kwargs):
            at = atoms if atoms is not None else getattr(self, "atoms", None)  # hippynn calls it without atoms
            if at is not None:
                other = sorted(set(int(z) for z in at.numbers) - known)
                if other:
                    from ase.data import chemical_symbols as sym

                    raise ValueError(f"{model_path}: the model knows {', '.join(sym[z] for z in sorted(known))} only; "
                                     f"the atoms hold {', '.join(sym[z] for z in other)}: a model of another element")
            return super().calculate(atoms, *args, **kwargs)

    calc = Calculator(graph.energy, skin=skin, extra_properties=extra, en_unit=units.eV, dist_unit=units.Angstrom)
    calc.to(resolve_device(device))
    calc.tsmlip_model = graph
    return calc
