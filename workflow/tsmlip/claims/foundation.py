"""The claim rows of a foundation model as the teacher (docs/foundation.md): its students' liquid against the
measured liquid-Al g(r), within the seed noise floor of the teacher's."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import stats as cs
from .claim import METRIC_NAMES, RDF_TEACHER, Claim, Evidence, Statement, make_claim
from .gates import gate
from .stats import Test

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
        row = make_claim(Statement("foundation model", claim, FOUNDATION_PAPER,
                                   "liquid-Al RDF error vs the experimental g(r) (A)",
                                   unit="A: noise floor - (student - teacher) error vs experiment", unit_of_n="models"),
                         t, Evidence(f"{kind} (every architecture and seed) vs the teacher's mean", detail, t_mean,
                                     float(sub[RDF_EXPERIMENT].mean()), compared))
        # the liquid gate of the RDF rows (gate_liquid keys on the metric's name): every run must be clean
        metric, row.metric = row.metric, METRIC_NAMES[RDF_TEACHER]
        row = gate(row, models, cfg, None)
        row.metric = metric
        rows.append(row)
    return rows
