"""Data stage: EMT labels reproduce ASE, generation is deterministic, the split is disjoint and stable,
and every kind of bad input gets one clear error naming the file and the problem."""
import h5py
import numpy as np
import pytest
from ase import units
from ase.calculators.emt import EMT

from tsmlip.data.dataset import DataError, pad_configurations, validate_arrays
from tsmlip.data.emt import generate
from tsmlip.data.io import prepare, read_ani_h5, read_extxyz
from tsmlip.data.split import load_split, make_split


def test_emt_labels_reproduce_ase(tiny_data):
    from ase import Atoms

    _, _, arr = tiny_data
    for i in (0, len(arr["E"]) - 1):
        k = arr["n_atoms"][i]
        atoms = Atoms(numbers=arr["Z"][i, :k], positions=arr["R"][i, :k], cell=arr["cell"][i], pbc=True)
        atoms.calc = EMT()
        assert atoms.get_potential_energy() == pytest.approx(arr["E"][i], abs=1e-8)
        np.testing.assert_allclose(atoms.get_forces(), arr["F"][i, :k], atol=1e-8)
        assert arr["ref_atom_E"][i].sum() == pytest.approx(arr["E"][i], abs=1e-8)


def test_emt_generation_is_deterministic_and_varied(tiny_cfg, tiny_data):
    emt = dict(tiny_cfg["data"]["emt"], n_configs=5)
    a, _ = generate(emt, progress=False)
    b, _ = generate(emt, progress=False)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["R"], y["R"])
    _, _, arr = tiny_data
    assert len(np.unique(arr["n_atoms"])) > 1           # vacancies vary the atom count
    assert len(np.unique(arr["T_K"])) == len(tiny_cfg["data"]["emt"]["temperatures_K"])
    assert len(np.unique(np.round(np.linalg.det(arr["cell"]), 3))) > 1  # strained cells


def test_split_is_disjoint_complete_and_stable(tiny_data, tmp_path):
    s1 = make_split(100, 0.1, 0.2, seed=5)
    s2 = make_split(100, 0.1, 0.2, seed=5)
    s3 = make_split(100, 0.1, 0.2, seed=6)
    allidx = np.concatenate([s1[k] for k in ("train", "valid", "test")])
    assert sorted(allidx.tolist()) == list(range(100))
    assert (len(s1["valid"]), len(s1["test"])) == (10, 20)
    assert all(np.array_equal(s1[k], s2[k]) for k in s1)
    assert not np.array_equal(s1["test"], s3["test"])
    bad = dict(s1, valid=np.append(s1["valid"], s1["test"][0]))
    np.savez(tmp_path / "bad.npz", **bad)
    with pytest.raises(DataError, match="overlap"):
        load_split(tmp_path / "bad.npz")


# --- ANI-Al HDF5 (pyanitools layout, Hartree) ---------------------------------------------------------

def _ani_file(path, n=2, **override):
    from ase.build import bulk

    a = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 2, 2))
    R = np.stack([a.positions + 0.01 * i for i in range(n)])
    data = {"coordinates": R, "species": np.array([b"Al"] * len(a)),
            "cell": np.stack([a.cell.array] * n), "energy": np.full(n, -2.0),
            "force": np.full((n, len(a), 3), 0.01)}
    data.update(override)
    with h5py.File(path, "w") as h5:
        g = h5.create_group("Al").create_group("group_0")
        for k, v in data.items():
            if v is not None:
                g[k] = v
    return path


def test_ani_h5_units_and_shift(tmp_path):
    configs = read_ani_h5(_ani_file(tmp_path / "a.h5"), energy_shift_eV_per_atom=72.0)
    assert len(configs) == 2 and set(configs[0]["Z"]) == {13}
    assert configs[0]["E"] == pytest.approx(-2.0 * units.Hartree + 72.0 * 32)
    assert configs[0]["F"][0, 0] == pytest.approx(0.01 * units.Hartree)


@pytest.mark.parametrize("override, message", [
    ({"force": None}, "missing keys"),
    ({"energy": np.zeros(3)}, "shape mismatch"),
    ({"species": np.array([b"Xx"] * 32)}, "unknown species"),
])
def test_ani_h5_bad_inputs(tmp_path, override, message):
    f = _ani_file(tmp_path / "bad.h5", **override)
    with pytest.raises(DataError, match=message) as e:
        prepare("ani_h5", str(f), 1.6)
    assert "bad.h5" in str(e.value)


def test_ani_h5_nan_and_close_atoms(tmp_path):
    E = np.array([-2.0, np.nan])
    with pytest.raises(DataError, match="NaN/inf"):
        prepare("ani_h5", str(_ani_file(tmp_path / "nan.h5", energy=E)), 1.6)
    from ase.build import bulk
    a = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 2, 2))
    R = a.positions.copy()
    R[1] = R[0] + [0.5, 0, 0]
    with pytest.raises(DataError, match="closer than") as e:
        prepare("ani_h5", str(_ani_file(tmp_path / "close.h5", n=1, coordinates=R[None],
                                        cell=a.cell.array[None], energy=np.zeros(1),
                                        force=np.zeros((1, 32, 3)))), 1.6)
    assert "close.h5" in str(e.value)


def test_empty_inputs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .h5 files"):
        read_ani_h5(tmp_path / "empty", 0.0)
    (tmp_path / "e.xyz").write_text("")
    with pytest.raises(DataError, match="empty"):
        read_extxyz(tmp_path / "e.xyz")
    with pytest.raises(DataError, match="no configurations"):
        pad_configurations([])


# --- extended XYZ ---------------------------------------------------------------------------------------

def _xyz(path, frames):
    import ase.io
    ase.io.write(path, frames, format="extxyz")
    return path


def test_extxyz_roundtrip_and_errors(tmp_path):
    from ase.build import bulk
    from ase.calculators.singlepoint import SinglePointCalculator

    a = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 2, 2))
    a.rattle(0.05, seed=1)
    a.calc = EMT()
    E, F = a.get_potential_energy(), a.get_forces()
    a.calc = SinglePointCalculator(a, energy=E, forces=F)
    arr = prepare("extxyz", str(_xyz(tmp_path / "ok.xyz", [a])), 1.6)
    assert arr["E"][0] == pytest.approx(E) and arr["F"].shape == (1, 32, 3)

    no_forces = a.copy()
    no_forces.calc = SinglePointCalculator(no_forces, energy=E)
    with pytest.raises(DataError, match="no energy/forces") as e:
        read_extxyz(_xyz(tmp_path / "nof.xyz", [no_forces]))
    assert "nof.xyz" in str(e.value)

    molecule = a.copy()
    molecule.pbc = False
    molecule.calc = SinglePointCalculator(molecule, energy=E, forces=F)
    with pytest.raises(DataError, match="not periodic"):
        read_extxyz(_xyz(tmp_path / "mol.xyz", [molecule]))


def test_validate_catches_shape_mismatch():
    arr = pad_configurations([{"Z": np.full(4, 13), "R": np.eye(4, 3) * 3, "cell": np.eye(3) * 9,
                               "E": 0.0, "F": np.zeros((4, 3))}])
    arr["F"] = arr["F"][:, :3]
    with pytest.raises(DataError, match="array F has shape"):
        validate_arrays(arr, "mine.npz", 1.0)
