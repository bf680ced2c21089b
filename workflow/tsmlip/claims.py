"""The paper's claims, tested on this run's own numbers (``tables/claims.csv`` and ``tables/claims.md``).

Every row reduces a claim to one **effect**: a relative improvement in the claimed direction,
``(baseline - claimed) / baseline`` (e.g. a control's force RMSE minus its student's, divided by the
control's), so a positive effect means the claim is borne out and 0.10 means 10 %.

- **Paired** rows (students vs controls, the ablations, learning speed): models of the same architecture and
  seed start from the same initial weights, so each (architecture, seed) gives one difference; the effect is
  the mean of the per-pair relative differences, ``spread`` their sample standard deviation, ``n`` the number
  of pairs.
- **Unpaired** rows (Born-Again vs teacher, Pareto fronts): effect from the two group means; the interval is
  Welch's, or a one-sample interval around the single value when one side has one model.

The **verdict** uses the two-sided Student-t confidence interval of the mean effect at level ``confidence``
(config ``aggregate.confidence``), ``mean ± t(n-1) * spread / sqrt(n)`` for paired rows:

- *holds*: the whole interval lies above ``min_relative_effect`` (config; default 0);
- *does not hold*: the whole interval lies below it;
- *inconclusive*: the interval contains it (the effect is within the seed spread), or fewer than two values
  exist to estimate a spread.

Pareto dominance (per cost: MD time per step per atom for each MD engine, memory per atom; an
architecture's cost is the mean over all its models, since cost does not depend on training): for every
point on the controls' Pareto front (error means over seeds), the most accurate student whose cost is at
most ``(1 + pareto_cost_tolerance)`` times the control's is found; the claim holds when every such student is more accurate than its control by the
criterion above (paired by seed when the student has the control's architecture, else unpaired), does not hold when some control is significantly more accurate than every student at its
cost, and is inconclusive otherwise (also when no student is that cheap). The row reports the smallest
of these margins.
"""
from __future__ import annotations

import argparse
import html
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .aggregate import fmt, markdown_table, pareto_front, write_html_table

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
FORCE, ENERGY_PER_ATOM, ENERGY = "test_force_rmse_eV_A", "test_energy_per_atom_rmse_eV", "test_energy_rmse_eV"
METRIC_NAMES = {
    FORCE: "test force RMSE (eV/A)",
    ENERGY_PER_ATOM: "test energy RMSE per atom (eV)",
    ENERGY: "test energy RMSE (eV)",
    "test_atom_energy_rmse_eV": "test atom-energy RMSE vs the teacher (eV)",
    "epochs_to_threshold": "epochs to reach the validation force RMSE threshold",
    "memory_per_atom_bytes": "memory per atom (bytes)",
}


@dataclass
class Claim:
    section: str
    claim: str
    comparison: str
    metric: str
    unit: str
    baseline_mean: float
    claimed_mean: float
    effect: float
    spread: float
    n: int
    ci_low: float
    ci_high: float
    verdict: str
    detail: str = ""


@dataclass
class Effect:
    """A relative effect with its interval (see the module docstring)."""

    effect: float
    spread: float
    n: int
    ci_low: float
    ci_high: float
    baseline_mean: float
    claimed_mean: float


def verdict(ci_low: float, ci_high: float, min_effect: float = 0.0) -> str:
    """holds / does not hold / inconclusive from a confidence interval (NaN bounds: inconclusive)."""
    if not (np.isfinite(ci_low) and np.isfinite(ci_high)):
        return INCONCLUSIVE
    if ci_low > min_effect:
        return HOLDS
    if ci_high < min_effect:
        return FAILS
    return INCONCLUSIVE


def paired_effect(baseline, claimed, confidence: float = 0.95) -> Effect:
    """Mean relative improvement ``(b - c) / b`` over pairs, its sample std and t interval."""
    b = np.asarray(baseline, dtype=float)
    c = np.asarray(claimed, dtype=float)
    ok = np.isfinite(b) & np.isfinite(c) & (b != 0)
    b, c = b[ok], c[ok]
    d = (b - c) / b
    n = int(d.size)
    if n == 0:
        return Effect(math.nan, math.nan, 0, math.nan, math.nan, math.nan, math.nan)
    mean = float(d.mean())
    if n < 2:
        return Effect(mean, math.nan, n, math.nan, math.nan, float(b.mean()), float(c.mean()))
    sd = float(d.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return Effect(mean, sd, n, mean - half, mean + half, float(b.mean()), float(c.mean()))


def unpaired_effect(baseline, claimed, confidence: float = 0.95) -> Effect:
    """Relative improvement of the claimed group's mean over the baseline's, ``(mb - mc) / mb``.

    Interval: Welch's t for two groups of two or more values; a one-sample t interval when one group has a
    single value (treated as exact); none when both have one. ``spread`` is the standard error of the
    relative difference and ``n`` the size of the claimed group.
    """
    b = np.asarray(baseline, dtype=float)
    c = np.asarray(claimed, dtype=float)
    b, c = b[np.isfinite(b)], c[np.isfinite(c)]
    nb, nc = b.size, c.size
    if nb == 0 or nc == 0 or b.mean() == 0:
        return Effect(math.nan, math.nan, int(nc), math.nan, math.nan,
                      float(b.mean()) if nb else math.nan, float(c.mean()) if nc else math.nan)
    mb, mc = float(b.mean()), float(c.mean())
    effect = (mb - mc) / mb
    vb = b.var(ddof=1) / nb if nb > 1 else 0.0
    vc = c.var(ddof=1) / nc if nc > 1 else 0.0
    if nb < 2 and nc < 2:
        return Effect(effect, math.nan, int(nc), math.nan, math.nan, mb, mc)
    se = math.sqrt(vb + vc)
    if nb > 1 and nc > 1:
        num = (vb + vc) ** 2
        den = (vb**2 / (nb - 1) if vb else 0.0) + (vc**2 / (nc - 1) if vc else 0.0)
        df = num / den if den > 0 else float(nb + nc - 2)
    else:
        df = float(max(nb, nc) - 1)
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se / abs(mb) if se > 0 else 0.0
    return Effect(effect, se / abs(mb), int(nc), effect - half, effect + half, mb, mc)


def _claim(section, claim, comparison, metric, eff: Effect, min_effect: float, detail: str = "", unit=None) -> Claim:
    name = METRIC_NAMES.get(metric, metric)
    return Claim(
        section=section, claim=claim, comparison=comparison, metric=name,
        unit=unit or "relative improvement (baseline - claimed) / baseline",
        baseline_mean=eff.baseline_mean, claimed_mean=eff.claimed_mean, effect=eff.effect, spread=eff.spread,
        n=eff.n, ci_low=eff.ci_low, ci_high=eff.ci_high, verdict=verdict(eff.ci_low, eff.ci_high, min_effect),
        detail=detail,
    )


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def pairs(models: pd.DataFrame, baseline_kind: str, claimed_kind: str, metric: str, arch: str | None = None) -> pd.DataFrame:
    """Rows ``arch, seed, baseline, claimed`` of the models of both kinds with the same architecture and seed."""
    sub = models if arch is None else models[models["arch"] == arch]
    b = sub[sub["kind"] == baseline_kind][["arch", "seed", metric]].rename(columns={metric: "baseline"})
    c = sub[sub["kind"] == claimed_kind][["arch", "seed", metric]].rename(columns={metric: "claimed"})
    return b.merge(c, on=["arch", "seed"], how="inner")


def _weights_text(models: pd.DataFrame, kind: str) -> str:
    sub = models[models["kind"] == kind]
    if sub.empty or not {"w_E", "w_F", "w_A"} <= set(sub.columns):
        return kind
    w = sub[["w_E", "w_F", "w_A"]].iloc[0]
    return f"{kind} (w_E={fmt(w['w_E'])}, w_F={fmt(w['w_F'])}, w_A={fmt(w['w_A'])})"


def paired_claims(models, section, claim, baseline_kind, claimed_kind, metric, cfg, per_arch=False) -> list[Claim]:
    """One pooled paired row (all architectures) and, with ``per_arch``, one row per architecture."""
    comparison = f"{_weights_text(models, claimed_kind)} vs {_weights_text(models, baseline_kind)}, paired by architecture and seed"
    out = []
    p = pairs(models, baseline_kind, claimed_kind, metric)
    eff = paired_effect(p["baseline"], p["claimed"], cfg["confidence"])
    out.append(_claim(section, claim + " (all architectures)", comparison, metric, eff, cfg["min_relative_effect"],
                      detail=_plural(p["arch"].nunique(), "architecture")))
    if per_arch:
        for arch, part in p.groupby("arch", sort=True):
            eff = paired_effect(part["baseline"], part["claimed"], cfg["confidence"])
            out.append(_claim(section, f"{claim} ({arch})", comparison, metric, eff, cfg["min_relative_effect"],
                              detail=f"seeds {', '.join(str(s) for s in sorted(part['seed']))}"))
    return out


def learning_speed_claim(models, cfg) -> Claim:
    """Students reach the threshold in fewer epochs than their paired controls.

    Epochs count from the evaluation before training (epoch 0), so the relative difference is taken of
    ``epochs_to_threshold + 1`` (never zero). A model that never reaches the threshold counts as
    ``epochs + 1`` epochs (a lower bound); pairs where neither does are dropped; the detail says how many.
    """
    metric = "epochs_to_threshold"
    cols = ["arch", "seed", metric, "epochs"]
    s = models[models["kind"] == "student"][cols]
    c = models[models["kind"] == "control"][cols]
    p = c.merge(s, on=["arch", "seed"], suffixes=("_c", "_s"))
    never_c, never_s = p[f"{metric}_c"].isna(), p[f"{metric}_s"].isna()
    both = never_c & never_s
    p = p[~both]
    b = p[f"{metric}_c"].fillna(p["epochs_c"] + 1)
    cl = p[f"{metric}_s"].fillna(p["epochs_s"] + 1)
    eff = paired_effect(b + 1, cl + 1, cfg["confidence"])
    eff.baseline_mean, eff.claimed_mean = float(b.mean()), float(cl.mean())
    thr = models["threshold_force_rmse_eV_A"].dropna()
    factor = models["learning_speed_factor"].dropna() if "learning_speed_factor" in models else pd.Series(dtype=float)
    detail = (
        f"threshold {fmt(thr.iloc[0]) if len(thr) else '-'} eV/A "
        f"({fmt(factor.iloc[0] if len(factor) else cfg['learning_speed_factor'])} x the teacher's "
        f"best valid force RMSE); never reached: {int(never_s.sum())} students, {int(never_c.sum())} controls "
        f"(counted as epochs + 1), {int(both.sum())} pairs where neither did (dropped); effect on epochs + 1 "
        f"(epoch 0 = before training)"
    )
    return _claim("learning dynamics", "students learn faster than controls", "student vs control, paired by architecture and seed",
                  metric, eff, cfg["min_relative_effect"], detail)


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


def pareto_claim(models: pd.DataFrame, cost: str, cost_name: str, cfg: dict, error: str = FORCE,
                 claimed_kind: str = "student", baseline_kind: str = "control") -> Claim:
    """Does the claimed kind's Pareto front dominate the baseline kind's? (see the module docstring).

    A model's cost is a property of its architecture, not of its training, so each architecture's cost is
    the mean over every model of it (all kinds and seeds): timing noise between a student and its control
    does not move them apart.
    """
    sub = models[models["kind"].isin([claimed_kind, baseline_kind])]
    arch_cost = models.groupby("arch")[cost].mean()
    means = sub.groupby(["kind", "arch"])[[error]].mean().reset_index()
    means[cost] = means["arch"].map(arch_cost)
    ctrl = means[means["kind"] == baseline_kind].reset_index(drop=True)
    stud = means[means["kind"] == claimed_kind].reset_index(drop=True)
    ctrl = ctrl[pareto_front(ctrl[cost], ctrl[error])]
    tol = 1.0 + cfg["pareto_cost_tolerance"]
    comparison = (f"{claimed_kind} front vs {baseline_kind} front (means over seeds), cost = {cost_name} "
                  f"(mean over all models of an architecture)")
    verdicts, effects, notes = [], [], []
    for _, c in ctrl.iterrows():
        cands = stud[np.isfinite(stud[error]) & (stud[cost] <= c[cost] * tol)]
        if cands.empty:
            verdicts.append(INCONCLUSIVE)
            notes.append(f"{c['arch']}: no {claimed_kind} at its cost")
            continue
        best = cands.loc[cands[error].idxmin()]
        if best["arch"] == c["arch"]:  # same architecture: paired by seed (same initial weights)
            p = pairs(models, baseline_kind, claimed_kind, error, arch=c["arch"])
            eff = paired_effect(p["baseline"], p["claimed"], cfg["confidence"])
        else:
            b = models[(models["kind"] == baseline_kind) & (models["arch"] == c["arch"])][error]
            s = models[(models["kind"] == claimed_kind) & (models["arch"] == best["arch"])][error]
            eff = unpaired_effect(b, s, cfg["confidence"])
        v = verdict(eff.ci_low, eff.ci_high, cfg["min_relative_effect"])
        verdicts.append(v)
        effects.append(eff)
        notes.append(f"{baseline_kind} {c['arch']} vs {claimed_kind} {best['arch']}: {100 * eff.effect:+.1f}% ({v})")
    if not verdicts:
        overall = INCONCLUSIVE
        worst = Effect(math.nan, math.nan, 0, math.nan, math.nan, math.nan, math.nan)
    else:
        overall = HOLDS if all(v == HOLDS for v in verdicts) else FAILS if FAILS in verdicts else INCONCLUSIVE
        worst = min(effects, key=lambda e: e.effect) if effects else Effect(math.nan, math.nan, 0, math.nan, math.nan, math.nan, math.nan)
    claim = _claim("Pareto dominance", f"{claimed_kind}s Pareto-dominate {baseline_kind}s ({cost_name})", comparison, error, worst,
                   cfg["min_relative_effect"], detail="; ".join(notes))
    claim.n = len(verdicts)
    claim.verdict = overall
    return claim


def knowledge_claims(models: pd.DataFrame, labels: dict | None, cfg: dict) -> list[Claim]:
    """Quality of the transferred knowledge: the teacher's atom energies vs the reference's, and how well
    students (vs controls that never saw them) reproduce the teacher's atom energies."""
    out = []
    ref = (labels or {}).get("vs_reference") or {}
    rmse, r, std = (ref.get(k, math.nan) for k in ("rmse_eV", "pearson_r", "ref_std_eV"))
    rmse, r, std = (math.nan if v is None else float(v) for v in (rmse, r, std))
    if np.isfinite(rmse) and np.isfinite(std) and std > 0:
        skill = 1.0 - rmse / std
        v = HOLDS if skill > cfg["min_relative_effect"] else FAILS
        detail = (f"RMSE {fmt(rmse)} eV vs the reference's spread (std) {fmt(std)} eV; Pearson r = {fmt(r)}; "
                  f"offset removed {fmt(ref.get('offset_eV'))} eV; one labelling, so no seed spread: the verdict "
                  f"compares the point value with the threshold")
    else:
        skill, v = math.nan, INCONCLUSIVE
        detail = "no reference per-atom energies in this data set (labels/atom_energies.json has no vs_reference)"
    out.append(Claim("quality of the knowledge", "the teacher's atom energies track the reference's (offset removed)",
                     "teacher atom energies vs the reference potential's, against a constant guess",
                     "atom-energy RMSE (eV)", "relative improvement over the best constant guess: 1 - RMSE / std(reference)",
                     std, rmse, skill, math.nan, 1 if np.isfinite(skill) else 0, math.nan, math.nan, v, detail))
    col = "test_atom_energy_rmse_eV"
    if col in models:
        students = models[models["kind"] == "student"]
        rr = students.get("test_atom_energy_pearson_r", pd.Series(dtype=float)).astype(float)
        base = "control_fw" if (models["kind"] == "control_fw").any() else "control"
        p = pairs(models, base, "student", col)
        eff = paired_effect(p["baseline"], p["claimed"], cfg["confidence"])
        detail = (f"student atom energies vs the teacher's: mean RMSE {fmt(students[col].mean())} eV, "
                  f"mean Pearson r {fmt(rr.mean())} over {len(students)} students")
        out.append(_claim("quality of the knowledge", "students reproduce the teacher's atom energies better than controls",
                          f"student vs {base}, paired by architecture and seed", col, eff, cfg["min_relative_effect"], detail))
    return out


def born_again_claims(models: pd.DataFrame, cfg: dict) -> list[Claim]:
    out = []
    teacher = models[models["kind"] == "teacher"]
    for kind, label in (("born_again", "the scheduled Born-Again student"), ("born_again_static", "the static Born-Again student")):
        ba = models[models["kind"] == kind]
        if ba.empty or teacher.empty:
            continue
        for metric in (FORCE, ENERGY):
            eff = unpaired_effect(teacher[metric], ba[metric], cfg["confidence"])
            out.append(_claim("Born-Again", f"{label} beats the teacher", f"{kind} ({_plural(len(ba), 'seed')}) vs teacher ({_plural(len(teacher), 'seed')}), unpaired",
                              metric, eff, cfg["min_relative_effect"]))
    return out


DEFAULTS = {"confidence": 0.95, "min_relative_effect": 0.0, "pareto_cost_tolerance": 0.05, "learning_speed_factor": 2.0}


def all_claims(models: pd.DataFrame, labels: dict | None = None, cfg: dict | None = None) -> pd.DataFrame:
    """Every claim row computable from ``models`` (and the labels' check results), as a DataFrame."""
    cfg = {**DEFAULTS, **(cfg or {})}
    kinds = set(models["kind"])
    rows: list[Claim] = []
    if {"student", "control"} <= kinds:
        for cost, name in cost_columns(models).items():
            rows.append(pareto_claim(models, cost, name, cfg))
        rows += paired_claims(models, "accuracy at equal weights", "students have lower force RMSE than controls",
                              "control", "student", FORCE, cfg, per_arch=True)
        rows += paired_claims(models, "accuracy at equal weights", "students have lower energy-per-atom RMSE than controls",
                              "control", "student", ENERGY_PER_ATOM, cfg)
        rows.append(learning_speed_claim(models, cfg))
    if {"student", "control_fw"} <= kinds:
        for metric in (FORCE, ENERGY_PER_ATOM):
            rows += paired_claims(models, "ablation", "atom-energy effect: the atom-energy term lowers the error",
                                  "control_fw", "student", metric, cfg)
    if {"control", "control_fw"} <= kinds:
        for metric in (FORCE, ENERGY_PER_ATOM):
            rows += paired_claims(models, "ablation", "force-weight effect: the student's larger w_F alone lowers the error",
                                  "control", "control_fw", metric, cfg)
    rows += born_again_claims(models, cfg)
    if "student" in kinds:
        rows += knowledge_claims(models, labels, cfg)
    return pd.DataFrame([asdict(r) for r in rows], columns=list(Claim.__dataclass_fields__))


def _pct(x, sign: bool = True) -> str:
    if x is None or not np.isfinite(x):
        return "-"
    return f"{100 * x:+.1f}%" if sign else f"{100 * x:.1f}%"


def verdict_rule_text(cfg: dict) -> list[str]:
    """The definitions of effect, spread and verdict (paragraphs, markdown emphasis)."""
    cfg = {**DEFAULTS, **(cfg or {})}
    return [
        "**Effect** = relative improvement in the claimed direction, (baseline - claimed) / baseline "
        "(+10% = the claimed model's error, or epochs, is 10% lower than the baseline's). **Paired** rows compare "
        "models of the same architecture and seed (same initial weights): effect = mean of the per-pair relative "
        "differences, spread = their sample standard deviation, n = number of pairs. **Unpaired** rows (Born-Again, "
        "Pareto) use the group means with Welch's interval (a one-sample interval when one side is a single model); "
        "their spread is the standard error and n the number of claimed models. Pareto rows compare each point of "
        "the controls' front with the best student at its cost (paired by seed when that student has the same "
        "architecture); n is the number of control front points.",
        f"**Verdict** from the two-sided {100 * cfg['confidence']:g}% Student-t confidence interval (CI) of the effect "
        f"(mean ± t(n-1) · spread / √n for paired rows): *holds* if the interval lies entirely above "
        f"{_pct(cfg['min_relative_effect'])}, *does not hold* if entirely below, *inconclusive* if it contains "
        f"that value (the effect is within the seed spread) or fewer than two values exist. "
        f"Pareto rows hold when every point of the controls' front is beaten this way by a student at most "
        f"{100 * cfg['pareto_cost_tolerance']:g}% costlier (the row shows the smallest margin); they do not hold when "
        f"some control is significantly better than every student at its cost. An architecture's cost is the mean "
        f"over all its models (cost does not depend on training), so timing noise does not separate a student "
        f"from its control.",
    ]


def human_table(claims: pd.DataFrame, cfg: dict, bold: bool = False) -> pd.DataFrame:
    """The claims with effects in percent and a CI column, for reading."""
    cfg = {**DEFAULTS, **(cfg or {})}
    return pd.DataFrame({
        "section": claims["section"],
        "claim": claims["claim"],
        "metric": claims["metric"],
        "baseline": claims["baseline_mean"].map(fmt),
        "claimed": claims["claimed_mean"].map(fmt),
        "effect": claims["effect"].map(_pct),
        "spread": claims["spread"].map(lambda x: _pct(x, sign=False)),
        "n": claims["n"],
        f"{100 * cfg['confidence']:g}% CI": [f"[{_pct(lo)}, {_pct(hi)}]" if np.isfinite(lo) else "-"
                                             for lo, hi in zip(claims["ci_low"], claims["ci_high"])],
        "verdict": claims["verdict"].map(lambda v: f"**{v}**" if bold else v),
        "comparison / detail": [f"{c}. {d}".strip(". ") for c, d in zip(claims["comparison"], claims["detail"])],
    })


def claims_markdown(claims: pd.DataFrame, cfg: dict) -> str:
    """The claims as a markdown page: the verdict rule, then one table per section."""
    lines = ["# The paper's claims, tested on this run", ""]
    for para in verdict_rule_text(cfg):
        lines += [para, ""]
    human = human_table(claims, cfg, bold=True)
    for section, part in human.groupby("section", sort=False):
        lines += [f"## {section[:1].upper() + section[1:]}", "", markdown_table(part.drop(columns="section"))]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``tsmlip claims``: models.csv (+ labels/atom_energies.json) -> claims.csv, claims.md (+ .html)."""
    ap = argparse.ArgumentParser(prog="tsmlip claims", description=main.__doc__)
    ap.add_argument("--models", required=True, help="tables/models.csv")
    ap.add_argument("--labels", default=None, help="labels/atom_energies.json (its vs_reference check)")
    ap.add_argument("--config-json", default="{}", help="the config's aggregate section, as JSON")
    ap.add_argument("--out-csv", required=True)
    ap.add_argument("--out-md", required=True)
    ap.add_argument("--out-html", default=None)
    args = ap.parse_args(argv)

    cfg = {**DEFAULTS, **{k: v for k, v in json.loads(args.config_json).items() if k in DEFAULTS}}
    models = pd.read_csv(args.models)
    labels = json.loads(Path(args.labels).read_text()) if args.labels else None
    claims = all_claims(models, labels, cfg)
    Path(args.out_csv).parent.mkdir(parents=True, exist_ok=True)
    claims.to_csv(args.out_csv, index=False)
    Path(args.out_md).write_text(claims_markdown(claims, cfg))
    if args.out_html:
        notes = "".join(f"<p>{html.escape(p.replace('**', '').replace('*', ''))}</p>" for p in verdict_rule_text(cfg))
        write_html_table(human_table(claims, cfg), args.out_html, "The paper's claims, tested on this run", notes)
    counts = claims["verdict"].value_counts().to_dict()
    print(f"[claims] {len(claims)} rows: {counts} -> {args.out_csv}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
