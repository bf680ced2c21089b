"""Every configuration checked, not only the median (issue: one bad configuration passes the data checks), and the
data-quality table of the configurations the teacher cannot fit."""
import numpy as np
import pytest

from tsmlip.data.dataset import DataError, scan_configurations
from tsmlip.data.plausibility import pair_consistency, plausibility
from tsmlip.data_quality import quality_rows

KCAL, HARTREE = 23.0605, 27.211386


def _copy(arrays):
    return {k: np.array(v, copy=True) for k, v in arrays.items()}


def _check(arrays, **kw):
    return plausibility(arrays, "data.xyz", min_dist=scan_configurations(arrays, 1.6)[0], **kw)


def _dft_like(arrays):
    """The EMT energies shifted to DFT-like totals (-3.7 eV/atom): the unit mistakes then change the energy per
    atom a lot, as in real data."""
    a = _copy(arrays)
    a["E"] = a["E"] - 3.7 * a["n_atoms"]
    return a


def test_clean_data_pass_every_per_configuration_check(tiny_data):
    summary = _check(_copy(tiny_data[2]))
    pc = summary["per_configuration"]
    assert pc["outliers"] == [] and pc["force_geometry_check"]["inconsistent"] == []
    assert pc["force_geometry_check"]["n_checked"] == len(tiny_data[2]["E"])
    assert pc["force_geometry_check"]["lowest_z"] > 3.0
    _check(_dft_like(tiny_data[2]))  # the shift alone is no fault


@pytest.mark.parametrize("unit, factor, message", [
    ("kcal/mol", KCAL, r"configuration 5 .*kcal/mol"),
    ("Hartree", 1 / HARTREE, r"configuration 5 .*Hartree"),
])
def test_one_frame_in_other_units_is_named(tiny_data, unit, factor, message):
    for arrays in (_copy(tiny_data[2]), _dft_like(tiny_data[2])):
        arrays["E"][5] *= factor
        arrays["F"][5] *= factor
        with pytest.raises(DataError, match=message) as e:
            _check(arrays)
        assert "data.checks: false" in str(e.value)


def test_one_energy_in_kcal_per_mol_alone_is_named(tiny_data):
    a = _copy(tiny_data[2])
    a["E"][20] *= KCAL
    with pytest.raises(DataError, match=r"configuration 20 .*energy in kcal/mol"):
        _check(a)


def test_per_atom_energies_stored_as_totals_in_dft_like_data(tiny_data):
    a = _dft_like(tiny_data[2])
    a["E"] = a["E"] / a["n_atoms"]  # the file holds per-atom energies under the total's key
    assert -20 < np.median(a["E"] / a["n_atoms"]) < 5  # the dataset-level range alone lets it pass
    with pytest.raises(DataError, match="per-atom energies stored as the totals"):
        _check(a)
    b = _dft_like(tiny_data[2])  # one configuration so
    b["E"][3] = b["E"][3] / b["n_atoms"][3]
    with pytest.raises(DataError, match="configuration 3 .*per-atom energy stored as the configuration's total"):
        _check(b)


def test_one_length_unit_mistake_is_named(tiny_data):
    a = _copy(tiny_data[2])
    a["R"][3] /= 0.529177
    a["cell"][3] /= 0.529177
    with pytest.raises(DataError, match="configuration 3 .*Bohr"):
        _check(a)


def test_permuted_force_rows_of_one_frame_and_of_every_frame(tiny_data):
    rng = np.random.default_rng(1)
    a = _copy(tiny_data[2])
    n = a["n_atoms"][7]
    a["F"][7, :n] = a["F"][7, :n][rng.permutation(n)]
    with pytest.raises(DataError, match=r"configuration 7: its forces do not fit its geometry.*permuted rows"):
        _check(a)
    b = _copy(tiny_data[2])
    for c, n in enumerate(b["n_atoms"]):
        b["F"][c, :n] = b["F"][c, :n][rng.permutation(n)]
    with pytest.raises(DataError, match="do not fit its geometry") as e:
        _check(b)
    assert "such configurations of 24 checked" in str(e.value)
    z = pair_consistency(b)["z"]
    assert (z < 2.5).mean() > 0.9  # nearly every permuted frame is caught


def test_checks_false_records_only(tiny_data):
    a = _copy(tiny_data[2])
    a["E"][5] *= KCAL
    a["F"][5] *= KCAL
    n = a["n_atoms"][7]
    a["F"][7, :n] = a["F"][7, :n][::-1]
    summary = _check(a, check=False)
    pc = summary["per_configuration"]
    assert summary["checked"] is False
    assert [o["index"] for o in pc["outliers"]] == [5] and "kcal/mol" in pc["outliers"][0]["causes"][0]
    assert [c["index"] for c in pc["force_geometry_check"]["inconsistent"]] == [7]


def test_prepare_refuses_one_kcal_frame_in_an_extxyz_file(tmp_path, tiny_data):
    import ase.io
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    from tsmlip.data.io import prepare

    arrays = tiny_data[2]
    frames = []
    for c, n in enumerate(arrays["n_atoms"]):
        at = Atoms(numbers=arrays["Z"][c, :n], positions=arrays["R"][c, :n], cell=arrays["cell"][c], pbc=True)
        s = KCAL if c == 11 else 1.0
        at.calc = SinglePointCalculator(at, energy=float(arrays["E"][c]) * s, forces=arrays["F"][c, :n] * s)
        frames.append(at)
    ase.io.write(tmp_path / "d.xyz", frames, format="extxyz")
    with pytest.raises(DataError, match=r"configuration 11 \(.*frame 11\) .*kcal/mol"):
        prepare("extxyz", str(tmp_path / "d.xyz"), 1.6)
    _, prov = prepare("extxyz", str(tmp_path / "d.xyz"), 1.6, checks=False)
    assert [o["index"] for o in prov["plausibility"]["per_configuration"]["outliers"]] == [11]


def test_data_quality_table_ranks_the_configuration_the_teacher_cannot_fit(tiny_data):
    arrays = tiny_data[2]
    rng = np.random.default_rng(0)
    real = arrays["Z"] != 0
    # a teacher with small errors everywhere, and the labels of configuration 9 wrong (the teacher cannot fit them)
    pred = {"E": arrays["E"] + rng.normal(0, 0.01, len(arrays["E"])) * arrays["n_atoms"],
            "F": (arrays["F"] + rng.normal(0, 0.02, arrays["F"].shape)) * real[..., None]}
    bad = _copy(arrays)
    bad["F"][9] *= 3.0
    split = {"train": np.arange(0, 16), "valid": np.arange(16, 20), "test": np.arange(20, 24)}
    rows = quality_rows(pred, bad, split)
    assert rows[0]["index"] == 9 and rows[0]["flagged"] and rows[0]["split"] == "train"
    assert sum(r["flagged"] for r in rows) == 1
    assert rows[0]["force_rmse_over_spread"] > 1.0 and [r["rank"] for r in rows] == list(range(1, 25))
