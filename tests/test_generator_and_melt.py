"""The embedded EMT data cover what the models are used for, and the liquid-RDF melt check works.

- the generator makes every family in its configured share, liquids at liquid densities and
  temperatures, and close contacts inside the configured distance range;
- the melt indicator (production-stage MSD / d_nn^2) separates a crystal from a liquid.
"""

import numpy as np
import pytest
from ase.calculators.emt import EMT

from conftest import BASE_CONFIG, TEST_CONFIG
from tsmlip import rdf
from tsmlip.config import load_config
from tsmlip.data import emt
from tsmlip.data.coverage import coverage_summary, per_config

@pytest.fixture(scope="module")
def generated():
    cfg = load_config(BASE_CONFIG, TEST_CONFIG)["data"]["emt"]
    cfg = dict(cfg, n_configs=16, mix={"crystal": 1, "strained": 1, "liquid": 1, "close_contact": 1},
               snapshots_per_trajectory=2)
    configs, summary = emt.generate(cfg, progress=False)
    return cfg, emt.to_arrays(configs), summary


def test_family_counts_add_up():
    counts = emt.family_counts(10, {"crystal": 0.35, "strained": 0.15, "liquid": 0.35, "close_contact": 0.15})
    assert sum(counts.values()) == 10 and counts["liquid"] >= 3 and counts["strained"] >= 1
    assert emt.family_counts(7, {"liquid": 1})["liquid"] == 7


def test_every_family_present_within_ranges(generated):
    cfg, arrays, summary = generated
    kinds = arrays["config_kind"]
    assert summary["family_counts"] == {"crystal": 4, "strained": 4, "liquid": 4, "close_contact": 4}
    assert [int((kinds == i).sum()) for i in range(len(emt.FAMILIES))] == [4, 4, 4, 4]
    pc = per_config(arrays)
    liquid = kinds == emt.FAMILIES.index("liquid")
    lo, hi = cfg["liquid"]["density_g_cm3"]
    assert np.all((pc["density_g_cm3"][liquid] > lo - 1e-6) & (pc["density_g_cm3"][liquid] < hi + 1e-6))
    t_lo, t_hi = cfg["liquid"]["temperatures_K"]
    assert np.all((arrays["T_K"][liquid] >= t_lo) & (arrays["T_K"][liquid] <= t_hi))
    close = kinds == emt.FAMILIES.index("close_contact")
    d_lo, d_hi = cfg["close_contact"]["distance_A"]
    assert np.all((pc["min_pair_distance_A"][close] >= d_lo - 1e-6) & (pc["min_pair_distance_A"][close] <= d_hi + 1e-6))
    # the close contacts reach below every crystal's closest pair
    crystal = kinds == emt.FAMILIES.index("crystal")
    assert pc["min_pair_distance_A"][close].min() < pc["min_pair_distance_A"][crystal].min()
    # strained crystals span compression and expansion around the lattice constant
    strained = kinds == emt.FAMILIES.index("strained")
    assert np.isfinite(pc["median_nn_distance_A"][strained]).all()
    # labels are EMT's: per-atom energies sum to the total
    n = arrays["n_atoms"]
    for c in range(len(n)):
        assert arrays["ref_atom_E"][c, :n[c]].sum() == pytest.approx(arrays["E"][c], abs=1e-8)
    cov = coverage_summary(arrays, families=emt.FAMILIES)
    assert cov["close_contact"]["n_configs"] == 4 and cov["all"]["min_pair_distance_A"]["q00"] >= d_lo - 1e-6


def test_push_close_contacts_exact_distance():
    from ase.build import bulk
    from ase.neighborlist import neighbor_list

    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 2, 2))
    made = emt.push_close_contacts(atoms, np.random.default_rng(0), 2, (1.8, 2.0), min_other_A=1.8)
    assert len(made) == 2
    d = neighbor_list("d", atoms, 2.1)
    assert d.min() == pytest.approx(min(made), abs=1e-6) and d.min() >= 1.8 - 1e-9


def _settings(**kw):
    s = dict(load_config(BASE_CONFIG, TEST_CONFIG)["rdf"])
    s.update(element="Al", density_g_cm3=2.3, supercell=[2, 2, 2], r_max_A=4.0, n_bins=40, melt_steps=0, equilibration_steps=20,
             production_steps=150, sample_interval=50, progress_every=1000)
    s.update(kw)
    return s


def test_melt_indicator_separates_crystal_from_liquid():
    d_solid = rdf.nearest_neighbour_distance(2.70)
    assert d_solid == pytest.approx(4.05 / np.sqrt(2), rel=0.01)
    crystal = rdf.run_liquid_md(EMT(), _settings(density_g_cm3=2.70, temperature_K=300.0, rattle_A=0.0),
                                log=lambda m: None)
    liquid = rdf.run_liquid_md(EMT(), _settings(density_g_cm3=2.3, melt_temperature_K=3000.0, melt_steps=150,
                                                temperature_K=1500.0), log=lambda m: None)
    m_crystal = rdf.melt_indicator(crystal.msd_A2["production"], d_solid)
    m_liquid = rdf.melt_indicator(liquid.msd_A2["production"], rdf.nearest_neighbour_distance(2.3))
    threshold = load_config(BASE_CONFIG)["rdf"]["melt_min_msd_ratio"]
    assert m_crystal < threshold / 3 < threshold < m_liquid, (m_crystal, m_liquid)
    assert set(liquid.msd_A2) == {"melt", "equilibrate", "production"}
    assert 1.5 < liquid.min_pair_distance_A < 2.6
