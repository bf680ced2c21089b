"""Physics and bookkeeping of the HIPNN model: forces are minus the energy gradient, atom energies sum
to the total, identical initial weights per (architecture, seed), save/load and the ASE calculator."""
import numpy as np
import pytest
import torch
from ase.build import bulk

from tsmlip.config import Arch
from tsmlip.model import build_model, count_weights, load_model, save_model
from tsmlip.predict import predict


@pytest.fixture(scope="module")
def rattled_al():
    a = bulk("Al", "fcc", a=4.05, cubic=True).repeat((3, 3, 2))
    a.rattle(0.15, seed=3)
    del a[[0, 7]]  # vacancies, so padding is exercised below
    return a


def arrays_of(atoms_list):
    from tsmlip.data.dataset import pad_configurations
    return pad_configurations([{"Z": a.numbers, "R": a.positions, "cell": a.cell.array, "E": 0.0,
                                "F": np.zeros((len(a), 3))} for a in atoms_list])


def test_forces_are_minus_energy_gradient(tiny_cfg, rattled_al):
    g = build_model(Arch(8, 6, 2), tiny_cfg["network"], seed=0)
    base = arrays_of([rattled_al])
    F = predict(g, base)["F"][0]
    h = 1e-2
    for atom, axis in [(0, 0), (5, 1), (11, 2)]:
        plus, minus = rattled_al.copy(), rattled_al.copy()
        plus.positions[atom, axis] += h
        minus.positions[atom, axis] -= h
        E = predict(g, arrays_of([plus, minus]))["E"]
        fd = -(E[0] - E[1]) / (2 * h)
        assert F[atom, axis] == pytest.approx(fd, rel=2e-2, abs=2e-3)


def test_atom_energies_sum_to_total(tiny_cfg, rattled_al):
    g = build_model(Arch(8, 6, 2), tiny_cfg["network"], seed=1)
    small = rattled_al.copy()
    del small[:5]
    p = predict(g, arrays_of([rattled_al, small]))
    assert p["atom_E"].sum(axis=1) == pytest.approx(p["E"], abs=1e-4)
    assert np.all(p["atom_E"][1, len(small):] == 0)  # padding carries nothing


def test_same_seed_same_initial_weights(tiny_cfg):
    a = build_model(Arch(8, 6, 2), tiny_cfg["network"], seed=4).network.torch_module.state_dict()
    b = build_model(Arch(8, 6, 2), tiny_cfg["network"], seed=4).network.torch_module.state_dict()
    c = build_model(Arch(8, 6, 2), tiny_cfg["network"], seed=5).network.torch_module.state_dict()
    tensors = [k for k, v in a.items() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    assert all(torch.equal(a[k], b[k]) for k in tensors)
    assert not all(torch.equal(a[k], c[k]) for k in tensors)


def test_weight_count_grows_with_width(tiny_cfg):
    n = [count_weights(build_model(Arch(w, 6, 2), tiny_cfg["network"], seed=0)) for w in (4, 8, 16)]
    assert n[0] < n[1] < n[2]


def test_save_load_and_calculator_agree(tiny_cfg, rattled_al, tmp_path):
    from tsmlip.calculator import load_calculator

    g = build_model(Arch(8, 6, 1), tiny_cfg["network"], seed=2)
    save_model(g, tmp_path / "model.pt", note="test")
    ref = predict(g, arrays_of([rattled_al]))
    again = predict(load_model(tmp_path / "model.pt"), arrays_of([rattled_al]))
    np.testing.assert_allclose(again["E"], ref["E"], rtol=1e-6)
    atoms = rattled_al.copy()
    atoms.calc = load_calculator(tmp_path / "model.pt", device="cpu", atom_energies=True)
    assert atoms.get_potential_energy() == pytest.approx(float(ref["E"][0]), rel=1e-5)  # eV, not kcal/mol
    np.testing.assert_allclose(atoms.get_forces(), ref["F"][0, :len(atoms)], atol=1e-4)
    assert atoms.calc.results["atom_energies"].sum() == pytest.approx(float(ref["E"][0]), rel=1e-4)


def test_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no trained model"):
        load_model(tmp_path / "nope.pt")
