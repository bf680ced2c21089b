"""The claims engine's statistics on synthetic tables whose truth is known (no training: seconds)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tsmlip.claims import stats as cs
from tsmlip.claims.claim import ENERGY, FORCE, METRIC_NAMES, RDF_TEACHER, Claim
from tsmlip.claims.cost import cost_vs_teacher_claims, scaling_claims
from tsmlip.claims.rows import born_again_claims, noise_floor_test, paired_claims, pairs, rdf_claims
from tsmlip.claims.table import all_claims
from tsmlip.claims.verdicts import (FAILS, HOLDS, INCONCLUSIVE, INDISTINGUISHABLE, UNDECIDED, UNDECIDED_BUDGET_FLIPPED,
                                    UNDECIDED_BUDGET_MOVED, UNDECIDED_NO_BUDGET_CHECK)
from conftest import BASE_CONFIG
from tsmlip.config import load_config

AGG = load_config(BASE_CONFIG)["aggregate"]


def sweep(effect: float, noise: float, n_seeds: int = 4, archs=("w8-s4-l1",), seed_shift=None, rng_seed: int = 0,
          converged=True) -> pd.DataFrame:
    """Controls and students of ``archs`` x ``n_seeds``: the student's force RMSE is ``(1 - effect)`` times its
    control's, times ``1 + N(0, noise)``; ``seed_shift[seed]`` adds an effect shared by every architecture of
    that seed (correlation within a seed)."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for arch in archs:
        for seed in range(1, n_seeds + 1):
            control = 0.2 * (1 + 0.02 * rng.standard_normal())
            shift = seed_shift[seed] if seed_shift else 0.0
            student = control * (1 - effect - shift) * (1 + noise * rng.standard_normal())
            for kind, value in (("control", control), ("student", student)):
                rows.append({"model_id": f"{kind}/{arch}/seed{seed}", "kind": kind, "arch": arch, "seed": seed,
                             FORCE: value, "converged": converged,
                             "stopped_by": "patience" if converged else "max_epochs"})
    return pd.DataFrame(rows)


def budget_check(models: pd.DataFrame, changes: dict, stopped_by: str = "patience") -> pd.DataFrame:
    """``models`` with the budget-check columns of aggregate.add_budget_checks: ``changes[model_id]`` is the
    relative change of that model's test force RMSE at the doubled budget."""
    out = models.copy()
    base = out[FORCE].astype(float)
    change = out["model_id"].map(changes).astype(float)
    out[f"budget_check_{FORCE}"] = base * (1 + change)
    out["budget_check_relative_change"] = change
    out["budget_check_stopped_by"] = np.where(change.notna(), stopped_by, None)
    return out


def pooled(models: pd.DataFrame, **kw) -> Claim:
    return paired_claims(models, "s", "students have lower force RMSE", "force", "control", "student", FORCE,
                                AGG, **kw)[0]


# ------------------------------------------------------------------------------------------------ the rule


def test_real_ten_percent_effect_with_four_seeds_holds():
    row = pooled(sweep(0.10, 0.01))
    assert row.n == 4 and row.unit_of_n == "seeds"
    assert row.verdict == HOLDS
    assert row.ci_low < 0.10 < row.ci_high and row.ci_low > 0
    assert row.detectable_effect < 0.10  # this run could see a 10 % effect


def test_zero_effect_with_noise_is_inconclusive_and_says_what_it_could_detect():
    row = pooled(sweep(0.0, 0.05, rng_seed=3))
    assert row.verdict == INCONCLUSIVE
    assert row.ci_low < 0 < row.ci_high
    assert row.detectable_effect > abs(row.effect) and row.detectable_effect > 0.05
    # more seeds, same noise: a smaller detectable effect
    more = pooled(sweep(0.0, 0.05, n_seeds=12, rng_seed=3))
    assert more.detectable_effect < row.detectable_effect


def test_detectable_effect_has_the_configured_power():
    se, df, alpha, power = 0.02, 3, 0.05, 0.8
    d = cs.detectable_shift(se, df, alpha, power)
    tc = stats.t.ppf(1 - alpha / 2, df)
    assert stats.nct.sf(tc, df, d / se) + stats.nct.cdf(-tc, df, d / se) == pytest.approx(power, abs=1e-6)
    # many degrees of freedom: the normal approximation (z_0.975 + z_0.8) * se
    assert cs.detectable_shift(se, 10_000, alpha, power) == pytest.approx(2.8016 * se, rel=1e-3)
    assert math.isnan(cs.detectable_shift(se, 0, alpha, power))


def test_equivalent_pair_passes_and_thirty_percent_fails_the_equivalence_test():
    same = pooled(sweep(0.0, 0.01), equivalence=True)
    assert same.verdict == HOLDS and same.test.startswith("TOST")
    assert -AGG["equivalence_margin"] < same.ci_low and same.ci_high < AGG["equivalence_margin"]
    assert same.ci_level == pytest.approx(1 - 2 * (1 - AGG["confidence"]))
    far = pooled(sweep(0.30, 0.01), equivalence=True)
    assert far.verdict == FAILS and far.ci_low > AGG["equivalence_margin"]
    # unpaired (Born-Again vs several teacher seeds)
    teacher = [0.100, 0.101, 0.099, 0.1005]
    assert cs.equivalence_two_sample(teacher, [0.1002, 0.0995, 0.1003], 0.1, 0.95, 0.8, "t").verdict == HOLDS
    assert cs.equivalence_two_sample(teacher, [0.070, 0.071, 0.069], 0.1, 0.95, 0.8, "t").verdict == FAILS
    noisy = cs.equivalence_two_sample(teacher, [0.08, 0.12, 0.10], 0.1, 0.95, 0.8, "t")
    assert noisy.verdict == INCONCLUSIVE and noisy.detectable > 0.1


def test_holm_adjusts_a_family():
    assert cs.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert cs.holm([0.5]) == pytest.approx([0.5])
    adj = cs.holm([0.02, math.nan, 0.01])
    assert adj[0] == pytest.approx(0.02) and math.isnan(adj[1]) and adj[2] == pytest.approx(0.02)


def test_holm_turns_a_borderline_family_member_inconclusive():
    borderline = [0.05, 0.08, 0.01, 0.06]  # one architecture's relative differences, four seeds
    alone = cs.one_sample(borderline, 0.0, 0.95, 0.8, "t")
    assert alone.verdict == HOLDS and 0.0167 < alone.p_value < 0.05
    rows = []
    d = {"w8-s4-l1": borderline, "w16-s4-l1": [0.04, -0.03, 0.01, -0.02], "w24-s4-l1": [-0.02, 0.03, 0.0, 0.01]}
    for arch, values in d.items():
        for seed, v in enumerate(values, start=1):
            rows += [{"model_id": f"control/{arch}/seed{seed}", "kind": "control", "arch": arch, "seed": seed,
                      FORCE: 1.0, "converged": True},
                     {"model_id": f"student/{arch}/seed{seed}", "kind": "student", "arch": arch, "seed": seed,
                      FORCE: 1.0 - v, "converged": True}]
    out = paired_claims(pd.DataFrame(rows), "s", "students better", "force", "control", "student", FORCE, AGG,
                               per_arch=True)
    member = [r for r in out if r.claim.endswith("(w8-s4-l1)")][0]
    assert member.p_value == pytest.approx(alone.p_value)
    assert member.p_adjusted == pytest.approx(3 * alone.p_value)
    assert member.verdict == INCONCLUSIVE
    assert member.ci_level == pytest.approx(1 - 0.05 / 3) and member.ci_low < 0 < member.ci_high


def test_per_seed_pooling_is_wider_than_treating_pairs_as_independent():
    archs = ("w4-s4-l1", "w8-s4-l1", "w16-s4-l1", "w24-s4-l1", "w32-s4-l1")
    shift = {1: 0.06, 2: -0.05, 3: 0.02, 4: -0.03}  # a seed's effect, shared by its architectures
    models = sweep(0.10, 0.005, archs=archs, seed_shift=shift)
    row = pooled(models)
    p = pairs(models, "control", "student", FORCE)
    naive = stats.ttest_1samp(p["d"], 0.0).confidence_interval(AGG["confidence"])
    assert row.n == 4 and len(p) == 20
    assert row.ci_high - row.ci_low > 2 * (naive.high - naive.low)
    assert row.effect == pytest.approx(p["d"].mean())  # balanced: the same point estimate


def test_born_again_uses_the_teacher_seeds_spread():
    def table(teacher_forces, ba_forces):
        rows = [{"model_id": f"teacher/w12-s8-l2/seed{i}", "kind": "teacher", "arch": "w12-s8-l2", "seed": i,
                 FORCE: f, ENERGY: 10 * f, "converged": True} for i, f in enumerate(teacher_forces)]
        rows += [{"model_id": f"born_again/w12-s8-l2/seed{i}", "kind": "born_again", "arch": "w12-s8-l2", "seed": i,
                  FORCE: f, ENERGY: 10 * f, "converged": True} for i, f in enumerate(ba_forces, start=1)]
        out = born_again_claims(pd.DataFrame(rows), AGG)
        return [r for r in out if r.metric == METRIC_NAMES[FORCE]][0]

    ba = (0.090, 0.091, 0.089)
    tight = table((0.100, 0.101, 0.099), ba)
    assert tight.verdict == HOLDS and tight.effect == pytest.approx(0.1) and tight.n == 3
    loose = table((0.07, 0.13, 0.10), ba)  # same mean, wide teacher spread: cannot tell
    assert loose.verdict == INCONCLUSIVE and loose.ci_high - loose.ci_low > tight.ci_high - tight.ci_low
    single = table((0.100,), ba)
    assert single.verdict == INCONCLUSIVE and math.isnan(single.ci_low)
    assert "one teacher seed" in single.detail and "no interval" in single.detail
    assert np.isfinite(single.detectable_effect)


def test_a_row_with_an_unconverged_model_is_never_decided():
    models = sweep(0.10, 0.01)
    assert pooled(models).verdict == HOLDS
    models.loc[models["model_id"] == "student/w8-s4-l1/seed2", ["converged", "stopped_by"]] = [False, "max_epochs"]
    models["late_relative_improvement"] = 0.0
    models.loc[models["model_id"] == "student/w8-s4-l1/seed2", "late_relative_improvement"] = 0.07
    table = all_claims(models, None, AGG)
    force = table[table["claim"] == "students have lower force RMSE than controls (all architectures)"].iloc[0]
    assert force["verdict"] == UNDECIDED and force["verdict_if_converged"] == HOLDS
    assert not force["all_converged"] and force["n_unconverged"] == 1
    assert "student/w8-s4-l1/seed2 (max_epochs, late improvement 7.0%)" in force["detail"]
    # whatever a row's statistics say, a row with an unconverged model is undecided
    assert (table.loc[table["n_unconverged"] > 0, "verdict"] == UNDECIDED).all()
    assert (table.loc[table["all_converged"], "verdict"] != UNDECIDED).all()
    # a table without convergence information counts every model as unconverged
    bare = all_claims(sweep(0.10, 0.01).drop(columns="stopped_by"), None, AGG).set_index("claim")
    assert bare.loc["students have lower force RMSE than controls (all architectures)", "n_unconverged"] == 8
    assert set(bare.loc[bare["n_unconverged"] > 0, "verdict"]) == {UNDECIDED}


# ------------------------------------------------------------------------------------------------ cost rows


def cost_table(blocks: bool = True) -> pd.DataFrame:
    """One model timed per architecture (md.per_architecture), blocks in md_ase_us_per_atom_step_all."""
    spec = {"w4-s4-l1": (500, 1.0, 0.30), "w8-s4-l1": (1500, 2.0, 0.20), "w12-s8-l2": (20_000, 8.0, 0.10)}
    rows = []
    for arch, (nw, us, force) in spec.items():
        kinds = ("teacher",) if arch == "w12-s8-l2" else ("control", "student")
        for kind in kinds:
            for seed in (1, 2):
                mid = f"{kind}/{arch}/seed{seed}"
                rows.append({
                    "model_id": mid, "kind": kind, "arch": arch, "seed": seed, "n_weights": nw, "converged": True,
                    FORCE: force * (0.8 if kind == "student" else 1.0) * (1 + 0.01 * seed),
                    "md_ase_us_per_atom_step": us,
                    "md_ase_us_per_atom_step_all": f"[{us * 0.99}, {us}, {us * 1.01}]" if blocks else math.nan,
                    "md_ase_device_name": "Test GPU",
                    # measured on the first teacher / student; the others carry its values
                    # (aggregate.share_cost_within_architecture)
                    "md_measured_on": f"{'teacher' if kind == 'teacher' else 'student'}/{arch}/seed1",
                })
    return pd.DataFrame(rows)


def test_cost_vs_teacher_uses_the_timed_blocks_when_each_architecture_was_timed_once():
    table = cost_table()
    rows = cost_vs_teacher_claims(table, AGG)
    assert len(rows) == 1
    row = rows[0]
    assert "w8-s4-l1" in row.comparison and "Test GPU" in row.claim  # the best student: 0.16 eV/A
    assert row.unit_of_n == "timed blocks of one run" and "3 teacher, 3 student" in row.test
    assert row.verdict == HOLDS and row.effect == pytest.approx(0.75, abs=0.01)  # 2 us vs 8 us
    assert "4 x faster" in row.detail and "run-to-run variation" in row.detail
    without = cost_vs_teacher_claims(cost_table(blocks=False), AGG)[0]
    assert without.verdict == INCONCLUSIVE and "no interval" in without.detail


def test_scaling_slope_over_architectures():
    rows = scaling_claims(cost_table(), AGG)
    assert len(rows) == 1 and rows[0].n == 3 and rows[0].unit_of_n == "architectures"
    expected = stats.linregress(np.log([500, 1500, 20_000]), np.log([1.0, 2.0, 8.0])).slope
    assert rows[0].effect == pytest.approx(expected)


def test_correlation_row_and_its_detectable_r():
    x = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    t = cs.correlation(x, 2 * x + 0.01 * np.array([1, -1, 1, -1, 1, -1]), 0.95, 0.8, "r")
    assert t.verdict == HOLDS and t.effect > 0.99 and t.ci_low > 0.9
    assert 0 < t.detectable < 1
    flat = cs.correlation(x, [1, 3, 2, 2, 3, 1], 0.95, 0.8, "r")
    assert flat.verdict == INCONCLUSIVE and flat.ci_low < 0 < flat.ci_high


# ------------------------------------------------------------------------------------------------ the gates

POOLED = "students have lower force RMSE than controls (all architectures)"
ARCHS2 = ("w4-s4-l1", "w16-s4-l1")


def gated(models: pd.DataFrame, floor=None) -> pd.DataFrame:
    return all_claims(models, None, AGG, rdf_noise_floor_A=floor).set_index("claim")


def test_a_row_all_of_whose_models_stopped_by_patience_with_a_passing_budget_check_is_decided():
    models = budget_check(sweep(0.10, 0.01, archs=ARCHS2), {"student/w4-s4-l1/seed1": -0.02,
                                                            "control/w4-s4-l1/seed1": 0.03,
                                                            "control/w16-s4-l1/seed1": -0.04})
    table = gated(models)
    row = table.loc[POOLED]
    assert row["verdict"] == HOLDS == row["verdict_if_converged"] == row["verdict_with_budget_check"]
    assert row["all_converged"] and row["n_budget_checked"] == 3
    assert row["budget_check_max_abs_change"] == pytest.approx(0.04)
    assert "budget check passed: 3 models (3 kind x architecture groups), largest change 4.0% (limit ±5%)" \
        in row["detail"]
    # a per-architecture row takes its own architecture's checks
    assert table.loc["students have lower force RMSE than controls (w16-s4-l1)", "n_budget_checked"] == 1
    force = table[table["metric"] == METRIC_NAMES[FORCE]]
    assert len(force) == 3 and (force["verdict"] == HOLDS).all()


def test_a_row_with_a_max_epochs_model_is_undecided_even_with_a_passing_budget_check():
    models = budget_check(sweep(0.10, 0.01), {"student/w8-s4-l1/seed1": -0.01, "control/w8-s4-l1/seed1": -0.01})
    capped = models["model_id"] == "control/w8-s4-l1/seed3"
    models.loc[capped, ["stopped_by", "converged"]] = ["max_epochs", True]  # the gate reads stopped_by
    row = gated(models).loc[POOLED]
    assert row["verdict"] == UNDECIDED and row["verdict_if_converged"] == HOLDS
    assert row["n_unconverged"] == 1 and "not converged: control/w8-s4-l1/seed3 (max_epochs)" in row["detail"]


def test_a_budget_check_that_moves_the_error_more_than_the_limit_leaves_the_row_undecided():
    limit = AGG["budget_check_max_relative_change"]
    assert limit == pytest.approx(0.05)
    # both members of a pair 8 % better at the doubled budget: the relative differences, so the verdict, stay
    models = budget_check(sweep(0.10, 0.01, archs=ARCHS2), {"student/w4-s4-l1/seed1": -0.08,
                                                            "control/w4-s4-l1/seed1": -0.08,
                                                            "control/w16-s4-l1/seed1": 0.01})
    table = gated(models)
    row = table.loc[POOLED]
    assert row["verdict"] == UNDECIDED_BUDGET_MOVED
    assert row["verdict_if_converged"] == row["verdict_with_budget_check"] == HOLDS  # no flip: the move alone
    assert "budget check moved the test force RMSE of control/w4-s4-l1/seed1 by -8.0%, student/w4-s4-l1/seed1 " \
           "by -8.0% (limit ±5%)" in row["detail"]
    # the architecture whose check moved is undecided; the other one's own check passed
    w4 = table.loc["students have lower force RMSE than controls (w4-s4-l1)"]
    assert w4["verdict"] == UNDECIDED_BUDGET_MOVED
    assert table.loc["students have lower force RMSE than controls (w16-s4-l1)", "verdict"] == HOLDS
    # exactly at the limit is not below it
    at = budget_check(sweep(0.10, 0.01), {"student/w8-s4-l1/seed1": limit})
    assert gated(at).loc[POOLED, "verdict"] == UNDECIDED_BUDGET_MOVED


def test_a_kind_x_architecture_checked_at_several_seeds_is_judged_by_its_seeds_mean():
    """Every seed checked (budget_check.seeds: all): the group's change is that of its seeds' mean test force RMSE.
    One seed 10 % better and one 6 % worse at the doubled budget (a chaotic trajectory each way) leave the mean
    inside the limit; every seed 6 % better moves it."""
    models = sweep(0.20, 0.01, archs=("w8-s4-l1",))
    ids = [f"{k}/w8-s4-l1/seed{s}" for k in ("student", "control") for s in range(1, 5)]
    chaotic = dict.fromkeys(ids, 0.0) | {"control/w8-s4-l1/seed1": -0.10, "control/w8-s4-l1/seed2": 0.06}
    checked = budget_check(models, chaotic)
    base = models.set_index("model_id")[FORCE]
    row = gated(checked).loc[POOLED]
    assert row["verdict"] == HOLDS and row["n_budget_checked"] == 8
    control = [f"control/w8-s4-l1/seed{s}" for s in range(1, 5)]
    mean_change = sum(base[m] * (1 + chaotic[m]) for m in control) / sum(base[m] for m in control) - 1
    assert abs(mean_change) < 0.05
    assert row["budget_check_max_abs_change"] == pytest.approx(abs(mean_change))
    assert "budget check passed: 8 models (2 kind x architecture groups)" in row["detail"]
    trend = budget_check(models, dict.fromkeys(ids, 0.0) | dict.fromkeys(control, -0.06))
    moved = gated(trend).loc[POOLED]
    assert moved["verdict"] == UNDECIDED_BUDGET_MOVED
    assert "budget check moved the test force RMSE of control/w8-s4-l1 (4 seeds' mean) by -6.0%" in moved["detail"]


def test_a_budget_check_that_flips_the_verdict_leaves_the_row_undecided():
    """A borderline row (p just under 0.05): one student 4.5 % worse at the doubled budget, inside the 5 % limit,
    turns it inconclusive."""
    d = {1: 0.05, 2: 0.08, 3: 0.01, 4: 0.06}
    rows = []
    for seed, v in d.items():
        rows += [{"model_id": f"control/w8-s4-l1/seed{seed}", "kind": "control", "arch": "w8-s4-l1", "seed": seed,
                  FORCE: 1.0, "stopped_by": "patience"},
                 {"model_id": f"student/w8-s4-l1/seed{seed}", "kind": "student", "arch": "w8-s4-l1", "seed": seed,
                  FORCE: 1.0 - v, "stopped_by": "patience"}]
    models = pd.DataFrame(rows)
    passing = gated(budget_check(models, {"student/w8-s4-l1/seed1": 0.001, "control/w8-s4-l1/seed1": 0.0}))
    assert passing.loc[POOLED, "verdict"] == HOLDS
    flipped = gated(budget_check(models, {"student/w8-s4-l1/seed1": 0.045, "control/w8-s4-l1/seed1": 0.0}))
    row = flipped.loc[POOLED]
    assert row["budget_check_max_abs_change"] == pytest.approx(0.045)  # inside the limit
    assert row["verdict"] == UNDECIDED_BUDGET_FLIPPED and row["verdict_if_converged"] == HOLDS
    assert row["verdict_with_budget_check"] == INCONCLUSIVE
    assert "budget check flipped the verdict: holds -> inconclusive" in row["detail"]


def test_a_row_whose_kinds_have_no_budget_check_is_undecided():
    models = sweep(0.10, 0.01)
    force = gated(models)
    force = force[force["metric"] == METRIC_NAMES[FORCE]]
    assert len(force) and (force["verdict"] == UNDECIDED_NO_BUDGET_CHECK).all()
    row = gated(models).loc[POOLED]
    assert row["verdict_if_converged"] == HOLDS and "no budget check of control, student" in row["detail"]
    # one of the two kinds checked: decided, and the detail says which kind was not
    one = gated(budget_check(models, {"student/w8-s4-l1/seed1": 0.01})).loc[POOLED]
    assert one["verdict"] == HOLDS and "no budget check of control" in one["detail"]
    # a per-architecture row without a check of its architecture takes its kinds' checks elsewhere
    three = budget_check(sweep(0.10, 0.01, archs=("w4-s4-l1", "w8-s4-l1", "w16-s4-l1")),
                         {"student/w4-s4-l1/seed1": 0.01, "student/w16-s4-l1/seed1": 0.09})
    middle = gated(three).loc["students have lower force RMSE than controls (w8-s4-l1)"]
    assert middle["verdict"] == UNDECIDED_BUDGET_MOVED and middle["n_budget_checked"] == 2
    assert "no budget check of w8-s4-l1: the checks of its kinds at w16-s4-l1, w4-s4-l1 count" in middle["detail"]


# ------------------------------------------------------------------------------------------------ RDF noise floor

RDF = RDF_TEACHER


def rdf_pairs(diff_A: float, noise_A: float, n_seeds: int = 4, archs=("w8-s4-l1",), rng_seed: int = 0) -> pd.DataFrame:
    """Controls and students whose RDF errors differ by ``diff_A`` (control - student, A) plus N(0, noise_A) per
    pair; control errors about 0.10 A; every model converged, seed 1 budget-checked (no change)."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for arch in archs:
        for seed in range(1, n_seeds + 1):
            control = 0.10 * (1 + 0.05 * rng.standard_normal())
            student = control - diff_A - noise_A * rng.standard_normal()
            for kind, value in (("control", control), ("student", student)):
                rows.append({"model_id": f"{kind}/{arch}/seed{seed}", "kind": kind, "arch": arch, "seed": seed,
                             FORCE: 0.2, RDF: value, "stopped_by": "patience"})
    models = pd.DataFrame(rows)
    return budget_check(models, {f"{k}/{a}/seed1": 0.0 for k in ("control", "student") for a in archs})


def rdf_row(models: pd.DataFrame, floor) -> Claim:
    return rdf_claims(models, AGG, floor)[0]


def test_rdf_differences_inside_the_noise_floor_are_indistinguishable():
    """A true difference of 2 mA, tight over seeds (the paired t alone says holds), against a floor of 20 mA."""
    models = rdf_pairs(0.002, 0.0005)
    assert rdf_row(models, None).verdict == HOLDS  # without the floor: resolved by the t test alone
    row = rdf_row(models, 0.020)
    assert row.verdict == INDISTINGUISHABLE
    assert "inside the seed noise floor ±0.02 A" in row.detail and "RDF-error difference +0.002" in row.detail
    eq = noise_floor_test(pairs(models, "control", "student", RDF), 0.020, AGG)
    assert eq.verdict == HOLDS and -0.020 < eq.ci_low < eq.ci_high < 0.020
    # the gates leave it as it is (converged, budget check passed); the tables show it
    table = gated(models, floor=0.020)
    rdf = table[table["metric"] == METRIC_NAMES[RDF]]
    assert (rdf["verdict"] == INDISTINGUISHABLE).all() and len(rdf) == 1
    # a worse student inside the floor is indistinguishable too, never "does not hold"
    assert rdf_row(rdf_pairs(-0.002, 0.0005), 0.020).verdict == INDISTINGUISHABLE


def test_rdf_differences_outside_the_noise_floor_keep_the_paired_test():
    """A 50 mA difference against a 20 mA floor: the paired t decides (holds; reversed: does not hold)."""
    row = rdf_row(rdf_pairs(0.050, 0.002), 0.020)
    assert row.verdict == HOLDS and "not shown inside the seed noise floor" in row.detail
    assert rdf_row(rdf_pairs(-0.050, 0.002), 0.020).verdict == FAILS
    # noise as large as the floor: neither inside it nor resolved
    noisy = rdf_row(rdf_pairs(0.0, 0.030, rng_seed=1), 0.020)
    assert noisy.verdict == INCONCLUSIVE
    # per-architecture rows are held against the floor too
    per_arch = rdf_claims(rdf_pairs(0.002, 0.0005, archs=("w4-s4-l1", "w8-s4-l1")), AGG, 0.020)
    assert len(per_arch) == 3 and {r.verdict for r in per_arch} == {INDISTINGUISHABLE}


def test_md_cost_rows_are_not_gated_by_training_checks():
    """MD time and memory per atom are properties of the architecture: a budget check that moved every model's
    error, or a model stopped at its cap, leaves the accuracy rows undecided but not the cost rows."""
    table = cost_table().assign(stopped_by="max_epochs")
    table = budget_check(table, {mid: -0.2 for mid in table["model_id"]})
    rows = all_claims(table, None, AGG)
    cost = rows[rows["metric"].str.contains("MD time|memory", case=False, regex=True)
                & ~rows["claim"].str.contains("Pareto", case=False)]
    assert len(cost) >= 2 and not cost["depends_on_training"].any()
    assert set(cost["verdict"]) == set(cost["verdict_if_converged"])  # the statistics' verdicts, ungated
    assert all("a property of the architecture" in d for d in cost["detail"])
    accuracy = rows[rows["depends_on_training"]]
    assert len(accuracy) and all(v.startswith("undecided") for v in accuracy["verdict"])


def test_the_budget_check_table_has_a_row_per_kind_x_architecture():
    from tsmlip.claims.gates import budget_check_table
    from tsmlip.claims.render import budget_check_markdown
    models = sweep(0.20, 0.01, archs=ARCHS2)
    ids = [f"{k}/{a}/seed{s}" for k in ("student", "control") for a in ARCHS2 for s in (1, 2)]
    checked = budget_check(models, dict.fromkeys(ids, -0.01) | {"control/w16-s4-l1/seed1": -0.15})
    table = budget_check_table(checked, AGG)
    assert len(table) == 4 and (table["n_seeds"] == 2).all()
    row = table.set_index(["kind", "arch"]).loc[("control", "w16-s4-l1")]
    assert not row["passes"] and row["relative_change"] < -0.05
    assert row["doubled_" + FORCE] == pytest.approx(
        checked.loc[checked["model_id"].isin(["control/w16-s4-l1/seed1", "control/w16-s4-l1/seed2"]),
                    "budget_check_" + FORCE].mean())
    assert int(table["passes"].sum()) == 3
    text = budget_check_markdown(table)
    assert "3 of 4 kind x architecture checks" in text and "**no**" in text
    assert "No model was trained again" in budget_check_markdown(budget_check_table(models, AGG))
