"""The claims table for people: the verdict rule in plain words, one readable table (markdown, HTML)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..tables import fmt, markdown_table, write_html_table
from .claim import pct
from .verdicts import (INDISTINGUISHABLE, UNDECIDED, UNDECIDED_BUDGET_FLIPPED, UNDECIDED_BUDGET_MOVED, UNDECIDED_LIQUID,
                       UNDECIDED_NO_BUDGET_CHECK, VERDICT_STYLE, verdict_css_class)


def write_html(df: pd.DataFrame, path: str | Path, title: str, notes: str = "") -> None:
    """A claims page as HTML (:func:`tsmlip.tables.write_html_table`), its verdict cells coloured."""
    write_html_table(df, path, title, notes, cell_class=verdict_css_class, style=VERDICT_STYLE)


def _effect_text(unit: str, x) -> str:
    return pct(x) if unit.startswith("relative") else fmt(x)


def verdict_rule_text(cfg: dict) -> list[str]:
    """The rule behind the verdicts, in plain words (paragraphs, markdown emphasis)."""
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
        f"patience, termination patience, warm-up, epoch cap): the budget check. The checks that count for a row are "
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
    return f"{int(n)} models, max change {pct(max_change, sign=False)}; verdict then: {v}"


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
        "detectable": [pct(x, sign=False) if str(u).startswith("relative") else fmt(x)
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


def budget_check_markdown(checks: pd.DataFrame) -> str:
    """The budget checks (:func:`tsmlip.claims.gates.budget_check_table`) as a markdown section: one line per kind x
    architecture, its checked seeds' mean test force RMSE at the base and the doubled budget and the change."""
    if checks.empty:
        return "\n\n## Budget checks\n\nNo model was trained again with a doubled budget.\n"
    base, doubled = [c for c in checks.columns if c.startswith(("base_", "doubled_"))]
    human = pd.DataFrame({
        "kind": checks["kind"], "architecture": checks["arch"], "seeds": checks["n_seeds"],
        "test force RMSE (eV/A)": checks[base].map(lambda v: f"{v:.4f}"),
        "doubled budget": checks[doubled].map(lambda v: f"{v:.4f}"),
        "change": checks["relative_change"].map(lambda v: pct(v)),
        "within the limit": checks["passes"].map(lambda v: "yes" if v else "**no**"),
    })
    n_pass = int(checks["passes"].sum())
    limit = float(checks["limit"].iloc[0])
    return (f"\n\n## Budget checks\n\n{n_pass} of {len(checks)} kind x architecture checks moved the mean test force "
            f"RMSE of their checked seeds by less than {100 * limit:g}% when every budget was doubled.\n\n"
            + markdown_table(human) + "\n")
