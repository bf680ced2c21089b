"""Issue 36, item 3: data checks that know physics (tsmlip.data.scales): forces against the element's bonds,
energies against the forces, one configuration's energy against its own forces; each failure names the
configuration and the likely unit or cause, and the workflow's own data pass."""
from __future__ import annotations

import numpy as np
import pytest

from tsmlip.data.dataset import DataError
from tsmlip.data.io import prepare

HARTREE = 27.211386
HARTREE_BOHR = 27.211386 / 0.52917721


def _xyz(path, arrays, E=None, F=None):
    """The padded arrays as an extended-XYZ file (energies ``E``, forces ``F`` in place of the arrays' own)."""
    import ase.io
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    E = arrays["E"] if E is None else E
    F = arrays["F"] if F is None else F
    frames = []
    for c in range(len(arrays["E"])):
        k = int((arrays["Z"][c] != 0).sum())
        at = Atoms(numbers=arrays["Z"][c, :k], positions=arrays["R"][c, :k], cell=arrays["cell"][c], pbc=True)
        at.calc = SinglePointCalculator(at, energy=float(E[c]), forces=F[c, :k])
        frames.append(at)
    ase.io.write(path, frames, format="extxyz")
    return path


def _rattled(n=8):
    """``n`` 2x2x2 fcc Al cells (32 atoms each) rattled by 0.02-0.2 A, EMT labels with a DFT-like cohesive offset of
    -3.6 eV/atom: every cell the same size."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    from tsmlip.data.dataset import pad_configurations

    configs = []
    for seed, r in enumerate(np.linspace(0.02, 0.2, n)):
        at = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 2, 2))
        at.rattle(float(r), seed=seed)
        at.calc = EMT()
        configs.append({"Z": at.numbers, "R": at.positions, "cell": at.cell.array,
                        "E": at.get_potential_energy() - 3.6 * len(at), "F": at.get_forces()})
    return pad_configurations(configs)


def test_the_workflows_data_pass_and_record_their_scales(tiny_data, tmp_path):
    from tsmlip.data.scales import KAPPA_RANGE, STIFFNESS_RANGE

    for name, arrays in (("tiny", tiny_data[2]), ("rattled", _rattled())):
        _, prov = prepare("extxyz", str(_xyz(tmp_path / f"{name}.xyz", arrays)), 1.6)
        sc = prov["plausibility"]["scales"]
        lo, hi = STIFFNESS_RANGE
        assert 3 * lo < sc["stiffness"]["stiffness_over_element_scale"] < hi / 4, sc
        lo, hi = KAPPA_RANGE
        assert 4 * lo < sc["energy_force_agreement"]["kappa"] < hi / 4, sc
        assert not any(b["causes"] for b in sc["energy_below_forces"]["below"]), sc


def test_a_whole_file_in_hartree_and_hartree_per_bohr_is_named(tiny_data, tmp_path):
    """Every frame scaled alike: the dataset-relative checks and the ranges pass it (EMT's energies are ~0.2
    eV/atom); the forces, 51 times too weak for aluminium's bonds, name it."""
    arrays = tiny_data[2]
    f = _xyz(tmp_path / "hartree.xyz", arrays, E=arrays["E"] / HARTREE, F=arrays["F"] / HARTREE_BOHR)
    with pytest.raises(DataError, match=r"hartree\.xyz: configuration 0 \(.*hartree\.xyz frame 0\) \(and 23 more of "
                                        r"the 24 judged\): the forces are too weak for Al: .*likely: energies in "
                                        r"Hartree and forces in Hartree/Bohr instead of eV and eV/A") as e:
        prepare("extxyz", str(f), 1.6)
    assert "\n" not in str(e.value) and "data.checks: false" in str(e.value)
    _, prov = prepare("extxyz", str(f), 1.6, checks=False)  # exotic data: the switch records the numbers
    assert prov["plausibility"]["scales"]["stiffness"]["stiffness_over_element_scale"] < 0.2


def test_per_atom_energies_given_as_totals_in_cells_of_one_size_are_named(tmp_path):
    """Every cell has 32 atoms, so the energies' growth with the atom count cannot be tested; they barely rise with
    the forces (32 times too little)."""
    arrays = _rattled()
    n = (arrays["Z"] != 0).sum(axis=1)
    f = _xyz(tmp_path / "per_atom.xyz", arrays, E=arrays["E"] / n)
    with pytest.raises(DataError, match=r"configuration 0 \(.*per_atom\.xyz frame 0\) \(and the 7 others\): the "
                                        r"energies barely rise with the forces.*likely: .*per-atom energies stored "
                                        r"as the totals") as e:
        prepare("extxyz", str(f), 1.6)
    assert "\n" not in str(e.value)


def test_one_frame_in_hartree_at_emts_energy_scale_is_named(tiny_data, tmp_path):
    """EMT's energies per atom lie within 0.5 eV of each other: one frame in Hartree sits within the 0.3 eV/atom
    floor of the outlier check, but far below the energy its forces put it at."""
    arrays = tiny_data[2]
    n = (arrays["Z"] != 0).sum(axis=1)
    c = int(np.argmax(arrays["E"] / n))  # the hottest liquid
    E = arrays["E"].copy()
    E[c] /= HARTREE
    assert abs(E[c] / n[c] - np.median(arrays["E"] / n)) < 0.3
    f = _xyz(tmp_path / "one.xyz", arrays, E=E)
    with pytest.raises(DataError, match=rf"one\.xyz: configuration {c} \(.*one\.xyz frame {c}\): its energy per atom "
                                        rf".* below what its forces put it at .*likely: the energy in Hartree instead "
                                        rf"of eV") as e:
        prepare("extxyz", str(f), 1.6)
    assert "\n" not in str(e.value)
