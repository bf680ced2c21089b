"""Data stage: EMT labels reproduce ASE, generation is deterministic, the split is disjoint and stable,
and every kind of bad input gets one clear error naming the file and the problem."""
import json

import h5py
import numpy as np
import pytest
from ase import units
from ase.calculators.emt import EMT

from conftest import BASE_CONFIG
from tsmlip.config import load_config
from tsmlip.data.dataset import DataError, pad_configurations, validate_arrays
from tsmlip.data.emt import generate
from tsmlip.data.io import prepare, read_ani_h5, read_extxyz
from tsmlip.data.split import load_split, make_split


def _prepare_cli(path, out, **data):
    """`tsmlip prepare-dataset` with the base config's data: keys, ``data`` replacing some."""
    from tsmlip.cli import STEPS
    from tsmlip.data.io import main

    base = load_config(BASE_CONFIG)["data"]
    cfg = {"data": {k.split(".")[1]: base[k.split(".")[1]] for k in STEPS["prepare-dataset"].reads} | data}
    return main(["--config-json", json.dumps(cfg), "--path", str(path), "--out", str(out)])


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
    assert len(np.unique(arr["T_K"])) >= 3                # crystals, liquids and hot contacts at several T
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
    # the `force` array of ANI-Al holds the gradient +dE/dR: negated on load by default
    assert configs[0]["F"][0, 0] == pytest.approx(-0.01 * units.Hartree)
    as_forces = read_ani_h5(tmp_path / "a.h5", energy_shift_eV_per_atom=72.0, forces_are="forces")
    assert as_forces[0]["F"][0, 0] == pytest.approx(0.01 * units.Hartree)


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
                                        force=np.zeros((1, 32, 3)))), 1.6, close_contacts="error")
    assert "close.h5" in str(e.value) and "configuration 0" in str(e.value)


def test_empty_inputs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .h5 / .hdf5 files"):
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
    arr, prov = prepare("extxyz", str(_xyz(tmp_path / "ok.xyz", [a])), 1.6)
    assert prov["forces_are"] == "forces" and prov["close_contacts"]["count"] == 0
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


# --- force convention, force-sign check, close contacts, element count ------------------------------------

def _emt_configs(symbol="Al", n=8, rattle=0.1, a=None):
    """``n`` rattled 2x2x2 fcc cells of ``symbol`` labelled with ASE's EMT: (atoms, energy eV, forces eV/A)."""
    from ase.build import bulk

    out = []
    for seed in range(n):
        at = bulk(symbol, "fcc", a=a, cubic=True).repeat((2, 2, 2))
        at.rattle(rattle, seed=seed)
        at.calc = EMT()
        out.append((at, at.get_potential_energy(), at.get_forces()))
    return out


def _cosine(x, y):
    x, y = np.ravel(x), np.ravel(y)
    return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))


def _gradient_h5(path, configs, shift=72.0):
    """A pyanitools-layout file as ANI-Al stores it: Hartree energies, the energy GRADIENT under `force`."""
    at = configs[0][0]
    n_at = len(at)
    return _ani_file(path, n=len(configs),
                     coordinates=np.stack([c[0].positions for c in configs]),
                     species=np.array([s.encode() for s in at.get_chemical_symbols()]),
                     cell=np.stack([c[0].cell.array for c in configs]),
                     energy=np.array([(c[1] - shift * n_at) / units.Hartree for c in configs]),
                     force=np.stack([-c[2] / units.Hartree for c in configs]))


def test_ani_h5_gradients_load_as_forces_and_wrong_convention_stops(tmp_path):
    configs = _emt_configs()
    f = _gradient_h5(tmp_path / "ani_al.h5", configs)
    arrays, prov = prepare("ani_h5", str(f), 1.6, 72.0)  # default for ani_h5: gradients
    true_F = np.stack([c[2] for c in configs])
    assert _cosine(arrays["F"], true_F) > 0.999
    np.testing.assert_allclose(arrays["F"], true_F, atol=1e-9)
    np.testing.assert_allclose(arrays["E"], [c[1] for c in configs], atol=1e-9)
    assert prov["forces_are"] == "gradients" and prov["forces_are_chosen_by"] == "default for ani_h5"
    assert prov["force_sign_applied_on_load"] == -1
    assert prov["force_sign_check"]["verdict"] == "repel" and prov["force_sign_check"]["n_attract"] == 0
    with pytest.raises(DataError, match="forces point the wrong way") as e:
        prepare("ani_h5", str(f), 1.6, 72.0, forces_are="forces")
    assert "ani_al.h5" in str(e.value) and "data.forces_are: gradients" in str(e.value)


def test_extxyz_forces_and_flipped_copy(tmp_path):
    from ase.calculators.singlepoint import SinglePointCalculator

    configs = _emt_configs(n=8)

    def frames(sign):
        out = []
        for at, E, F in configs:
            at = at.copy()
            at.calc = SinglePointCalculator(at, energy=E, forces=sign * F)
            out.append(at)
        return out

    true_F = np.stack([c[2] for c in configs])
    good = _xyz(tmp_path / "forces.xyz", frames(+1))
    arrays, prov = prepare("extxyz", str(good), 1.6)
    assert _cosine(arrays["F"], true_F) > 0.999 and prov["forces_are_chosen_by"] == "default for extxyz"
    flipped = _xyz(tmp_path / "gradients.xyz", frames(-1))
    with pytest.raises(DataError, match="forces point the wrong way") as e:
        prepare("extxyz", str(flipped), 1.6)
    assert "gradients.xyz" in str(e.value) and "data.forces_are: gradients" in str(e.value)
    arrays, prov = prepare("extxyz", str(flipped), 1.6, forces_are="gradients")
    assert _cosine(arrays["F"], true_F) > 0.999 and prov["forces_are_chosen_by"] == "config"
    with pytest.raises(DataError, match="data.forces_are: forces"):
        prepare("extxyz", str(good), 1.6, forces_are="gradients")


def test_force_sign_check_generated_data(tiny_data):
    from tsmlip.data.dataset import force_sign_summary, scan_configurations

    _, _, arr = tiny_data
    _, score = scan_configurations(arr, 1.6)
    assert force_sign_summary(score, arr["F"])["verdict"] == "repel"
    flipped = dict(arr, F=-arr["F"])
    with pytest.raises(DataError, match="wrong way") as e:
        validate_arrays(flipped, "generated EMT data", 1.6)
    assert "+dE/dR" in str(e.value)
    # forces unrelated to the geometry: no verdict, no error
    noise = dict(arr, F=np.random.default_rng(0).normal(size=arr["F"].shape) * (arr["Z"] != 0)[..., None])
    assert validate_arrays(noise, "noise", 1.6)["force_sign"]["verdict"] == "inconclusive"


def test_close_contact_policies(tmp_path):
    import json

    configs = _emt_configs(n=8)
    at = configs[3][0]
    at.positions[1] = at.positions[0] + [1.2, 0.0, 0.0]  # configuration 3: a 1.2 A contact
    at.calc = EMT()
    configs[3] = (at, at.get_potential_energy(), at.get_forces())
    f = _gradient_h5(tmp_path / "al.h5", configs)
    with pytest.raises(DataError, match="configuration 3") as e:
        prepare("ani_h5", str(f), 1.6, 72.0, close_contacts="error")
    assert "al.h5" in str(e.value) and "[3]" in str(e.value) and "1.200 A" in str(e.value)

    arrays, prov = prepare("ani_h5", str(f), 1.6, 72.0)  # ani_h5 default: keep
    cc = prov["close_contacts"]
    assert len(arrays["E"]) == 8 and cc["policy"] == "keep" and cc["policy_chosen_by"] == "default for ani_h5"
    assert cc["count"] == 1 and cc["indices"] == [3] and not cc["dropped"]

    out = tmp_path / "out" / "dataset.npz"
    assert _prepare_cli(f, out, source="ani_h5", close_contacts="drop") == 0
    prov = json.loads((out.parent / "provenance.json").read_text())
    cc = prov["close_contacts"]
    assert prov["n_configs"] == 7 and cc["n_configs_read"] == 8 and cc["dropped"] and cc["indices"] == [3]
    assert cc["configurations"][0]["min_distance_A"] == pytest.approx(1.2, abs=1e-3)
    assert prov["forces_are"] == "gradients" and prov["force_sign_check"]["verdict"] == "repel"
    kept = [0, 1, 2, 4, 5, 6, 7]
    with np.load(out) as z:
        np.testing.assert_allclose(z["F"], np.stack([configs[i][2] for i in kept]), atol=1e-9)

    # extended XYZ defaults to error
    from ase.calculators.singlepoint import SinglePointCalculator
    frames = []
    for a_, E, F in configs:
        a_ = a_.copy()
        a_.calc = SinglePointCalculator(a_, energy=E, forces=F)
        frames.append(a_)
    with pytest.raises(DataError, match=r"configuration 3 \(.*frame 3\)"):
        prepare("extxyz", str(_xyz(tmp_path / "close.xyz", frames)), 1.6)


def test_multi_element_data_stop_early_when_md_needs_one_element(tmp_path):
    from ase.calculators.singlepoint import SinglePointCalculator

    frames = []
    for at, _, _ in _emt_configs(n=8):
        at = at.copy()
        at.numbers[::2] = 29  # an Al-Cu alloy
        at.calc = EMT()
        E, F = at.get_potential_energy(), at.get_forces()
        at.calc = SinglePointCalculator(at, energy=E, forces=F)
        frames.append(at)
    f = _xyz(tmp_path / "alcu.xyz", frames)
    arrays, _ = prepare("extxyz", str(f), 1.6)  # training alone works
    assert sorted(np.unique(arrays["Z"])) == [13, 29]
    with pytest.raises(DataError, match="single-element systems only") as e:
        prepare("extxyz", str(f), 1.6, single_element_for=["md.element", "rdf.element"])
    assert "md.element and rdf.element" in str(e.value) and "Al, Cu" in str(e.value)


def test_emt_provenance_records_the_convention(tiny_data):
    import json

    path, _, _ = tiny_data
    prov = json.loads((path.parent / "provenance.json").read_text())
    assert prov["forces_are"] == "forces" and prov["force_sign_check"]["verdict"] == "repel"


# --- issue 23: inputs by content, duplicates, species that are not elements, unit mistakes --------------------

def _frames(configs, e_scale=1.0, f_scale=1.0, energy=None):
    from ase.calculators.singlepoint import SinglePointCalculator

    out = []
    for at, E, F in configs:
        at = at.copy()
        at.calc = SinglePointCalculator(at, energy=(E if energy is None else energy(at, E)) * e_scale,
                                        forces=F * f_scale)
        out.append(at)
    return out


def test_ani_folder_reads_h5_and_hdf5_and_records_checksums(tmp_path):
    import hashlib

    configs = _emt_configs(n=8)
    d = tmp_path / "ani"
    d.mkdir()
    _gradient_h5(d / "a.h5", configs[:4])
    _gradient_h5(d / "b.hdf5", configs[4:])
    arrays, prov = prepare("ani_h5", str(d), 1.6, 72.0)
    assert len(arrays["E"]) == 8
    assert [s["path"] for s in prov["sources"]] == ["a.h5", "b.hdf5"]
    assert prov["sources"][1]["sha256"] == hashlib.sha256((d / "b.hdf5").read_bytes()).hexdigest()


def test_duplicates_error_or_drop_with_count(tmp_path):
    import json

    configs = _emt_configs(n=6)
    twin = configs[1][0].copy()
    order = np.random.default_rng(0).permutation(len(twin))  # the same configuration, atoms reordered
    twin = twin[order]
    frames = _frames(configs) + _frames([(twin, configs[1][1], configs[1][2][order])]) + _frames(configs[2:3])
    f = _xyz(tmp_path / "twice.xyz", frames)
    with pytest.raises(DataError, match=r"configuration 6 .*repeats configuration 1") as e:
        prepare("extxyz", str(f), 1.6)
    assert "2 such duplicates" in str(e.value) and "data.duplicates: drop" in str(e.value)
    arrays, prov = prepare("extxyz", str(f), 1.6, duplicates="drop")
    assert len(arrays["E"]) == 6 and prov["duplicates"]["count"] == 2 and prov["duplicates"]["dropped"] == [6, 7]
    out = tmp_path / "o" / "dataset.npz"
    assert _prepare_cli(f, out, source="extxyz", duplicates="drop") == 0
    prov = json.loads((out.parent / "provenance.json").read_text())
    assert prov["n_configs"] == 6 and prov["duplicates"]["pairs"][0] == {"index": 6, "repeats": 1}
    # a near duplicate (every atom moved by 1e-4 A) counts too; a rattled configuration does not
    near = configs[0][0].copy()
    near.positions += 1e-4
    far = configs[0][0].copy()
    far.rattle(0.01, seed=9)
    from tsmlip.data.dataset import find_duplicates
    arr = pad_configurations([{"Z": a.numbers, "R": a.positions, "cell": a.cell.array, "E": 0.0,
                               "F": np.zeros((len(a), 3))} for a in (configs[0][0], near, far)])
    assert find_duplicates(arr) == [(1, 0)]


def test_species_that_are_not_elements_are_refused(tmp_path):
    configs = _emt_configs(n=2)
    frames = _frames(configs)
    frames[1].numbers[-1] = 0  # ASE writes and reads it as 'X'
    with pytest.raises(DataError, match=r"frame 1 atom 31 has species 'X', not a chemical element"):
        prepare("extxyz", str(_xyz(tmp_path / "x.xyz", frames)), 1.6)
    with pytest.raises(DataError, match="'X' is not a chemical element"):
        prepare("ani_h5", str(_ani_file(tmp_path / "x.h5", species=np.array([b"Al"] * 31 + [b"X"]))), 1.6)


@pytest.mark.parametrize("mistake, message", [
    ("kcal", "eV/atom; likely: energies in kcal/mol instead of eV"),
    # the check reads the median configuration (a mean of 7.5 eV/A over all of them)
    ("forces7.5", r"7\.\d+ eV/A \(the median over the configurations\), above the plausible 5.0 eV/A; likely: forces "
                  r"in kcal/mol/A instead of eV/A"),
    ("forces_kcal", "forces in kcal/mol/A instead of eV/A"),
    ("zero_forces", "every force on Al atoms is exactly 0"),
])
def test_unit_mistakes_in_extxyz_are_named(tmp_path, mistake, message):
    configs = _emt_configs(n=8)
    # EMT energies are ~0 eV/atom; give them a DFT-like cohesive offset of -3.6 eV/atom
    energy = (lambda at, E: E - 3.6 * len(at))
    frames = {"kcal": lambda: _frames(configs, e_scale=KCAL, energy=energy),
              "forces7.5": lambda: _frames(configs, f_scale=7.5 / _mean_force(configs)),
              "forces_kcal": lambda: _frames(configs, f_scale=KCAL),
              "zero_forces": lambda: _frames(configs, f_scale=0.0)}[mistake]()
    f = _xyz(tmp_path / f"{mistake}.xyz", frames)
    with pytest.raises(DataError, match=message) as e:
        prepare("extxyz", str(f), 1.6)
    assert f"{mistake}.xyz" in str(e.value) and ("data.checks: false" in str(e.value))
    if mistake != "zero_forces":  # the sign check needs forces
        _, prov = prepare("extxyz", str(f), 1.6, checks=False)  # exotic data: the switch
        assert prov["plausibility"]["checked"] is False


KCAL = 23.0605


def _mean_force(configs):
    return float(np.mean([np.linalg.norm(F, axis=1).mean() for _, _, F in configs]))


def test_unit_mistakes_in_ani_h5_are_named(tmp_path):
    configs = _emt_configs(n=8)
    at = configs[0][0]
    n = len(at)
    # eV stored where the layout expects Hartree (DFT-like -75.6 eV/atom before the 72 eV/atom shift)
    ev = _gradient_h5(tmp_path / "ev.h5", configs)
    with h5py.File(ev, "r+") as h5:
        g = h5["Al/group_0"]
        g["energy"][...] = np.asarray(g["energy"]) * units.Hartree
    with pytest.raises(DataError, match="energies in eV stored where the ANI-Al layout expects Hartree"):
        prepare("ani_h5", str(ev), 1.6, 72.0)
    # a per-atom energy stored as the total
    per_atom = _gradient_h5(tmp_path / "per_atom.h5", configs)
    with h5py.File(per_atom, "r+") as h5:
        g = h5["Al/group_0"]
        g["energy"][...] = np.asarray(g["energy"]) / n
    with pytest.raises(DataError, match="per-atom energies stored as the totals"):
        prepare("ani_h5", str(per_atom), 1.6, 72.0)
    # the right file passes and records the numbers
    _, prov = prepare("ani_h5", str(_gradient_h5(tmp_path / "ok.h5", configs)), 1.6, 72.0)
    assert prov["plausibility"]["checked"] and abs(prov["plausibility"]["median_energy_per_atom_eV"]) < 1


def test_one_file_hash(tmp_path):
    """A file's fingerprint (training's checkpoint key, split.json) is its sha256 from the one hashing helper."""
    import hashlib

    from tsmlip.data.split import dataset_fingerprint
    from tsmlip.io_utils import sha256_file

    f = tmp_path / "x.bin"
    f.write_bytes(bytes(range(256)) * 5000)  # more than one 1 MiB chunk
    assert sha256_file(f) == hashlib.sha256(f.read_bytes()).hexdigest()
    assert dataset_fingerprint(f) == sha256_file(f)[:16]


# --- issue 36: data checks that know the element -------------------------------------------------------------

@pytest.mark.parametrize("unit, factor", [("Bohr", 1 / units.Bohr), ("nm", 0.1)])
def test_a_whole_file_in_other_length_units_is_named_with_its_frame(tmp_path, unit, factor):
    """Every frame scaled alike passes the dataset-relative checks; the element's own nearest-neighbour distance
    (fcc Al: 2.86 A) names the unit and the frame."""
    frames = _frames(_emt_configs(n=6))
    for at in frames:
        at.set_cell(at.cell.array * factor, scale_atoms=True)
    f = _xyz(tmp_path / f"{unit}.xyz", frames)
    with pytest.raises(DataError, match=rf"configuration 0 \(.*{unit}.xyz frame 0\).* the element's 2.86 A \(fcc Al"
                                        rf".*likely: positions and cell in {unit} instead of Angstrom") as e:
        prepare("extxyz", str(f), 1.6 * factor)
    assert "6 of 6 configurations" in str(e.value)
    if unit == "Bohr":  # exotic data: the switch (a cell of < 1 A, nm, would make the neighbour searches crawl)
        _, prov = prepare("extxyz", str(f), 1.6 * factor, checks=False)
        assert prov["plausibility"]["checked"] is False


def test_generated_data_pass_the_element_check(tiny_data):
    from tsmlip.data.dataset import NN_RATIO_RANGE, check_element_lengths

    ratio = check_element_lengths(tiny_data[2], "tiny")["ratio"]
    lo, hi = NN_RATIO_RANGE
    assert lo + 0.05 < ratio.min() and ratio.max() < hi - 0.3


def test_a_shifted_copy_is_a_duplicate_and_cannot_straddle_the_split(tmp_path):
    configs = _emt_configs(n=5)
    twin = configs[2][0].copy()
    twin.positions += (0.5, 0.3, 0.1)  # the same structure, another origin (and atoms reordered)
    order = np.random.default_rng(1).permutation(len(twin))
    twin = twin[order]
    twin.wrap()
    frames = _frames(configs) + _frames([(twin, configs[2][1], configs[2][2][order])])
    f = _xyz(tmp_path / "shifted.xyz", frames)
    with pytest.raises(DataError, match=r"configuration 5 .*repeats configuration 2"):
        prepare("extxyz", str(f), 1.6)
    from tsmlip.data.dataset import find_duplicates
    arr = pad_configurations([{"Z": a.numbers, "R": a.positions, "cell": a.cell.array, "E": 0.0,
                               "F": np.zeros((len(a), 3))} for a in frames])
    assert find_duplicates(arr) == [(5, 2)]
    # the split step refuses a dataset made elsewhere that holds the shifted twin
    from tsmlip.data.split import main as split_main
    np.savez(tmp_path / "dataset.npz", **arr)
    cfg = {"split": {"valid_fraction": 0.2, "test_fraction": 0.2, "seed": 1}, "training": {"train_eval_fraction": 1.0}}
    assert split_main(["--config-json", json.dumps(cfg), "--dataset", str(tmp_path / "dataset.npz"),
                       "--out", str(tmp_path / "split.npz")]) == 1


def test_a_nan_position_is_named_as_such(tmp_path):
    frames = _frames(_emt_configs(n=3))
    f = _xyz(tmp_path / "nan.xyz", frames)
    lines = f.read_text().splitlines()
    header = 2 + len(frames[0])  # frame 1's first atom line
    parts = lines[header + 2].split()
    parts[1] = "nan"
    lines[header + 2] = " ".join(parts)
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"frame 1: its positions hold NaN/inf values \(atom 0\)"):
        prepare("extxyz", str(f), 1.6)


def test_one_frame_in_mev_is_named_with_its_frame(tmp_path):
    configs = _emt_configs(n=8)
    energy = (lambda at, E: E - 3.6 * len(at))
    frames = _frames(configs, energy=energy)
    meV = _frames(configs[5:6], e_scale=1000.0, f_scale=1000.0, energy=energy)[0]
    frames[5] = meV
    f = _xyz(tmp_path / "one_mev.xyz", frames)
    with pytest.raises(DataError, match=r"configuration 5 \(.*frame 5\) does not fit.*likely: energies and forces "
                                        r"in meV"):
        prepare("extxyz", str(f), 1.6)
