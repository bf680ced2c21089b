"""The gates: whether a row's statistics may speak. A row is *undecided (...)* when a model it compares stopped at
the epoch cap, when its kinds have no budget-checked model, when a budget check moved the error or flipped the
verdict, or (RDF rows) when a liquid is not clean; :func:`gate` applies them all."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..tables import BUDGET_CHECK_ERROR, BUDGET_CHECK_METRICS, STOPPED_BY_RULE
from .claim import METRIC_NAMES, RDF_METRICS, Claim, pct, plural
from .verdicts import (UNDECIDED, UNDECIDED_BUDGET_FLIPPED, UNDECIDED_BUDGET_MOVED, UNDECIDED_LIQUID,
                       UNDECIDED_NO_BUDGET_CHECK)


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


def budget_check_groups(checks: pd.DataFrame) -> pd.DataFrame:
    """The budget checks by kind x architecture: ``n`` checked seeds, ``base`` and ``doubled`` the means of their
    test force RMSE at the base and the doubled budget, ``change`` = doubled / base - 1 (NaN where a model of the
    group has no finite pair), ``stopped_late`` the group's checked models that stopped at their epoch cap. With
    one checked seed per group (the teacher, a Born-Again kind) the change is that model's own."""
    col = f"budget_check_{BUDGET_CHECK_ERROR}"
    rows = []
    for (kind, arch), g in checks.groupby(["kind", "arch"], sort=True):
        base, doubled = g[BUDGET_CHECK_ERROR].astype(float), g[col].astype(float)
        ok = bool(np.isfinite(base).all() and np.isfinite(doubled).all() and base.mean() > 0)
        late = g[g["budget_check_stopped_by"].astype(str) != STOPPED_BY_RULE] \
            if "budget_check_stopped_by" in g else g.iloc[0:0]
        rows.append({"kind": kind, "arch": arch, "n": int(len(g)), "base": float(base.mean()),
                     "doubled": float(doubled.mean()),
                     "change": float(doubled.mean() / base.mean() - 1) if ok else math.nan,
                     "stopped_late": list(late["model_id"].astype(str)), "model_ids": list(g["model_id"].astype(str))})
    return pd.DataFrame(rows, columns=["kind", "arch", "n", "base", "doubled", "change", "stopped_late", "model_ids"])


def budget_check_table(models: pd.DataFrame, cfg: dict) -> pd.DataFrame:
    """Every budget check by kind x architecture (:func:`budget_check_groups`), as the claims judge them:
    ``passes`` when the doubled budget moved the checked seeds' mean test force RMSE by less than
    ``budget_check_max_relative_change`` (a row may still fall when its verdict flips; claims.csv says)."""
    t = budget_check_groups(budget_checks(models))
    limit = float(cfg["budget_check_max_relative_change"])
    out = pd.DataFrame({"kind": t["kind"], "arch": t["arch"], "n_seeds": t["n"],
                        f"base_{BUDGET_CHECK_ERROR}": t["base"], f"doubled_{BUDGET_CHECK_ERROR}": t["doubled"],
                        "relative_change": t["change"], "limit": limit,
                        "passes": t["change"].abs() < limit,
                        "stopped_at_cap": [" ".join(ids) for ids in t["stopped_late"]]})
    return out


def _group_name(r) -> str:
    """A checked model's id, or ``kind/arch (n seeds' mean)`` for a group of several."""
    return f"{r['kind']}/{r['arch']} ({r['n']} seeds' mean)" if r["n"] > 1 else r["model_ids"][0]


def check_budget(claim: Claim, models: pd.DataFrame, cfg: dict, verdict_with_budget: str | None,
                 max_listed: int = 8) -> str | None:
    """The budget check of the row's kinds and architectures; None when it passed, else the undecided verdict.

    The checks that count are the budget-checked models of a kind the row compares and of an architecture it
    compares (so a per-architecture row takes its architecture's checks, a pooled row all of them); where no
    check has the row's architecture, the checks of its kinds at every architecture. They are judged by kind x
    architecture (:func:`budget_check_groups`): the relative change of the mean test force RMSE of the group's
    checked seeds (the quantity the claims compare; one seed: the model's own change). It fails when any group
    moved by ``budget_check_max_relative_change`` or more (relative, either way), or when the row's statistics
    recomputed with the doubled-budget errors (``verdict_with_budget``) give another verdict; a row none of whose
    kinds has a budget-checked model is undecided (no budget check)."""
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
    groups = budget_check_groups(used)
    change = groups["change"]
    claim.n_budget_checked = int(len(used))
    claim.budget_check_max_abs_change = float(change.abs().max()) if change.notna().any() else math.nan
    moved = groups[~(change.abs() < limit)]  # a change that cannot be computed does not pass either
    failed = None
    if len(moved):
        listed = [f"{_group_name(r)} by {pct(r['change'])}" for _, r in moved.iterrows()]
        _add_detail(claim, f"budget check moved the test force RMSE of {_listed(listed, max_listed)} (limit "
                           f"±{100 * limit:g}%)")
        failed = UNDECIDED_BUDGET_MOVED
    else:
        _add_detail(claim, f"budget check passed: {plural(len(used), 'model')} "
                           f"({plural(len(groups), 'kind x architecture group')}), largest change "
                           f"{pct(claim.budget_check_max_abs_change, sign=False)} (limit ±{100 * limit:g}%)")
    late = [m for ids in groups["stopped_late"] for m in ids]
    if late:
        _add_detail(claim, f"budget-check models stopped at their epoch cap (their change is a lower bound): "
                           f"{_listed(late, max_listed)}")
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
    (``verdict_if_converged``). A row on a quantity training does not change (``depends_on_training`` False: MD
    time, memory per atom) passes ungated. ``verdict_with_budget``: the row's verdict recomputed on
    :func:`with_budget_check_values` (None: no model was budget-checked)."""
    if not claim.depends_on_training:  # MD time, memory per atom: the architecture's, whatever its training
        _add_detail(claim, "a property of the architecture: not gated by convergence or the budget check")
        return claim
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

