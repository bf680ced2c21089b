"""The paper's claims, tested on this run's own numbers (``tables/claims.{csv,md,html}``), and the headline
table (``tables/headline.{csv,md,html}``).

Every row reduces one claim to an **effect** in the claimed direction (positive supports the claim) and a
test from ``scipy.stats`` (see :mod:`tsmlip.claim_stats`):

- **Accuracy rows** (students vs controls, ablations, RDF, learning speed) compare models of the same
  architecture and seed (same initial weights): each pair gives a relative difference
  ``(baseline - claimed) / baseline``. The **seed is the unit**: a pooled row averages each seed's
  differences over the architectures and tests the per-seed values (one-sample t, ``n`` = seeds); a
  per-architecture row tests that architecture's seeds, and each family of per-architecture rows is
  Holm-corrected.
- **Equivalence rows** (the paper says "comparable" or "only minimally") use two one-sided t tests (TOST) with
  the margin ``aggregate.equivalence_margin``.
- **Born-Again vs the teacher**: Welch's t with the teacher seeds' spread; with one teacher seed there is no
  interval and the row says so.
- **Trend rows**: Pearson's r (force RMSE vs RDF error over kind/architecture means) and the slope of
  log cost on log number of weights (Fig. 5).
- **Cost vs the teacher** (the abstract): the most accurate student architecture against the teacher's, by
  Welch's t on log MD time (timed models, or the timed blocks of one run when each architecture was timed
  once) and on log memory per atom (probed models; with one probe per architecture, the probe's bisection
  bracket).

- **RDF rows against the seed noise floor**: the models' RDF-error differences (absolute, A; seed = unit) are
  tested for equivalence within the floor (TOST, margin = the floor); inside it the row is *indistinguishable
  at this resolution*, never holds or does not hold; otherwise the paired t decides.

Verdicts: *holds* / *does not hold* when the test rejects at ``1 - aggregate.confidence`` in that direction
(for equivalence: inside / outside the margin), else *inconclusive*. The gates (:func:`gate`) then decide
whether the statistics may speak: a row is *undecided (...)* when a model it compares stopped at the epoch cap
instead of by the stopping rule (``stopped_by`` in models.csv), when its kinds have no budget-checked model,
when a budget check of its kinds and architectures moved the test force RMSE by
``aggregate.budget_check_max_relative_change`` or more, when the doubled-budget errors flip its verdict, or
(RDF rows) when a liquid is not clean. ``verdict_if_converged`` keeps what the statistics say. Every row
carries the **detectable effect**: the smallest true effect this run would have found with probability
``aggregate.power``.
"""
from __future__ import annotations

import argparse
import html
import json
import math
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

from . import claim_stats as cs
from .aggregate import (BUDGET_CHECK_ERROR, BUDGET_CHECK_METRICS, STOPPED_BY_RULE, fmt, markdown_table, pareto_front,
                        write_html_table)
from .claim_stats import (FAILS, HOLDS, INCONCLUSIVE, INDISTINGUISHABLE, UNDECIDED, UNDECIDED_BUDGET_FLIPPED,
                          UNDECIDED_BUDGET_MOVED, UNDECIDED_LIQUID, UNDECIDED_NO_BUDGET_CHECK, Test)

FORCE, ENERGY_PER_ATOM, ENERGY = "test_force_rmse_eV_A", "test_energy_per_atom_rmse_eV", "test_energy_rmse_eV"
RDF_TEACHER, RDF_REFERENCE = "rdf_error_vs_teacher", "rdf_error_vs_reference"
METRIC_NAMES = {
    FORCE: "test force RMSE (eV/A)",
    ENERGY_PER_ATOM: "test energy RMSE per atom (eV)",
    ENERGY: "test energy RMSE (eV)",
    RDF_TEACHER: "liquid-Al RDF error vs the teacher's g(r) (A)",
    RDF_REFERENCE: "liquid-Al RDF error vs the reference potential's g(r) (A)",
    "test_atom_energy_rmse_eV": "test atom-energy RMSE vs the teacher (eV)",
    "epochs_to_threshold": "epochs to reach the validation force RMSE threshold",
    "memory_per_atom_bytes": "memory per atom (bytes)",
}
#: config keys (section ``aggregate``) the claims read; the rule passes the section as JSON
CONFIG_KEYS = ("confidence", "min_relative_effect", "equivalence_margin", "power", "pareto_cost_tolerance",
               "learning_speed_factor", "budget_check_max_relative_change")
RDF_METRICS = (RDF_TEACHER, RDF_REFERENCE)
SEED_UNIT = "seeds"
RELATIVE = "relative improvement (baseline - claimed) / baseline"
SWEEP_KINDS = ("student", "control", "control_fw")

#: the paper's words for each claim (short quotes; section)
PAPER = {
    "pareto": "student models are Pareto dominant w.r.t. the control MLIPs (3.1, Fig. 2)",
    "force": "force RMSE errors indicate a meaningful improvement of the student models (3.2, Fig. 3A)",
    "energy": "energy errors are only minimally improved in the student models (3.2, Fig. 3B)",
    "rdf": "student MLIPs are more accurate than the controls: RDF total absolute error (3.2, Fig. 3C)",
    "tracks": "force RMSE errors generally correlate with the MD based metrics (4; 3.2)",
    "learning": "student models train faster than the control models by a roughly constant factor (3.3, Fig. 4)",
    "scaling_time": "fewer weights: faster MD (3.4, Fig. 5A)",
    "scaling_memory": "smaller student models can fit more atoms on a single GPU (3.4, Fig. 5B)",
    "abstract_time": "light-weight student MLIPs have faster MD speeds ... compared to the teacher (abstract)",
    "abstract_memory": "... at a fraction of the memory footprint compared to the teacher models (abstract)",
    "ba_static": "with the static loss, student MLIPs achieve comparable errors to the teachers (3.5)",
    "ba_scheduled": "scheduled Born-Again students' energy and force RMSE are lower than the teacher's (3.5)",
    "ba_schedule": "with a loss scheduler the student can surpass the teacher (3.5)",
    "ablation": "(not in the paper: this run's ablation)",
    "knowledge": "(not in the paper: this run's check of the transferred knowledge)",
    "beyond": "(not in the paper: opt-in kinds student_oracle / student_synthetic, docs/beyond.md)",
}


@dataclass
class Claim:
    """One row of ``claims.csv`` (``compared``: the model ids behind it, not written)."""

    section: str
    claim: str
    paper: str
    metric: str
    test: str
    unit: str
    unit_of_n: str
    baseline_mean: float
    claimed_mean: float
    effect: float
    spread: float
    n: int
    ci_level: float
    ci_low: float
    ci_high: float
    p_value: float
    p_adjusted: float
    detectable_effect: float
    verdict_if_converged: str
    verdict: str
    all_converged: bool = True
    n_unconverged: int = 0
    #: budget-checked models that decided this row, the largest |relative change| of their test force RMSE, and
    #: the statistics' verdict with their doubled-budget errors in place of the base ones
    n_budget_checked: int = 0
    budget_check_max_abs_change: float = math.nan
    verdict_with_budget_check: str = ""
    comparison: str = ""
    detail: str = ""
    compared: list = field(default_factory=list, repr=False)


COLUMNS = [f.name for f in fields(Claim) if f.name != "compared"]


def make_claim(section: str, claim: str, paper: str, metric: str, t: Test, comparison: str = "", detail: str = "",
               unit: str = RELATIVE, unit_of_n: str = SEED_UNIT, baseline_mean: float = math.nan,
               claimed_mean: float = math.nan, compared=()) -> Claim:
    notes = "; ".join(x for x in (t.note, detail) if x)
    return Claim(
        section=section, claim=claim, paper=PAPER.get(paper, paper), metric=METRIC_NAMES.get(metric, metric),
        test=t.name, unit=unit, unit_of_n=unit_of_n, baseline_mean=baseline_mean, claimed_mean=claimed_mean,
        effect=t.effect, spread=t.spread, n=t.n, ci_level=t.ci_level, ci_low=t.ci_low, ci_high=t.ci_high,
        p_value=t.p_value, p_adjusted=t.p_adjusted, detectable_effect=t.detectable, verdict_if_converged=t.verdict,
        verdict=t.verdict, comparison=comparison, detail=notes, compared=sorted(set(map(str, compared))),
    )


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _ids(df: pd.DataFrame) -> list[str]:
    return list(df["model_id"]) if "model_id" in df else []


# ------------------------------------------------------------------------------------------------------ pairs


def pairs(models: pd.DataFrame, baseline_kind: str, claimed_kind: str, metric: str, arch: str | None = None) -> pd.DataFrame:
    """``arch, seed, baseline, claimed, d, baseline_id, claimed_id`` for models of both kinds with the same
    architecture and seed; ``d = (baseline - claimed) / baseline`` (pairs with a missing or zero baseline dropped)."""
    sub = models if arch is None else models[models["arch"] == arch]
    cols = ["arch", "seed", metric] + (["model_id"] if "model_id" in sub else [])
    b = sub[sub["kind"] == baseline_kind][cols].rename(columns={metric: "baseline", "model_id": "baseline_id"})
    c = sub[sub["kind"] == claimed_kind][cols].rename(columns={metric: "claimed", "model_id": "claimed_id"})
    p = b.merge(c, on=["arch", "seed"], how="inner")
    p["baseline"], p["claimed"] = p["baseline"].astype(float), p["claimed"].astype(float)
    p = p[np.isfinite(p["baseline"]) & np.isfinite(p["claimed"]) & (p["baseline"] != 0)].copy()
    p["d"] = (p["baseline"] - p["claimed"]) / p["baseline"]
    return p


def per_seed(p: pd.DataFrame) -> pd.Series:
    """Each seed's mean relative difference over the architectures it has pairs in (the seed is the unit)."""
    return p.groupby("seed")["d"].mean()


def _pair_ids(p: pd.DataFrame) -> list[str]:
    return [*p.get("baseline_id", []), *p.get("claimed_id", [])]


def _weights_text(models: pd.DataFrame, kind: str) -> str:
    sub = models[models["kind"] == kind]
    if sub.empty or not {"w_E", "w_F", "w_A"} <= set(sub.columns):
        return kind
    w = sub[["w_E", "w_F", "w_A"]].iloc[0]
    return f"{kind} (w_E={fmt(w['w_E'])}, w_F={fmt(w['w_F'])}, w_A={fmt(w['w_A'])})"


def _pooled_detail(p: pd.DataFrame) -> str:
    k = p["arch"].nunique()
    return (f"{_plural(len(p), 'pair')} over {_plural(k, 'architecture')}; each seed's value = the mean of its "
            f"per-architecture relative differences")


def noise_floor_test(p: pd.DataFrame, floor_A: float, cfg: dict) -> Test:
    """Are the RDF-error differences of the pairs ``p`` (:func:`pairs`) inside the seed noise floor? TOST on
    each seed's mean absolute difference ``baseline - claimed`` (A; seed = unit) with the margin ``floor_A``."""
    diff = (p["baseline"] - p["claimed"]).groupby(p["seed"]).mean()
    return cs.equivalence_one_sample(diff, floor_A, cfg["confidence"], cfg["power"],
                                     f"TOST ±{floor_A:.3g} A (seed noise floor), seed = unit")


def apply_noise_floor(t: Test, p: pd.DataFrame, floor_A: float | None, cfg: dict) -> Test:
    """An RDF row's verdict against the seed noise floor: when the TOST of :func:`noise_floor_test` puts the
    differences inside the floor, the row is *indistinguishable at this resolution* (never holds or does not
    hold); otherwise ``t``'s verdict stands. The note gives the absolute difference and the TOST."""
    if floor_A is None or not (np.isfinite(floor_A) and floor_A > 0) or p.empty:
        return t
    eq = noise_floor_test(p, floor_A, cfg)
    inside = eq.verdict == HOLDS
    ci = (f", {100 * eq.ci_level:.3g}% interval [{eq.ci_low:+.3g}, {eq.ci_high:+.3g}] A"
          if np.isfinite(eq.ci_low) else f" ({eq.note})" if eq.note else "")
    tost = f"TOST p = {eq.p_value:.2g}" if np.isfinite(eq.p_value) else "no TOST"
    note = (f"RDF-error difference {eq.effect:+.3g} A{ci}: "
            f"{'inside' if inside else 'not shown inside'} the seed noise floor ±{floor_A:.3g} A ({tost})")
    t.note = f"{t.note}; {note}" if t.note else note
    if inside:
        t.verdict = INDISTINGUISHABLE
    return t


def paired_claims(models, section, claim, paper, baseline_kind, claimed_kind, metric, cfg, per_arch=False,
                  equivalence=False, extra_detail="", noise_floor_A: float | None = None) -> list[Claim]:
    """A pooled row (seed = unit) and, with ``per_arch``, one Holm-corrected row per architecture.

    ``equivalence``: the pooled row is a TOST with margin ``cfg['equivalence_margin']`` instead.
    ``noise_floor_A`` (RDF metrics): each row is first tested against the seed noise floor
    (:func:`apply_noise_floor`).
    """
    floor = noise_floor_A if metric in RDF_METRICS else None
    if metric not in models:
        return []
    comparison = (f"{_weights_text(models, claimed_kind)} vs {_weights_text(models, baseline_kind)}, paired by "
                  f"architecture and seed")
    p = pairs(models, baseline_kind, claimed_kind, metric)
    conf, power = cfg["confidence"], cfg["power"]
    seeds = per_seed(p)
    detail = "; ".join(x for x in (_pooled_detail(p), extra_detail) if x)
    if equivalence:
        m = cfg["equivalence_margin"]
        t = cs.equivalence_one_sample(seeds, m, conf, power, f"TOST ±{100 * m:g}%, paired, seed = unit")
        label = f"{claim} (within ±{100 * m:g}%, all architectures)"
    else:
        t = cs.one_sample(seeds, cfg["min_relative_effect"], conf, power, "paired t, seed = unit")
        t = apply_noise_floor(t, p, floor, cfg)
        label = f"{claim} (all architectures)"
    out = [make_claim(section, label, paper, metric, t, comparison, detail, baseline_mean=p["baseline"].mean(),
                      claimed_mean=p["claimed"].mean(), compared=_pair_ids(p))]
    if per_arch and p["arch"].nunique() > 1:
        parts = list(p.groupby("arch", sort=True))
        tests = [cs.one_sample(part["d"], cfg["min_relative_effect"], conf, power, "paired t per architecture, Holm")
                 for _, part in parts]
        cs.apply_holm(tests, cfg["min_relative_effect"], conf, power)
        tests = [apply_noise_floor(t, part, floor, cfg) for (_, part), t in zip(parts, tests)]
        for (arch, part), t in zip(parts, tests):
            out.append(make_claim(section, f"{claim} ({arch})", paper, metric, t, comparison,
                                  f"seeds {', '.join(str(s) for s in sorted(part['seed']))}",
                                  baseline_mean=part["baseline"].mean(), claimed_mean=part["claimed"].mean(),
                                  compared=_pair_ids(part)))
    return out


def rdf_claims(models: pd.DataFrame, cfg: dict, noise_floor_A: float | None = None) -> list[Claim]:
    """Fig. 3C: students' RDF error lower than their controls' (vs the teacher's g(r), the paper's; and vs the
    reference potential's where the data set has one), decided against the seed noise floor."""
    out = []
    for metric in RDF_METRICS:
        if metric not in models or not models[metric].notna().any():
            continue
        out += paired_claims(models, "accuracy at equal weights", "students' RDF error is lower than controls'", "rdf",
                             "control", "student", metric, cfg, per_arch=True, noise_floor_A=noise_floor_A)
    return out


def tracks_claim(models: pd.DataFrame, cfg: dict) -> Claim | None:
    """Force RMSE tracks the RDF error: Pearson r over the (kind, architecture) means of the sweep's models."""
    if RDF_TEACHER not in models or not models[RDF_TEACHER].notna().any():
        return None
    sub = models[models["kind"].isin(SWEEP_KINDS)]
    g = sub.groupby(["kind", "arch"])[[FORCE, RDF_TEACHER]].mean().dropna()
    t = cs.correlation(g[FORCE], g[RDF_TEACHER], cfg["confidence"], cfg["power"], "Pearson r (Fisher-z interval)")
    return make_claim("accuracy at equal weights", "force RMSE tracks the RDF error", "tracks",
                      f"{METRIC_NAMES[FORCE]} vs {METRIC_NAMES[RDF_TEACHER]}", t,
                      "means over seeds of every (kind, architecture) of the sweep",
                      f"{_plural(len(g), 'point')}: {', '.join(f'{k} {a}' for k, a in g.index)}",
                      unit="Pearson correlation r", unit_of_n="(kind, architecture) means", compared=_ids(sub))


def learning_speed_claim(models: pd.DataFrame, cfg: dict) -> Claim:
    """Students reach the threshold in fewer epochs than their paired controls.

    Epochs count from the evaluation before training (epoch 0), so the relative difference is taken of
    ``epochs_to_threshold + 1`` (never zero). A model that never reaches the threshold counts as
    ``epochs + 1`` epochs (a lower bound); pairs where neither does are dropped; the detail says how many.
    The seed is the unit (each seed's mean over architectures).
    """
    metric = "epochs_to_threshold"
    cols = ["arch", "seed", metric, "epochs"] + (["model_id"] if "model_id" in models else [])
    s = models[models["kind"] == "student"][cols]
    c = models[models["kind"] == "control"][cols]
    p = c.merge(s, on=["arch", "seed"], suffixes=("_c", "_s"))
    never_c, never_s = p[f"{metric}_c"].isna(), p[f"{metric}_s"].isna()
    both = never_c & never_s
    p = p[~both].copy()
    b = p[f"{metric}_c"].fillna(p["epochs_c"] + 1)
    cl = p[f"{metric}_s"].fillna(p["epochs_s"] + 1)
    p["d"] = ((b + 1) - (cl + 1)) / (b + 1)
    t = cs.one_sample(per_seed(p), cfg["min_relative_effect"], cfg["confidence"], cfg["power"], "paired t, seed = unit")
    thr = models["threshold_force_rmse_eV_A"].dropna()
    factor = models["learning_speed_factor"].dropna() if "learning_speed_factor" in models else pd.Series(dtype=float)
    detail = (
        f"threshold {fmt(thr.iloc[0]) if len(thr) else '-'} eV/A "
        f"({fmt(factor.iloc[0] if len(factor) else cfg['learning_speed_factor'])} x the teacher's "
        f"best valid force RMSE); never reached: {int(never_s.sum())} students, {int(never_c.sum())} controls "
        f"(counted as epochs + 1), {int(both.sum())} pairs where neither did (dropped); effect on epochs + 1 "
        f"(epoch 0 = before training); {_plural(len(p), 'pair')} over {_plural(p['arch'].nunique(), 'architecture')}"
    )
    ids = [*p.get("model_id_c", []), *p.get("model_id_s", [])]
    return make_claim("learning dynamics", "students learn faster than controls", "learning", metric, t,
                      "student vs control, paired by architecture and seed", detail,
                      baseline_mean=float(b.mean()), claimed_mean=float(cl.mean()), compared=ids)


# ------------------------------------------------------------------------------------------------------ cost


def cost_columns(models: pd.DataFrame) -> dict[str, str]:
    """Cost columns present in the table: ``{column: readable name}`` (MD time per engine, memory)."""
    out = {}
    for col in sorted(models.columns):
        if col.startswith("md_") and col.endswith("_us_per_atom_step") and models[col].notna().any():
            engine = col[len("md_"):-len("_us_per_atom_step")]
            out[col] = f"MD time per step per atom ({engine})"
    if "memory_per_atom_bytes" in models and models["memory_per_atom_bytes"].notna().any():
        out["memory_per_atom_bytes"] = "memory per atom"
    return out


def device_column(cost: str) -> str:
    return cost.replace("_us_per_atom_step", "_device_name") if cost.startswith("md_") else "max_atoms_device_name"


def measured(models: pd.DataFrame, cost: str) -> pd.DataFrame:
    """The models whose ``cost`` was measured on themselves (not copied from another model of the
    architecture, see ``aggregate.share_cost_within_architecture``), with a ``device`` column."""
    sub = models[models[cost].notna()].copy() if cost in models else models.iloc[0:0].copy()
    if "md_measured_on" in sub and "model_id" in sub:
        sub = sub[sub["md_measured_on"].isna() | (sub["md_measured_on"] == sub["model_id"])]
    dev = device_column(cost)
    sub["device"] = sub[dev].fillna("unknown device").astype(str) if dev in sub else "unknown device"
    return sub


def best_student_arch(models: pd.DataFrame) -> str | None:
    """The student architecture with the lowest mean test force RMSE (the most accurate student)."""
    s = models[models["kind"] == "student"].groupby("arch")[FORCE].mean().dropna()
    return None if s.empty else str(s.idxmin())


def teacher_arch(models: pd.DataFrame) -> str | None:
    t = models[models["kind"] == "teacher"]["arch"]
    return None if t.empty else str(t.iloc[0])


def _timing_values(sub: pd.DataFrame, cost: str) -> tuple[np.ndarray, str]:
    """Replicate timings of one architecture: one per timed model when there are two or more, else the
    timed blocks of its run(s) (``md_<engine>_us_per_atom_step_all``)."""
    if len(sub) >= 2:
        return cs.finite(sub[cost]), "timed models"
    blocks_col = cost + "_all"
    vals = []
    if blocks_col in sub:
        for v in sub[blocks_col].dropna():
            try:
                vals += [float(x) for x in (json.loads(v) if isinstance(v, str) else v)]
            except (TypeError, ValueError):
                pass
    if len(vals) >= 2:
        return cs.finite(vals), "timed blocks of one run"
    return cs.finite(sub[cost]), "timed models"


def _log_ratio_test(teacher_vals, student_vals, cfg, name) -> Test:
    """Welch's t on log values: effect = 1 - student/teacher (relative saving), CI and detectable effect mapped
    from the log-ratio scale."""
    m0 = cfg["min_relative_effect"]
    threshold = -math.log(1 - m0) if m0 < 1 else math.inf
    t = cs.two_sample(np.log(teacher_vals), np.log(student_vals), threshold, cfg["confidence"], cfg["power"], name,
                      relative=False, single_note="one measurement on a side: no spread, no interval")
    to_rel = lambda v: 1 - math.exp(-v) if np.isfinite(v) else math.nan  # noqa: E731
    t.effect, t.ci_low, t.ci_high, t.detectable = (to_rel(v) for v in (t.effect, t.ci_low, t.ci_high, t.detectable))
    return t


def _memory_bounds(sub: pd.DataFrame) -> tuple[float, float]:
    """(lower, upper) bound of one architecture's memory per atom over its probes: each bisection brackets the
    limit (``max_atoms`` fits, ``max_atoms_first_failure`` does not), so memory per atom lies in
    (budget / first_failure, budget / max_atoms]; a probe that never failed gives no lower bound (0)."""
    lo, hi = math.inf, 0.0
    for _, r in sub.iterrows():
        budget, ok, fail = (float(r.get(k, math.nan)) for k in ("memory_budget_bytes", "max_atoms",
                                                                 "max_atoms_first_failure"))
        if not (np.isfinite(budget) and np.isfinite(ok) and ok > 0):
            continue
        hi = max(hi, budget / ok)
        lo = min(lo, budget / fail if np.isfinite(fail) and fail > 0 else 0.0)
    return (lo, hi) if hi > 0 else (math.nan, math.nan)


def _bracket_test(teacher: pd.DataFrame, student: pd.DataFrame, cfg) -> Test:
    """Memory per atom from the max-atoms probe is a deterministic measurement (a repeated probe finds the
    same limit), so there is no seed spread to test: the saving 1 - student / teacher is bounded by the probes'
    brackets (:func:`_memory_bounds`), and the verdict needs those bounds to exclude the threshold. The
    detectable saving is what the brackets' widths allow: 1 - 1 / (r_s * r_t), r = upper / lower bound."""
    t_lo, t_hi = _memory_bounds(teacher)
    s_lo, s_hi = _memory_bounds(student)
    effect = 1 - student["memory_per_atom_bytes"].mean() / teacher["memory_per_atom_bytes"].mean()
    low = 1 - s_hi / t_lo if t_lo > 0 else -math.inf
    high = 1 - s_lo / t_hi if t_hi > 0 else math.nan
    m0 = cfg["min_relative_effect"]
    verdict = HOLDS if low > m0 else FAILS if high < m0 else INCONCLUSIVE
    det = 1 - (s_lo * t_lo) / (s_hi * t_hi) if (s_lo > 0 and t_lo > 0) else math.nan
    return Test("probe bracket (deterministic probe: bounds, not a statistical interval)", effect=float(effect),
                n=int(len(student)), ci_low=float(low), ci_high=float(high), detectable=float(det), verdict=verdict,
                note="the bisection's resolution (md.probe.resolution) bounds each maximum")


def cost_vs_teacher_claims(models: pd.DataFrame, cfg: dict) -> list[Claim]:
    """The abstract: the most accurate student architecture runs MD faster than the teacher's and needs a
    fraction of its memory per atom (per engine and device)."""
    best, teach = best_student_arch(models), teacher_arch(models)
    if best is None or teach is None:
        return []
    out = []
    compared = _ids(models[((models["kind"] == "student") & (models["arch"] == best)) | (models["kind"] == "teacher")])
    for cost, name in cost_columns(models).items():
        m = measured(models, cost)
        for device, part in m.groupby("device", sort=True):
            t_sub, s_sub = part[part["arch"] == teach], part[part["arch"] == best]
            if t_sub.empty or s_sub.empty:
                continue
            comparison = (f"best student architecture {best} (lowest mean test force RMSE) vs the teacher's {teach}, "
                          f"both measured on {device}")
            if cost == "memory_per_atom_bytes":
                if "max_atoms_first_failure" in part:
                    t = _bracket_test(t_sub, s_sub, cfg)
                else:  # tables without the probe's bracket: replicate probes, if any
                    t = _log_ratio_test(cs.finite(t_sub[cost]), cs.finite(s_sub[cost]), cfg,
                                        "Welch t on log memory per atom (probed models)")
                unit_n = "probes of the student architecture"
                ratio = s_sub[cost].mean() / t_sub[cost].mean()
                detail = f"the student needs {fmt(ratio)} x the teacher's memory per atom"
                out.append(make_claim("cost vs the teacher", f"the best student needs less memory per atom than the "
                                      f"teacher ({device})", "abstract_memory", cost, t, comparison, detail,
                                      unit="relative memory saved: 1 - student / teacher", unit_of_n=unit_n,
                                      baseline_mean=t_sub[cost].mean(), claimed_mean=s_sub[cost].mean(),
                                      compared=compared))
            else:
                tv, t_unit = _timing_values(t_sub, cost)
                sv, s_unit = _timing_values(s_sub, cost)
                t = _log_ratio_test(tv, sv, cfg, f"Welch t on log MD time ({t_unit}: {len(tv)} teacher, {len(sv)} student)")
                speedup = t_sub[cost].mean() / s_sub[cost].mean()
                ci = ""
                if np.isfinite(t.ci_low):
                    ci = f" (CI {fmt(1 / (1 - t.ci_low))}-{fmt(1 / (1 - t.ci_high)) if t.ci_high < 1 else 'inf'} x)"
                detail = f"the student runs {fmt(speedup)} x faster{ci}"
                if "blocks" in t_unit or "blocks" in s_unit:
                    detail += ("; timed blocks of one run miss the run-to-run variation of the machine (other jobs, "
                               "clocks): a floor on the true uncertainty")
                out.append(make_claim("cost vs the teacher", f"the best student runs MD faster than the teacher "
                                      f"({name}, {device})", "abstract_time", f"{name} (us)", t, comparison, detail,
                                      unit="relative time saved: 1 - student / teacher",
                                      unit_of_n=t_unit if t_unit == s_unit else f"{t_unit} / {s_unit}",
                                      baseline_mean=t_sub[cost].mean(), claimed_mean=s_sub[cost].mean(),
                                      compared=compared))
    return out


def scaling_claims(models: pd.DataFrame, cfg: dict) -> list[Claim]:
    """Fig. 5: fewer weights, faster MD and less memory per atom: slope of log cost on log number of weights
    over the architectures measured on one device (> 0 supports the claim)."""
    out = []
    for cost, name in cost_columns(models).items():
        m = measured(models, cost)
        for device, part in m.groupby("device", sort=True):
            g = part.groupby("arch").agg(n_weights=("n_weights", "first"), cost=(cost, "mean")).dropna()
            g = g[(g["n_weights"] > 0) & (g["cost"] > 0)]
            t = cs.slope(np.log(g["n_weights"].astype(float)), np.log(g["cost"]), cfg["confidence"], cfg["power"],
                         "slope of log cost on log weights (t)")
            memory = cost == "memory_per_atom_bytes"
            detail = ", ".join(f"{a}: {fmt(w)} weights, {fmt(c)}" for a, (w, c) in g.sort_values("n_weights").iterrows())
            out.append(make_claim("speed and scalability", f"fewer weights, {'less memory per atom (more atoms per device)' if memory else 'faster MD'} "
                                  f"({name}, {device})", "scaling_memory" if memory else "scaling_time",
                                  f"{name} vs number of weights", t, "one point per architecture (mean over its "
                                  "measured models)", detail, unit="slope d log(cost) / d log(weights)",
                                  unit_of_n="architectures", compared=_ids(part)))
    return out


def pareto_claim(models: pd.DataFrame, cost: str, cost_name: str, cfg: dict, error: str = FORCE,
                 claimed_kind: str = "student", baseline_kind: str = "control") -> Claim:
    """Does the claimed kind's Pareto front dominate the baseline kind's?

    For every point of the baseline's front (means over seeds; an architecture's cost is the mean over all its
    models, since cost does not depend on training) the most accurate claimed model at most
    ``1 + pareto_cost_tolerance`` times as costly is tested against it: paired by seed when it has the same
    architecture (seed = unit), else Welch. Holds when every point is beaten (each test at the confidence level:
    all must hold, so no correction is needed); does not hold when, after Holm over the points, some baseline is
    significantly better than every claimed model at its cost; inconclusive otherwise.
    """
    sub = models[models["kind"].isin([claimed_kind, baseline_kind])]
    arch_cost = models.groupby("arch")[cost].mean()
    means = sub.groupby(["kind", "arch"])[[error]].mean().reset_index()
    means[cost] = means["arch"].map(arch_cost)
    ctrl = means[means["kind"] == baseline_kind].reset_index(drop=True)
    stud = means[means["kind"] == claimed_kind].reset_index(drop=True)
    ctrl = ctrl[pareto_front(ctrl[cost], ctrl[error])]
    tol = 1.0 + cfg["pareto_cost_tolerance"]
    conf, power, m0 = cfg["confidence"], cfg["power"], cfg["min_relative_effect"]
    comparison = (f"{claimed_kind} front vs {baseline_kind} front (means over seeds), cost = {cost_name} "
                  f"(mean over all models of an architecture)")
    tests, labels, compared = [], [], []
    missing = []
    for _, c in ctrl.iterrows():
        cands = stud[np.isfinite(stud[error]) & (stud[cost] <= c[cost] * tol)]
        if cands.empty:
            missing.append(f"{c['arch']}: no {claimed_kind} at its cost")
            continue
        best = cands.loc[cands[error].idxmin()]
        if best["arch"] == c["arch"]:
            p = pairs(models, baseline_kind, claimed_kind, error, arch=c["arch"])
            t = cs.one_sample(p["d"], m0, conf, power, "paired t")
            compared += _pair_ids(p)
        else:
            b = models[(models["kind"] == baseline_kind) & (models["arch"] == c["arch"])]
            s = models[(models["kind"] == claimed_kind) & (models["arch"] == best["arch"])]
            t = cs.two_sample(b[error], s[error], m0, conf, power, "Welch t")
            compared += _ids(b) + _ids(s)
        tests.append(t)
        labels.append(f"{baseline_kind} {c['arch']} vs {claimed_kind} {best['arch']}")
    adjusted = cs.holm([t.p_value for t in tests]) if tests else np.array([])
    alpha = 1 - conf
    notes = []
    reversed_ = False
    for t, label, pa in zip(tests, labels, adjusted):
        reversal = np.isfinite(pa) and pa < alpha and t.effect < m0
        reversed_ |= bool(reversal)
        notes.append(f"{label}: {100 * t.effect:+.1f}% ({t.verdict}{', reversal after Holm' if reversal else ''})")
    if tests and not missing and all(t.verdict == HOLDS for t in tests):
        overall = HOLDS
    elif reversed_:
        overall = FAILS
    else:
        overall = INCONCLUSIVE
    if tests:
        worst = min(tests, key=lambda t: t.effect if np.isfinite(t.effect) else math.inf)
        row = Test("Pareto: each front point by paired t (same architecture) or Welch t; all must hold; Holm for a "
                   "reversal", effect=worst.effect, spread=worst.spread, n=len(tests), ci_level=worst.ci_level,
                   ci_low=worst.ci_low, ci_high=worst.ci_high, p_value=float(np.max([t.p_value for t in tests])),
                   detectable=float(np.max([t.detectable for t in tests])), verdict=overall)
    else:
        row = Test("Pareto: no front point testable", verdict=INCONCLUSIVE)
    return make_claim("Pareto dominance", f"{claimed_kind}s Pareto-dominate {baseline_kind}s ({cost_name})", "pareto",
                      error, row, comparison, "; ".join(notes + missing) + ("; effect, interval and p of the "
                      "weakest point (p: the largest over the points), detectable: the largest" if tests else ""),
                      unit_of_n="front points", compared=compared)


# ------------------------------------------------------------------------------------------------------ others


def knowledge_claims(models: pd.DataFrame, labels: dict | None, cfg: dict) -> list[Claim]:
    """Quality of the transferred knowledge: the teacher's atom energies vs the reference's, and how well
    students (vs controls that never saw them) reproduce the teacher's atom energies."""
    out = []
    ref = (labels or {}).get("vs_reference") or {}
    rmse, r, std = (ref.get(k, math.nan) for k in ("rmse_eV", "pearson_r", "ref_std_eV"))
    rmse, r, std = (math.nan if v is None else float(v) for v in (rmse, r, std))
    teachers = _ids(models[models["kind"] == "teacher"])
    if np.isfinite(rmse) and np.isfinite(std) and std > 0:
        skill = 1.0 - rmse / std
        v = HOLDS if skill > cfg["min_relative_effect"] else FAILS
        detail = (f"RMSE {fmt(rmse)} eV vs the reference's spread (std) {fmt(std)} eV; Pearson r = {fmt(r)}; "
                  f"offset removed {fmt(ref.get('offset_eV'))} eV; one labelling, so no seed spread: the verdict "
                  f"compares the point value with the threshold")
        t = Test("point value (one labelling)", effect=skill, n=1, verdict=v)
    else:
        detail = "no reference per-atom energies in this data set (labels/atom_energies.json has no vs_reference)"
        t = Test("point value (one labelling)", n=0)
    out.append(make_claim("quality of the knowledge", "the teacher's atom energies track the reference's (offset removed)",
                          "knowledge", "atom-energy RMSE (eV)", t,
                          "teacher atom energies vs the reference potential's, against a constant guess", detail,
                          unit="relative improvement over the best constant guess: 1 - RMSE / std(reference)",
                          unit_of_n="labellings", baseline_mean=std, claimed_mean=rmse, compared=teachers))
    col = "test_atom_energy_rmse_eV"
    if col in models:
        students = models[models["kind"] == "student"]
        rr = students.get("test_atom_energy_pearson_r", pd.Series(dtype=float)).astype(float)
        base = "control_fw" if (models["kind"] == "control_fw").any() else "control"
        extra = (f"student atom energies vs the teacher's: mean RMSE {fmt(students[col].mean())} eV, "
                 f"mean Pearson r {fmt(rr.mean())} over {len(students)} students")
        rows = paired_claims(models, "quality of the knowledge", "students reproduce the teacher's atom energies better "
                             "than controls", "knowledge", base, "student", col, cfg, extra_detail=extra)
        out += rows
    return out


def born_again_claims(models: pd.DataFrame, cfg: dict) -> list[Claim]:
    """Section 3.5: the scheduled Born-Again student beats the teacher (Welch); the static one is comparable to
    it (TOST); the schedule beats static weights (paired by seed)."""
    out = []
    teacher = models[models["kind"] == "teacher"]
    conf, power, m0, margin = cfg["confidence"], cfg["power"], cfg["min_relative_effect"], cfg["equivalence_margin"]
    one_teacher = ("one teacher seed: the teacher's seed spread is unknown, so no interval (train more teacher "
                   "seeds, teacher.seeds); the detectable effect assumes the teacher spreads like the students")
    for kind in ("born_again", "born_again_static"):
        ba = models[models["kind"] == kind]
        if ba.empty or teacher.empty:
            continue
        comparison = f"{kind} ({_plural(len(ba), 'seed')}) vs teacher ({_plural(len(teacher), 'seed')}), unpaired"
        for metric in (FORCE, ENERGY):
            b, c = teacher[metric].astype(float), ba[metric].astype(float)
            if kind == "born_again":
                t = cs.two_sample(b, c, m0, conf, power, "Welch t (teacher seeds' spread)", single_note=one_teacher)
                claim = "the scheduled Born-Again student beats the teacher"
                paper = "ba_scheduled"
            else:
                t = cs.equivalence_two_sample(b, c, margin, conf, power, f"TOST ±{100 * margin:g}%, Welch",
                                              single_note=one_teacher)
                claim = f"the static Born-Again student is comparable to the teacher (within ±{100 * margin:g}%)"
                paper = "ba_static"
            out.append(make_claim("Born-Again", claim, paper, metric, t, comparison, unit_of_n="Born-Again seeds",
                                  baseline_mean=b.mean(), claimed_mean=c.mean(), compared=_ids(teacher) + _ids(ba)))
    if {"born_again", "born_again_static"} <= set(models["kind"]):
        for metric in (FORCE, ENERGY):
            out += paired_claims(models, "Born-Again", "the loss schedule beats static weights", "ba_schedule",
                                 "born_again_static", "born_again", metric, cfg)
    return out


def ablation_claims(models: pd.DataFrame, cfg: dict) -> list[Claim]:
    kinds = set(models["kind"])
    rows = []
    if {"student", "control_fw"} <= kinds:
        for metric in (FORCE, ENERGY_PER_ATOM):
            rows += paired_claims(models, "ablation", "atom-energy effect: the atom-energy term lowers the error",
                                  "ablation", "control_fw", "student", metric, cfg)
    if {"control", "control_fw"} <= kinds:
        for metric in (FORCE, ENERGY_PER_ATOM):
            rows += paired_claims(models, "ablation", "force-weight effect: the student's larger w_F alone lowers the error",
                                  "ablation", "control", "control_fw", metric, cfg)
    return rows


#: beyond the paper (docs/beyond.md): (baseline kind, claimed kind, claim, metrics). The RDF rows tell whether a
#: kind learned the teacher's liquid (vs the teacher's g(r)) or the reference's (vs the reference potential's)
BEYOND = (
    ("student", "student_oracle", "oracle atom energies lower the error below the teacher's atom energies",
     (FORCE, ENERGY_PER_ATOM, RDF_TEACHER, RDF_REFERENCE)),
    ("control_fw", "student_oracle", "atom energies can help at all: the oracle student beats control_fw",
     (FORCE, ENERGY_PER_ATOM)),
    ("student", "student_synthetic", "teacher-generated configurations lower the student's error",
     (FORCE, ENERGY_PER_ATOM, RDF_TEACHER, RDF_REFERENCE)),
    ("control_fw", "student_synthetic", "the synthetic student beats control_fw", (FORCE, ENERGY_PER_ATOM)),
)


def beyond_claims(models: pd.DataFrame, cfg: dict, noise_floor_A: float | None = None) -> list[Claim]:
    """Rows of the opt-in kinds: oracle vs teacher labels, synthetic vs plain student, both vs control_fw (RDF
    rows against the seed noise floor)."""
    kinds = set(models["kind"])
    rows = []
    for baseline, claimed, claim, metrics in BEYOND:
        if {baseline, claimed} <= kinds:
            for metric in metrics:
                if metric in models and models[metric].notna().any():
                    rows += paired_claims(models, "beyond the paper", claim, "beyond", baseline, claimed, metric, cfg,
                                          noise_floor_A=noise_floor_A)
    return rows


# ------------------------------------------------------------------------------------------------------ gates


def _listed(items: list[str], max_listed: int) -> str:
    more = f" and {len(items) - max_listed} more" if len(items) > max_listed else ""
    return ", ".join(items[:max_listed]) + more


def _add_detail(claim: Claim, note: str) -> None:
    claim.detail = f"{claim.detail}; {note}" if claim.detail else note


def _compared(claim: Claim, models: pd.DataFrame) -> pd.DataFrame:
    if "model_id" not in models:
        return models.iloc[0:0]
    return models[models["model_id"].astype(str).isin(set(claim.compared))]


def check_convergence(claim: Claim, models: pd.DataFrame, max_listed: int = 8) -> bool:
    """Did every model the row compares stop by the stopping rule (``stopped_by == "patience"``), not the
    epoch cap? Sets ``all_converged`` / ``n_unconverged`` and names the others in the detail (with their late
    improvement, for information). A table without ``stopped_by`` counts every model as unconverged."""
    sub = _compared(claim, models)
    ok = sub["stopped_by"].astype(str) == STOPPED_BY_RULE if "stopped_by" in sub else pd.Series(False, index=sub.index)
    bad = sub[~ok]
    claim.n_unconverged = int(len(bad))
    claim.all_converged = bool(len(bad) == 0)
    if len(bad):
        def why(r) -> str:
            stopped = r.get("stopped_by", "unknown")
            late = r.get("late_relative_improvement", math.nan)
            late = f", late improvement {100 * float(late):.1f}%" if late is not None and np.isfinite(float(late)) else ""
            return f"{r['model_id']} ({stopped if isinstance(stopped, str) else 'unknown'}{late})"

        _add_detail(claim, f"not converged: {_listed([why(r) for _, r in bad.iterrows()], max_listed)}")
    return claim.all_converged


def budget_checks(models: pd.DataFrame) -> pd.DataFrame:
    """The models that were trained again with every budget doubled (a finite ``budget_check_<error>``)."""
    col = f"budget_check_{BUDGET_CHECK_ERROR}"
    if col not in models:
        return models.iloc[0:0]
    return models[models[col].astype(float).notna()]


def with_budget_check_values(models: pd.DataFrame) -> pd.DataFrame | None:
    """``models`` with each budget-checked model's doubled-budget test errors in place of its own (None when no
    model was checked): the table the statistics are recomputed on to see whether a verdict flips."""
    if budget_checks(models).empty:
        return None
    out = models.copy()
    for metric in BUDGET_CHECK_METRICS:
        col = f"budget_check_{metric}"
        if metric in out and col in out:
            checked = out[col].astype(float)
            out[metric] = checked.where(checked.notna(), out[metric].astype(float))
    return out


def check_budget(claim: Claim, models: pd.DataFrame, cfg: dict, verdict_with_budget: str | None,
                 max_listed: int = 8) -> str | None:
    """The budget check of the row's kinds and architectures; None when it passed, else the undecided verdict.

    The checks that count are the budget-checked models of a kind the row compares and of an architecture it
    compares (so a per-architecture row takes its architecture's checks, a pooled row all of them); where no
    check has the row's architecture, the checks of its kinds at every architecture. It fails when any of them
    moved the test force RMSE by ``budget_check_max_relative_change`` or more (relative, either way), or when
    the row's statistics recomputed with the doubled-budget errors (``verdict_with_budget``) give another
    verdict; a row none of whose kinds has a budget-checked model is undecided (no budget check)."""
    sub = _compared(claim, models)
    if sub.empty:
        return None
    limit = cfg["budget_check_max_relative_change"]
    kinds, archs = set(sub["kind"]), set(sub["arch"])
    checks = budget_checks(models)
    of_kinds = checks[checks["kind"].isin(kinds)]
    if of_kinds.empty:
        _add_detail(claim, f"no budget check of {', '.join(sorted(kinds))}")
        return UNDECIDED_NO_BUDGET_CHECK
    used = of_kinds[of_kinds["arch"].isin(archs)]
    if used.empty:
        used = of_kinds
        _add_detail(claim, f"no budget check of {', '.join(sorted(archs))}: the checks of its kinds at "
                           f"{', '.join(sorted(set(used['arch'])))} count")
    unchecked = sorted(kinds - set(of_kinds["kind"]))
    change = used["budget_check_relative_change"].astype(float)
    claim.n_budget_checked = int(len(used))
    claim.budget_check_max_abs_change = float(change.abs().max()) if change.notna().any() else math.nan
    moved = used[~(change.abs() < limit)]  # a change that cannot be computed does not pass either
    failed = None
    if len(moved):
        listed = [f"{r['model_id']} by {_pct(r['budget_check_relative_change'])}" for _, r in moved.iterrows()]
        _add_detail(claim, f"budget check moved the test force RMSE of {_listed(listed, max_listed)} (limit "
                           f"±{100 * limit:g}%)")
        failed = UNDECIDED_BUDGET_MOVED
    else:
        _add_detail(claim, f"budget check passed: {_plural(len(used), 'model')}, largest change "
                           f"{_pct(claim.budget_check_max_abs_change, sign=False)} (limit ±{100 * limit:g}%)")
    late = used[used["budget_check_stopped_by"].astype(str) != STOPPED_BY_RULE] \
        if "budget_check_stopped_by" in used else used.iloc[0:0]
    if len(late):
        _add_detail(claim, f"budget-check models stopped at their epoch cap (their change is a lower bound): "
                           f"{_listed(list(late['model_id'].astype(str)), max_listed)}")
    if unchecked:
        _add_detail(claim, f"no budget check of {', '.join(unchecked)}")
    claim.verdict_with_budget_check = verdict_with_budget or ""
    if verdict_with_budget is not None and verdict_with_budget != claim.verdict_if_converged:
        _add_detail(claim, f"budget check flipped the verdict: {claim.verdict_if_converged} -> "
                           f"{verdict_with_budget or 'no row'} with the doubled-budget errors")
        failed = failed or UNDECIDED_BUDGET_FLIPPED
    return failed


def _false(col: pd.Series) -> pd.Series:
    return col.astype(str).str.lower().isin(["false", "0", "0.0"])


def check_liquid(claim: Claim, models: pd.DataFrame, noise_floor_A: float | None = None, max_listed: int = 8) -> bool:
    """A row on the liquid-RDF error rests on clean liquids only: each compared model's run and the teacher
    runs whose g(r) is the reference stayed finite (``rdf_stable``) and melted (``rdf_clean``; runs before the
    melt indicator existed count by ``rdf_stable`` alone); the detail names the others. The seed noise floor
    of the RDF error (two teacher runs differing only in the MD seed), when known, is stated in the detail.
    True for a clean row and for every row not on the RDF error."""
    if not any(METRIC_NAMES[m] in claim.metric for m in RDF_METRICS):
        return True
    if noise_floor_A is not None and np.isfinite(noise_floor_A):
        _add_detail(claim, f"seed noise floor of the RDF error {noise_floor_A:.3g} A")
    if "model_id" not in models:
        return True
    ids = set(claim.compared) | set(models.loc[models["kind"] == "teacher", "model_id"].astype(str))
    sub = models[models["model_id"].astype(str).isin(ids)]
    bad = pd.Series(False, index=sub.index)
    for col in ("rdf_stable", "rdf_clean"):
        if col in sub:
            bad |= _false(sub[col])
    bad = sub[bad]
    if len(bad):
        def why(r) -> str:
            if "rdf_stable" in r and str(r["rdf_stable"]).lower() in ("false", "0", "0.0"):
                return f"{r['model_id']} (collapsed or blew up)"
            mi = r.get("rdf_melt_indicator", math.nan)
            mi = f", melt indicator {float(mi):.2f}" if mi is not None and np.isfinite(float(mi)) else ""
            return f"{r['model_id']} (did not melt{mi})"

        _add_detail(claim, f"liquid not clean: {_listed([why(r) for _, r in bad.iterrows()], max_listed)}")
    return not len(bad)


def gate(claim: Claim, models: pd.DataFrame, cfg: dict, noise_floor_A: float | None = None,
         verdict_with_budget: str | None = None) -> Claim:
    """Whether the row's statistics may speak: its verdict becomes the first failed check's *undecided (...)*
    verdict (unconverged, no budget check, budget check moved the error, budget check flipped the verdict,
    liquid not clean; every failure is named in the detail), else stays the statistics' verdict
    (``verdict_if_converged``). ``verdict_with_budget``: the row's verdict recomputed on
    :func:`with_budget_check_values` (None: no model was budget-checked)."""
    converged = check_convergence(claim, models)
    budget = check_budget(claim, models, cfg, verdict_with_budget)
    clean = check_liquid(claim, models, noise_floor_A)
    if not converged:
        claim.verdict = UNDECIDED
    elif budget is not None:
        claim.verdict = budget
    elif not clean:
        claim.verdict = UNDECIDED_LIQUID
    return claim


# ------------------------------------------------------------------------------------------------------ foundation
#: rdf.experiment (docs/foundation.md): each model's g(r) against the measured liquid-Al g(r)
RDF_EXPERIMENT = "rdf_error_vs_experiment"
FOUNDATION_PAPER = ("(not in the paper: a foundation model as the teacher, docs/foundation.md; the seed paper's "
                    "method with a pretrained universal potential's per-atom energies as the knowledge)")


def foundation_claims(models: pd.DataFrame, cfg: dict, noise_floor_A: float | None = None,
                      calculator: str | None = None) -> list[Claim]:
    """"Students of a foundation model reproduce the experimental liquid structure as well as the teacher":
    per student (each architecture and seed), d = its RDF error against experiment minus the teachers' mean
    one; the claim holds when the interval of ``noise floor - d`` lies above zero, i.e. the students are no
    worse than the teacher by more than the seed noise floor of the RDF error (non-inferiority with the noise
    floor as margin). The teacher is the HIPNN teacher trained on the calculator's labels (the calculator's own
    liquid is not run: too slow on a CPU). One row per distilled kind present (student, student_oracle)."""
    if RDF_EXPERIMENT not in models or not models[RDF_EXPERIMENT].notna().any():
        return []
    conf, power = cfg["confidence"], cfg["power"]
    teach = models[(models["kind"] == "teacher") & models[RDF_EXPERIMENT].notna()]
    who = f"students of {calculator}" if calculator else "students"
    rows = []
    for kind in ("student", "student_oracle"):
        sub = models[(models["kind"] == kind) & models[RDF_EXPERIMENT].notna()]
        if sub.empty:
            continue
        compared = list(sub["model_id"].astype(str)) + list(teach["model_id"].astype(str))
        claim = f"{who} ({kind}) reproduce the experimental liquid structure as well as the teacher"
        t_mean = float(teach[RDF_EXPERIMENT].mean()) if len(teach) else math.nan
        detail = (f"teacher {', '.join(teach['model_id'].astype(str))}: {t_mean:.3g} A" if len(teach)
                  else "no teacher liquid compared with experiment")
        if noise_floor_A is None or not np.isfinite(noise_floor_A) or not len(teach):
            t = Test("non-inferiority within the seed noise floor, model = unit",
                     note="no seed noise floor of the RDF error" if len(teach) else "no teacher value")
        else:
            d = sub[RDF_EXPERIMENT].astype(float) - t_mean
            t = cs.one_sample(noise_floor_A - d, 0.0, conf, power,
                              "one-sample t of (noise floor - (student - teacher)), model = unit")
            detail += f"; seed noise floor of the RDF error {noise_floor_A:.3g} A (the margin)"
        first = "rdf_first_peak_r_shift_vs_experiment_A"
        if first in sub and sub[first].notna().any():
            detail += f"; students' first-peak shift vs experiment {float(sub[first].mean()):+.3f} A"
            if first in teach and teach[first].notna().any():
                detail += f", teacher's {float(teach[first].mean()):+.3f} A"
        row = make_claim("foundation model", claim, FOUNDATION_PAPER,
                         "liquid-Al RDF error vs the experimental g(r) (A)", t,
                         f"{kind} (every architecture and seed) vs the teacher's mean", detail,
                         unit="A: noise floor - (student - teacher) error vs experiment", unit_of_n="models",
                         baseline_mean=t_mean, claimed_mean=float(sub[RDF_EXPERIMENT].mean()), compared=compared)
        # the liquid gate of the RDF rows (gate_liquid keys on the metric's name): every run must be clean
        metric, row.metric = row.metric, METRIC_NAMES[RDF_TEACHER]
        row = gate(row, models, cfg, None)
        row.metric = metric
        rows.append(row)
    return rows


def foundation_headline(models: pd.DataFrame, cost: dict | None) -> pd.DataFrame:
    """Headline rows against the foundation model itself: the most accurate student's MD time per atom-step
    (ase engine: the calculator runs on it) and memory per atom over the calculator's own
    (:mod:`tsmlip.md.calculator_cost`; its smaller system is named in ``meaning``)."""
    cols = ["device", "quantity", "unit", "best_student", "student", "foundation", "vs_foundation", "meaning"]
    best = best_student_arch(models)
    if not cost or best is None:
        return pd.DataFrame(columns=cols)
    name = (cost.get("calculator") or {}).get("name", "calculator")
    rows = []
    col = "md_ase_us_per_atom_step"
    sel = models[(models["arch"] == best) & models[col].notna()] if col in models else models.iloc[0:0]
    s = float(sel[col].mean()) if len(sel) else math.nan
    f = cost.get("us_per_atom_step") or math.nan
    rows.append({"device": cost.get("device"), "quantity": "MD time per step per atom (ase)", "unit": "us",
                 "best_student": best, "student": s, "foundation": f, "vs_foundation": f / s if s else math.nan,
                 "meaning": f"speed-up: {name}'s time / student's ({name} on {cost.get('n_atoms')} atoms, the "
                            f"models on {cost.get('models_n_atoms')})"})
    for mcol in ("memory_per_atom_slope_bytes", "memory_per_atom_bytes"):
        if mcol in models and models[mcol].notna().any():
            sel = models[(models["arch"] == best) & models[mcol].notna()]
            s = float(sel[mcol].mean()) if len(sel) else math.nan
            f = cost.get("memory_per_atom_slope_bytes") or math.nan
            rows.append({"device": cost.get("device"), "quantity": f"memory per atom ({mcol})", "unit": "bytes",
                         "best_student": best, "student": s, "foundation": f,
                         "vs_foundation": s / f if f else math.nan,
                         "meaning": f"memory fraction: student / {name} ({name}: slope of one force call's peak "
                                    f"memory over {[r['n_atoms'] for r in cost.get('memory_sizes', [])]} atoms)"})
            break
    return pd.DataFrame(rows, columns=cols)


# ------------------------------------------------------------------------------------------------------ table


def check_config(cfg: dict | None) -> dict:
    """The ``aggregate`` config section, with every key the claims read (no defaults here: config/)."""
    cfg = dict(cfg or {})
    missing = [k for k in CONFIG_KEYS if k not in cfg]
    if missing:
        raise ValueError(f"claims: config section 'aggregate' lacks {', '.join(missing)} (see config/config.yaml)")
    return cfg


def statistical_claims(models: pd.DataFrame, labels: dict | None, cfg: dict, rdf_noise_floor_A: float | None = None
                       ) -> list[Claim]:
    """Every claim row computable from ``models``, with the statistics' verdicts (no gate applied)."""
    kinds = set(models["kind"])
    rows: list[Claim] = []
    if {"student", "control"} <= kinds:
        for cost, name in cost_columns(models).items():
            rows.append(pareto_claim(models, cost, name, cfg))
        rows += paired_claims(models, "accuracy at equal weights", "students have lower force RMSE than controls",
                              "force", "control", "student", FORCE, cfg, per_arch=True)
        rows += paired_claims(models, "accuracy at equal weights", "students' energy-per-atom RMSE differs only "
                              "minimally from controls'", "energy", "control", "student", ENERGY_PER_ATOM, cfg,
                              equivalence=True)
        rows += rdf_claims(models, cfg, rdf_noise_floor_A)
        tracks = tracks_claim(models, cfg)
        if tracks is not None:
            rows.append(tracks)
        if "epochs_to_threshold" in models:
            rows.append(learning_speed_claim(models, cfg))
    rows += scaling_claims(models, cfg)
    rows += cost_vs_teacher_claims(models, cfg)
    rows += ablation_claims(models, cfg)
    rows += born_again_claims(models, cfg)
    rows += beyond_claims(models, cfg, rdf_noise_floor_A)
    if "student" in kinds:
        rows += knowledge_claims(models, labels, cfg)
    return rows


def _row_keys(rows: list[Claim]) -> list[tuple]:
    """(section, claim, metric, occurrence) of each row: what matches a row across two computations."""
    seen: dict[tuple, int] = {}
    keys = []
    for r in rows:
        k = (r.section, r.claim, r.metric)
        seen[k] = seen.get(k, -1) + 1
        keys.append((*k, seen[k]))
    return keys


def all_claims(models: pd.DataFrame, labels: dict | None, cfg: dict, rdf_noise_floor_A: float | None = None
               ) -> pd.DataFrame:
    """Every claim row computable from ``models`` (and the labels' check results), gated (:func:`gate`), as a
    DataFrame. ``rdf_noise_floor_A``: the RDF error between two teacher liquids that differ only in seed."""
    cfg = check_config(cfg)
    rows = statistical_claims(models, labels, cfg, rdf_noise_floor_A)
    checked = with_budget_check_values(models)
    with_budget: dict[tuple, str] | None = None
    if checked is not None:
        again = statistical_claims(checked, labels, cfg, rdf_noise_floor_A)
        with_budget = {k: r.verdict for k, r in zip(_row_keys(again), again)}
    rows = [gate(r, models, cfg, rdf_noise_floor_A, None if with_budget is None else with_budget.get(k, ""))
            for k, r in zip(_row_keys(rows), rows)]
    return pd.DataFrame([{k: v for k, v in asdict(r).items() if k != "compared"} for r in rows], columns=COLUMNS)


# ------------------------------------------------------------------------------------------------------ headline


def headline_table(models: pd.DataFrame) -> pd.DataFrame:
    """Per device: the most accurate student architecture's MD time and memory per atom against the teacher's
    and its control's (same architecture), and its accuracy gap to both.

    Columns: device, quantity, unit, best_student, student, teacher, control, vs_teacher, vs_control, meaning
    (what the two ratios are). Costs are means over the models measured on that device; errors means over seeds.
    """
    best, teach = best_student_arch(models), teacher_arch(models)
    if best is None or teach is None:
        return pd.DataFrame(columns=["device", "quantity", "unit", "best_student", "student", "teacher", "control",
                                     "vs_teacher", "vs_control", "meaning"])
    rows = []
    devices = sorted({d for cost in cost_columns(models) for d in measured(models, cost)["device"]}) or ["-"]

    def mean_of(df, kind, arch, col):
        sel = df[(df["arch"] == arch) & ((df["kind"] == kind) if kind else True)]
        return float(sel[col].mean()) if col in sel and len(sel) else math.nan

    for device in devices:
        for cost, name in cost_columns(models).items():
            m = measured(models, cost)
            m = m[m["device"] == device]
            s, t = mean_of(m, None, best, cost), mean_of(m, None, teach, cost)
            c = s  # a student and its control share the architecture: same cost
            memory = cost == "memory_per_atom_bytes"
            rows.append({
                "device": device, "quantity": name, "unit": "bytes" if memory else "us",
                "best_student": best, "student": s, "teacher": t, "control": c,
                "vs_teacher": s / t if memory else t / s, "vs_control": s / c if memory else c / s,
                "meaning": "memory fraction: student / other" if memory else "speed-up: other's time / student's",
            })
        for col, name, unit in ((FORCE, "test force RMSE", "eV/A"), (ENERGY_PER_ATOM, "test energy RMSE per atom", "eV")):
            s, t, c = (mean_of(models, k, a, col) for k, a in (("student", best), ("teacher", teach), ("control", best)))
            rows.append({
                "device": device, "quantity": name, "unit": unit, "best_student": best, "student": s, "teacher": t,
                "control": c, "vs_teacher": (s - t) / t if t else math.nan, "vs_control": (s - c) / c if c else math.nan,
                "meaning": "accuracy gap: (student - other) / other (negative = the student is more accurate)",
            })
    return pd.DataFrame(rows)


def headline_human(table: pd.DataFrame) -> pd.DataFrame:
    def ratio(v, meaning):
        if not np.isfinite(v):
            return "-"
        if meaning.startswith("accuracy"):
            return f"{100 * v:+.1f}%"
        return f"{v:.2f}x faster" if meaning.startswith("speed") else f"{v:.2f}x the memory"

    out = pd.DataFrame({
        "device": table["device"],
        "quantity": [f"{q} ({u})" for q, u in zip(table["quantity"], table["unit"])],
        "best student": table["best_student"],
        "student": table["student"].map(fmt),
        "teacher": table["teacher"].map(fmt),
        "student vs teacher": [ratio(v, m) for v, m in zip(table["vs_teacher"], table["meaning"])],
        "control (same architecture)": table["control"].map(fmt),
        "student vs control": [ratio(v, m) for v, m in zip(table["vs_control"], table["meaning"])],
    })
    if "foundation" in table:  # rows against the teacher calculator itself (foundation_headline)
        out["foundation model"] = table["foundation"].map(fmt)
        def versus(v, meaning):  # ratios of 1,000x and of 1/1,000: three significant digits
            if not np.isfinite(v):
                return "-"
            text = f"{v:,.0f}" if v >= 100 else f"{v:.3g}"
            return f"{text}x faster" if meaning.startswith("speed") else f"{text}x the memory"

        out["student vs foundation model"] = [versus(v, m) for v, m in zip(table["vs_foundation"], table["meaning"])]
    return out


HEADLINE_INTRO = (
    "The most accurate student architecture (lowest mean test force RMSE) against the teacher and against its "
    "control (same architecture, trained on ground truth only). MD time and memory per atom are means over the "
    "models measured on each device (they depend on the architecture only: the control's cost is the student's); "
    "errors are means over seeds. The tests behind these numbers are in claims.md."
)


# ------------------------------------------------------------------------------------------------------ writing


def _pct(x, sign: bool = True) -> str:
    if x is None or not np.isfinite(x):
        return "-"
    return f"{100 * x:+.1f}%" if sign else f"{100 * x:.1f}%"


def _effect_text(unit: str, x) -> str:
    return _pct(x) if unit.startswith("relative") else fmt(x)


def verdict_rule_text(cfg: dict) -> list[str]:
    """The rule behind the verdicts, in plain words (paragraphs, markdown emphasis)."""
    cfg = check_config(cfg)
    conf = 100 * cfg["confidence"]
    alpha = 100 * (1 - cfg["confidence"])
    return [
        "**What a row says.** Each row turns one sentence of the paper into a number, the **effect**, signed so "
        "that a positive value supports the sentence; for errors it is the relative improvement "
        "(baseline - claimed) / baseline, so +10% means the claimed model's error is 10% lower. Models of the same "
        "architecture and seed start from the same weights, so students are compared with their own controls. The "
        "**seed is the unit**: a row over several architectures first averages each seed's differences over the "
        "architectures, so n counts seeds, not pairs.",
        f"**Verdict.** *holds* when the test says, at {conf:g}% confidence, that the effect is above "
        f"{100 * cfg['min_relative_effect']:g}% (the {conf:g}% interval lies above it); *does not hold* when it is "
        f"significantly below; *inconclusive* when the seeds' spread cannot tell. Where the paper says "
        f"\"comparable\" or \"only minimally\", the row asks whether the effect lies within "
        f"±{100 * cfg['equivalence_margin']:g}% (two one-sided tests, TOST): *holds* when the {100 - 2 * alpha:g}% "
        f"interval lies inside the margin, *does not hold* when it lies outside. Rows per architecture are "
        f"corrected for testing several architectures at once (Holm), so their intervals are wider. Born-Again "
        f"students are compared with the teacher's own seed-to-seed spread; with one teacher seed there is no "
        f"interval. A row on the liquid's RDF error is first held against the seed noise floor, the RDF error "
        f"between two teacher liquids that differ only in seed, below which RDF errors are not resolved: when "
        f"two one-sided tests put the models' RDF-error differences (in A, seed = unit) inside ±the floor, the "
        f"row is *{INDISTINGUISHABLE}*, never holds or does not hold; otherwise the paired t decides.",
        f"**When a row is decided.** Only when training is shown to have converged. (1) Every model the row "
        f"compares stopped by the stopping rule, not at the epoch cap; otherwise *{UNDECIDED}* (the detail names "
        f"the models). (2) Some models were trained again from scratch with every budget doubled (learning-rate "
        f"patience, termination patience, epoch cap): the budget check. The checks that count for a row are "
        f"those of the kinds and architectures it compares (a per-architecture row: its architecture; where "
        f"none has it, its kinds' checks at every architecture). The row is *{UNDECIDED_NO_BUDGET_CHECK}* when "
        f"none of its kinds was checked, *{UNDECIDED_BUDGET_MOVED}* when a check moved the test force RMSE by "
        f"{100 * cfg['budget_check_max_relative_change']:g}% or more, and *{UNDECIDED_BUDGET_FLIPPED}* when its "
        f"statistics, recomputed with the doubled-budget errors in place of the checked models' own, give "
        f"another verdict. (3) A row on the liquid's RDF error whose liquid runs (the compared models' or the "
        f"teacher's) collapsed, blew up or never melted is *{UNDECIDED_LIQUID}*. An undecided row keeps what "
        f"its statistics say in verdict_if_converged: fix the training (or the liquid) first.",
        f"**Detectable effect.** The smallest true effect this run would have found {100 * cfg['power']:g}% of the "
        f"time with its n and spread (for equivalence rows: the smallest margin it could have confirmed if there "
        f"were no difference at all). An inconclusive row whose detectable effect is far larger than the effect "
        f"the paper reports needs more seeds; one whose detectable effect is already small says the effect, if "
        f"any, is small. Every test and interval comes from scipy.stats (t, Welch, TOST, Pearson, regression), "
        f"with one exception: memory per atom against the teacher. The max-atoms probe is deterministic (run "
        f"again, it finds the same limit), so there is no spread to test; its bisection bounds each limit, and "
        f"the row holds when those bounds leave no doubt.",
    ]


def _budget_text(n, max_change, verdict) -> str:
    """The budget-check cell: how many checked models decided the row, their largest change, and the verdict
    with their doubled-budget errors."""
    if not n or not np.isfinite(float(n)) or int(n) == 0:
        return "none"
    v = verdict if isinstance(verdict, str) and verdict else "-"
    return f"{int(n)} models, max change {_pct(max_change, sign=False)}; verdict then: {v}"


def human_table(claims: pd.DataFrame) -> pd.DataFrame:
    """One readable table: effects in percent where relative, the interval with its level."""
    def ci(unit, level, lo, hi):
        if not (np.isfinite(lo) or np.isfinite(hi)):
            return "-"
        lvl = f"{100 * level:.3g}% " if np.isfinite(level) else "bounds "
        return f"{lvl}[{_effect_text(unit, lo)}, {_effect_text(unit, hi)}]"

    def p_text(p, pa):
        if not np.isfinite(p):
            return "-"
        return f"{p:.2g}" + (f" (Holm {pa:.2g})" if np.isfinite(pa) else "")

    return pd.DataFrame({
        "section": claims["section"],
        "claim": claims["claim"],
        "paper": claims["paper"],
        "metric": claims["metric"],
        "test": claims["test"],
        "n": [f"{n} {u}" for n, u in zip(claims["n"], claims["unit_of_n"])],
        "effect": [_effect_text(u, x) for u, x in zip(claims["unit"], claims["effect"])],
        "interval": [ci(*a) for a in zip(claims["unit"], claims["ci_level"], claims["ci_low"], claims["ci_high"])],
        "p": [p_text(p, pa) for p, pa in zip(claims["p_value"], claims["p_adjusted"])],
        "detectable": [_pct(x, sign=False) if str(u).startswith("relative") else fmt(x)
                       for u, x in zip(claims["unit"], claims["detectable_effect"])],
        "verdict": claims["verdict"],
        "converged": ["yes" if a else f"no ({n})" for a, n in zip(claims["all_converged"], claims["n_unconverged"])],
        "budget check": [_budget_text(n, x, v) for n, x, v in zip(claims["n_budget_checked"],
                                                                  claims["budget_check_max_abs_change"],
                                                                  claims["verdict_with_budget_check"])],
        "comparison / detail": [f"{c}. {d}".strip(". ") for c, d in zip(claims["comparison"], claims["detail"])],
    })


def claims_markdown(claims: pd.DataFrame, cfg: dict) -> str:
    """The claims as a markdown page: the verdict rule in plain words, then one table."""
    lines = ["# The paper's claims, tested on this run", ""]
    for para in verdict_rule_text(cfg):
        lines += [para, ""]
    human = human_table(claims)
    human["verdict"] = human["verdict"].map(lambda v: f"**{v}**")
    lines.append(markdown_table(human))
    return "\n".join(lines)


def headline_markdown(table: pd.DataFrame) -> str:
    return "\n".join(["# Headline: the best student against the teacher and its control", "", HEADLINE_INTRO, "",
                      markdown_table(headline_human(table))])


def main(argv: list[str] | None = None) -> int:
    """``tsmlip claims``: models.csv (+ labels/atom_energies.json) -> claims.csv, claims.md (+ .html) and the
    headline table."""
    ap = argparse.ArgumentParser(prog="tsmlip claims", description=main.__doc__)
    ap.add_argument("--models", required=True, help="tables/models.csv")
    ap.add_argument("--labels", default=None, help="labels/atom_energies.json (its vs_reference check)")
    ap.add_argument("--config-json", required=True, help="the config's aggregate section, as JSON")
    ap.add_argument("--rdf-noise-floor", default=None,
                    help="rdf_noise/noise_floor.json: the RDF error between two teacher liquids of different seeds")
    ap.add_argument("--foundation-cost", default=None,
                    help="foundation/cost.json: the teacher calculator's own MD cost (docs/foundation.md)")
    ap.add_argument("--foundation-name", default=None, help="the teacher calculator's name (foundation claims)")
    ap.add_argument("--out-csv", required=True)
    ap.add_argument("--out-md", required=True)
    ap.add_argument("--out-html", default=None)
    ap.add_argument("--out-headline-csv", default=None)
    ap.add_argument("--out-headline-md", default=None)
    ap.add_argument("--out-headline-html", default=None)
    args = ap.parse_args(argv)

    cfg = check_config(json.loads(args.config_json))
    models = pd.read_csv(args.models)
    labels = json.loads(Path(args.labels).read_text()) if args.labels else None
    floor = None
    if args.rdf_noise_floor:
        floor = json.loads(Path(args.rdf_noise_floor).read_text()).get("error_vs_teacher")
        floor = float(floor) if floor is not None else None
    claims = all_claims(models, labels, cfg, floor)
    extra = foundation_claims(models, cfg, floor, args.foundation_name)
    if extra:
        claims = pd.concat([claims, pd.DataFrame([{k: v for k, v in asdict(r).items() if k != "compared"}
                                                  for r in extra], columns=COLUMNS)], ignore_index=True)
    Path(args.out_csv).parent.mkdir(parents=True, exist_ok=True)
    claims.to_csv(args.out_csv, index=False)
    Path(args.out_md).write_text(claims_markdown(claims, cfg))
    if args.out_html:
        notes = "".join(f"<p>{html.escape(p.replace('**', '').replace('*', ''))}</p>" for p in verdict_rule_text(cfg))
        write_html_table(human_table(claims), args.out_html, "The paper's claims, tested on this run", notes)
    head = headline_table(models)
    if args.foundation_cost:
        fh = foundation_headline(models, json.loads(Path(args.foundation_cost).read_text()))
        if len(fh):
            head = pd.concat([head, fh], ignore_index=True)
    if args.out_headline_csv:
        head.to_csv(args.out_headline_csv, index=False)
    if args.out_headline_md:
        Path(args.out_headline_md).write_text(headline_markdown(head))
    if args.out_headline_html:
        write_html_table(headline_human(head), args.out_headline_html, "Headline: the best student against the "
                         "teacher and its control", f"<p>{html.escape(HEADLINE_INTRO)}</p>")
    counts = claims["verdict"].value_counts().to_dict()
    print(f"[claims] {len(claims)} rows: {counts} -> {args.out_csv}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
