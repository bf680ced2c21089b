"""The claim rows on cost: the best student against the teacher (the abstract: MD time, memory per atom),
cost against the number of weights (Fig. 5), and Pareto dominance of error against cost (Fig. 2)."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from ..tables import fmt, md_time_engines, pareto_front
from . import stats as cs
from .claim import FORCE, Claim, Evidence, Statement, make_claim, model_ids, pair_ids, pairs
from .stats import Test
from .verdicts import FAILS, HOLDS, INCONCLUSIVE


def cost_columns(models: pd.DataFrame) -> dict[str, str]:
    """Cost columns present in the table: ``{column: readable name}`` (MD time per engine, memory)."""
    out = {}
    for engine in md_time_engines(models):
        out[f"md_{engine}_us_per_atom_step"] = f"MD time per step per atom ({engine})"
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
    compared = model_ids(models[((models["kind"] == "student") & (models["arch"] == best)) | (models["kind"] == "teacher")])
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
                out.append(make_claim(Statement("cost vs the teacher", f"the best student needs less memory per atom "
                                                f"than the teacher ({device})", "abstract_memory", cost,
                                                unit="relative memory saved: 1 - student / teacher", unit_of_n=unit_n,
                                                depends_on_training=False),
                                      t, Evidence(comparison, detail, t_sub[cost].mean(), s_sub[cost].mean(),
                                                  compared)))
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
                out.append(make_claim(Statement("cost vs the teacher", f"the best student runs MD faster than the "
                                                f"teacher ({name}, {device})", "abstract_time", f"{name} (us)",
                                                unit="relative time saved: 1 - student / teacher",
                                                unit_of_n=t_unit if t_unit == s_unit else f"{t_unit} / {s_unit}",
                                                depends_on_training=False),
                                      t, Evidence(comparison, detail, t_sub[cost].mean(), s_sub[cost].mean(),
                                                  compared)))
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
            what = "less memory per atom (more atoms per device)" if memory else "faster MD"
            out.append(make_claim(Statement("speed and scalability", f"fewer weights, {what} ({name}, {device})",
                                            "scaling_memory" if memory else "scaling_time",
                                            f"{name} vs number of weights", unit="slope d log(cost) / d log(weights)",
                                            unit_of_n="architectures", depends_on_training=False), t,
                                  Evidence("one point per architecture (mean over its measured models)", detail,
                                           compared=model_ids(part))))
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
            compared += pair_ids(p)
        else:
            b = models[(models["kind"] == baseline_kind) & (models["arch"] == c["arch"])]
            s = models[(models["kind"] == claimed_kind) & (models["arch"] == best["arch"])]
            t = cs.two_sample(b[error], s[error], m0, conf, power, "Welch t")
            compared += model_ids(b) + model_ids(s)
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
    detail = "; ".join(notes + missing) + ("; effect, interval and p of the weakest point (p: the largest over the "
                                           "points), detectable: the largest" if tests else "")
    return make_claim(Statement("Pareto dominance", f"{claimed_kind}s Pareto-dominate {baseline_kind}s ({cost_name})",
                                "pareto", error, unit_of_n="front points"), row,
                      Evidence(comparison, detail, compared=compared))
