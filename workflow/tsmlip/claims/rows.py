"""The claim rows on the models' errors: students vs controls (forces, energies, liquid RDF, the trend between
them, learning speed), the transferred knowledge, the ablations, Born-Again vs the teacher and the kinds beyond
the paper (docs/beyond.md). Each builds its rows from ``tables/models.csv`` alone."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..kinds import PAPER_SWEEP_KINDS
from ..records import AtomEnergies
from ..tables import fmt
from . import stats as cs
from .claim import (ENERGY, ENERGY_PER_ATOM, FORCE, METRIC_NAMES, RDF_METRICS, RDF_REFERENCE, RDF_TEACHER, Claim,
                    Evidence, Statement, make_claim, model_ids, pair_ids, pairs, per_seed, plural)
from .stats import Test
from .verdicts import FAILS, HOLDS, INDISTINGUISHABLE


def _weights_text(models: pd.DataFrame, kind: str) -> str:
    sub = models[models["kind"] == kind]
    if sub.empty or not {"w_E", "w_F", "w_A"} <= set(sub.columns):
        return kind
    w = sub[["w_E", "w_F", "w_A"]].iloc[0]
    return f"{kind} (w_E={fmt(w['w_E'])}, w_F={fmt(w['w_F'])}, w_A={fmt(w['w_A'])})"


def _pooled_detail(p: pd.DataFrame) -> str:
    k = p["arch"].nunique()
    return (f"{plural(len(p), 'pair')} over {plural(k, 'architecture')}; each seed's value = the mean of its "
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
    out = [make_claim(Statement(section, label, paper, metric), t,
                      Evidence(comparison, detail, p["baseline"].mean(), p["claimed"].mean(), pair_ids(p)))]
    if per_arch and p["arch"].nunique() > 1:
        parts = list(p.groupby("arch", sort=True))
        tests = [cs.one_sample(part["d"], cfg["min_relative_effect"], conf, power, "paired t per architecture, Holm")
                 for _, part in parts]
        cs.apply_holm(tests, cfg["min_relative_effect"], conf, power)
        tests = [apply_noise_floor(t, part, floor, cfg) for (_, part), t in zip(parts, tests)]
        for (arch, part), t in zip(parts, tests):
            which = f"seeds {', '.join(str(s) for s in sorted(part['seed']))}"
            out.append(make_claim(Statement(section, f"{claim} ({arch})", paper, metric), t,
                                  Evidence(comparison, which, part["baseline"].mean(), part["claimed"].mean(),
                                           pair_ids(part))))
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
    sub = models[models["kind"].isin(PAPER_SWEEP_KINDS)]
    g = sub.groupby(["kind", "arch"])[[FORCE, RDF_TEACHER]].mean().dropna()
    t = cs.correlation(g[FORCE], g[RDF_TEACHER], cfg["confidence"], cfg["power"], "Pearson r (Fisher-z interval)")
    return make_claim(Statement("accuracy at equal weights", "force RMSE tracks the RDF error", "tracks",
                                f"{METRIC_NAMES[FORCE]} vs {METRIC_NAMES[RDF_TEACHER]}", unit="Pearson correlation r",
                                unit_of_n="(kind, architecture) means"), t,
                      Evidence("means over seeds of every (kind, architecture) of the sweep",
                               f"{plural(len(g), 'point')}: {', '.join(f'{k} {a}' for k, a in g.index)}",
                               compared=model_ids(sub)))


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
        f"(epoch 0 = before training); {plural(len(p), 'pair')} over {plural(p['arch'].nunique(), 'architecture')}"
    )
    ids = [*p.get("model_id_c", []), *p.get("model_id_s", [])]
    return make_claim(Statement("learning dynamics", "students learn faster than controls", "learning", metric), t,
                      Evidence("student vs control, paired by architecture and seed", detail, float(b.mean()),
                               float(cl.mean()), ids))


def knowledge_claims(models: pd.DataFrame, labels: AtomEnergies | None, cfg: dict) -> list[Claim]:
    """Quality of the transferred knowledge: the teacher's atom energies vs the reference's, and how well
    students (vs controls that never saw them) reproduce the teacher's atom energies."""
    out = []
    ref = labels.vs_reference if labels is not None else None
    rmse, r, std = (math.nan if ref is None else ref.value(k) for k in ("rmse_eV", "pearson_r", "ref_std_eV"))
    rmse, r, std = (math.nan if v is None else float(v) for v in (rmse, r, std))
    teachers = model_ids(models[models["kind"] == "teacher"])
    if np.isfinite(rmse) and np.isfinite(std) and std > 0:
        skill = 1.0 - rmse / std
        v = HOLDS if skill > cfg["min_relative_effect"] else FAILS
        detail = (f"RMSE {fmt(rmse)} eV vs the reference's spread (std) {fmt(std)} eV; Pearson r = {fmt(r)}; "
                  f"offset removed {fmt(ref.offset_eV)} eV; one labelling, so no seed spread: the verdict "
                  f"compares the point value with the threshold")
        t = Test("point value (one labelling)", effect=skill, n=1, verdict=v)
    else:
        detail = "no reference per-atom energies in this data set (labels/atom_energies.json has no vs_reference)"
        t = Test("point value (one labelling)", n=0)
    out.append(make_claim(Statement("quality of the knowledge", "the teacher's atom energies track the reference's "
                                    "(offset removed)", "knowledge", "atom-energy RMSE (eV)",
                                    unit="relative improvement over the best constant guess: 1 - RMSE / std(reference)",
                                    unit_of_n="labellings"), t,
                          Evidence("teacher atom energies vs the reference potential's, against a constant guess",
                                   detail, std, rmse, teachers)))
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
        comparison = f"{kind} ({plural(len(ba), 'seed')}) vs teacher ({plural(len(teacher), 'seed')}), unpaired"
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
            out.append(make_claim(Statement("Born-Again", claim, paper, metric, unit_of_n="Born-Again seeds"), t,
                                  Evidence(comparison, "", b.mean(), c.mean(), model_ids(teacher) + model_ids(ba))))
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
    """Rows of the kinds beyond the paper: oracle vs teacher labels, synthetic vs plain student, both vs control_fw
    (RDF rows against the seed noise floor)."""
    kinds = set(models["kind"])
    rows = []
    for baseline, claimed, claim, metrics in BEYOND:
        if {baseline, claimed} <= kinds:
            for metric in metrics:
                if metric in models and models[metric].notna().any():
                    rows += paired_claims(models, "beyond the paper", claim, "beyond", baseline, claimed, metric, cfg,
                                          noise_floor_A=noise_floor_A)
    return rows

