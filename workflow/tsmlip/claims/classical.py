"""The students against the classical anchor (config ``classical:``, :mod:`tsmlip.classical`; tables/classical.csv):
the headline rows (cost and accuracy of the most accurate student against the classical potential's) and the claim
rows (are the students more accurate, closer to the measured liquid, as fast?). Not in the paper: the yardstick a
user has when an MLIP is too slow."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from ..tables import fmt
from . import stats as cs
from .claim import ENERGY_PER_ATOM, FORCE, RELATIVE, Claim, Evidence, Statement, make_claim, model_ids
from .cost import _log_ratio_test, _timing_values, best_student_arch, measured
from .gates import gate

SECTION = "students vs the classical potential"
PAPER = "(not in the paper: the classical potential a user runs when an MLIP is too slow, config classical:)"
RDF_EXPERIMENT = "rdf_error_vs_experiment"
MD_SUFFIX = "_us_per_atom_step"


def _engines(table: pd.DataFrame) -> list[str]:
    from ..tables import md_time_engines

    return md_time_engines(table)


def _blocks(row: pd.Series, engine: str) -> np.ndarray:
    """The classical potential's timed blocks on ``engine`` (its one run), else its median."""
    raw = row.get(f"md_{engine}{MD_SUFFIX}_all")
    try:
        vals = json.loads(raw) if isinstance(raw, str) else list(raw)
    except (TypeError, ValueError):
        vals = []
    vals = cs.finite(vals)
    return vals if vals.size else cs.finite([row.get(f"md_{engine}{MD_SUFFIX}")])


def classical_headline(models: pd.DataFrame, classical: pd.DataFrame | None) -> pd.DataFrame:
    """Headline rows against the classical potential: the most accurate student architecture's MD time per
    atom-step on every engine both were timed on (and the student's fastest engine against LAMMPS's own MD of the
    classical potential, what a user runs), its test force and energy errors, and its liquid's g(r) error against
    experiment, beside the classical potential's."""
    cols = ["device", "quantity", "unit", "best_student", "student", "teacher", "classical", "vs_classical", "meaning"]
    best = best_student_arch(models)
    if classical is None or classical.empty or best is None:
        return pd.DataFrame(columns=cols)
    c = classical.iloc[0]
    name = str(c.get("name", "classical"))
    teach = models[models["kind"] == "teacher"]
    stud = models[(models["kind"] == "student") & (models["arch"] == best)]
    rows = []

    def mean(df, col):
        return float(df[col].mean()) if col in df and df[col].notna().any() else math.nan

    timed = {}
    for engine in _engines(classical):
        col = f"md_{engine}{MD_SUFFIX}"
        sub = measured(models, col) if col in models else models.iloc[0:0]
        s, t, k = mean(sub[sub["arch"] == best], col), mean(sub[sub["kind"] == "teacher"], col), float(c[col])
        if np.isfinite(s):
            timed[engine] = s
        rows.append({"device": str(c.get(f"md_{engine}_device_name", "-")), "quantity": f"MD time per step per atom "
                     f"({engine})", "unit": "us", "best_student": best, "student": s, "teacher": t, "classical": k,
                     "vs_classical": s / k if k else math.nan,
                     "meaning": f"cost ratio: student's time / {name}'s (same engine, system and threads; > 1: the "
                                "student is slower)"})
    native = f"md_lammps{MD_SUFFIX}"
    if native in classical and pd.notna(c.get(native)) and "lammps" not in timed and timed:
        engine = min(timed, key=timed.get)
        s, k = timed[engine], float(c[native])
        rows.append({"device": str(c.get("md_lammps_device_name", "-")), "quantity": f"MD time per step per atom "
                     f"(student: {engine}, {name}: lammps)", "unit": "us", "best_student": best, "student": s,
                     "teacher": math.nan, "classical": k, "vs_classical": s / k if k else math.nan,
                     "meaning": f"cost ratio: the student's fastest timed engine / {name} in LAMMPS's own MD (what a "
                                "user runs; the students' lammps engine needs make lammps)"})
    for col, quantity, unit in ((FORCE, "test force RMSE", "eV/A"), (ENERGY_PER_ATOM, "test energy RMSE per atom",
                                                                      "eV"), (RDF_EXPERIMENT, "liquid g(r) error vs "
                                                                             "experiment", "A")):
        k = float(c[col]) if col in classical and pd.notna(c.get(col)) else math.nan
        s, t = mean(stud, col), mean(teach, col)
        if not (np.isfinite(k) or np.isfinite(s)):
            continue
        rows.append({"device": "-", "quantity": quantity, "unit": unit, "best_student": best, "student": s,
                     "teacher": t, "classical": k, "vs_classical": (s - k) / k if k else math.nan,
                     "meaning": f"accuracy gap: (student - {name}) / {name} (negative = the student is more "
                                "accurate)" + (" (energy: a constant per atom removed from "
                                               f"{name}'s)" if col == ENERGY_PER_ATOM else "")})
    return pd.DataFrame(rows, columns=cols)


def classical_human(table: pd.DataFrame, name: str) -> pd.DataFrame:
    """The headline's rows against the classical potential as text."""
    def ratio(v, meaning):
        if not np.isfinite(v):
            return "-"
        if meaning.startswith("accuracy"):
            return f"{100 * v:+.1f}%"
        return f"{v:.3g}x {name}'s time"

    return pd.DataFrame({
        "device": table["device"],
        "quantity": [f"{q} ({u})" for q, u in zip(table["quantity"], table["unit"])],
        "best student": table["best_student"],
        "student": table["student"].map(fmt),
        "teacher": table["teacher"].map(fmt),
        name: table["classical"].map(fmt),
        f"student vs {name}": [ratio(v, m) for v, m in zip(table["vs_classical"], table["meaning"])],
    })


CLASSICAL_TITLE = "Against the classical potential ({name})"
CLASSICAL_INTRO = (
    "The most accurate student architecture against the classical potential {name} (config classical:, run in "
    "LAMMPS): MD time per atom-step on the same system, threads and engine (and against {name} in LAMMPS's own MD, "
    "what a user runs), test errors against the same ground truth ({name}'s energy zero removed: a constant per "
    "atom fitted on the training split), the liquid's g(r) against experiment. Student columns are means over "
    "seeds; the teacher's for comparison."
)


def classical_markdown(table: pd.DataFrame, name: str) -> str:
    from ..tables import markdown_table

    return "\n".join([f"## {CLASSICAL_TITLE.format(name=name)}", "", CLASSICAL_INTRO.format(name=name), "",
                      markdown_table(classical_human(table, name))])


def classical_claims(models: pd.DataFrame, classical: pd.DataFrame | None, cfg: dict,
                     noise_floor_A: float | None = None) -> list[Claim]:
    """Rows: students (every architecture and seed) are more accurate than the classical potential (test force
    RMSE: one-sample t of the relative improvement (classical - student) / classical, model = unit); students'
    liquid is closer to the measured g(r) than the classical potential's (one-sample t of classical - student in
    A); the most accurate student runs MD faster than the classical potential (per engine both were timed on:
    Welch t on log times, as the cost rows against the teacher)."""
    if classical is None or classical.empty or "student" not in set(models["kind"]):
        return []
    c = classical.iloc[0]
    name = str(c.get("name", "classical"))
    conf, power, m0 = cfg["confidence"], cfg["power"], cfg["min_relative_effect"]
    students = models[models["kind"] == "student"]
    out = []
    k = float(c.get(FORCE, math.nan))
    sub = students[students[FORCE].notna()] if FORCE in students else students.iloc[0:0]
    if np.isfinite(k) and k > 0 and len(sub):
        t = cs.one_sample((k - sub[FORCE].astype(float)) / k, m0, conf, power,
                          "one-sample t of the relative improvement over the classical potential, model = unit")
        detail = (f"{name}: {k:.3g} eV/A ({c.get('pair_style', '')} {c.get('files', '')}, against "
                  f"{c.get('ground_truth', 'the labels')}); students {float(sub[FORCE].min()):.3g}-"
                  f"{float(sub[FORCE].max()):.3g} eV/A")
        row = make_claim(Statement(SECTION, f"students are more accurate than {name} (test forces)", PAPER, FORCE,
                                   unit=RELATIVE, unit_of_n="models"),
                         t, Evidence(f"every student (architecture, seed) vs {name}", detail, k,
                                     float(sub[FORCE].mean()), model_ids(sub)))
        out.append(gate(row, models, cfg, None))
    k = float(c.get(RDF_EXPERIMENT, math.nan))
    sub = students[students[RDF_EXPERIMENT].notna()] if RDF_EXPERIMENT in students else students.iloc[0:0]
    if np.isfinite(k) and len(sub):
        t = cs.one_sample(k - sub[RDF_EXPERIMENT].astype(float), 0.0, conf, power,
                          f"one-sample t of ({name} - student) error vs experiment, model = unit")
        teach = models[(models["kind"] == "teacher") & models.get(RDF_EXPERIMENT, pd.Series(dtype=float)).notna()]
        detail = f"{name}: {k:.3g} A"
        if len(teach):
            detail += f"; teacher {float(teach[RDF_EXPERIMENT].mean()):.3g} A"
        if noise_floor_A is not None and np.isfinite(noise_floor_A):
            detail += f"; seed noise floor of the RDF error {noise_floor_A:.3g} A"
        row = make_claim(Statement(SECTION, f"students' liquid is closer to the measured g(r) than {name}'s",
                                   PAPER, "liquid-Al RDF error vs the experimental g(r) (A)",
                                   unit=f"A: {name} - student", unit_of_n="models"),
                         t, Evidence(f"every student vs {name}", detail, k, float(sub[RDF_EXPERIMENT].mean()),
                                     model_ids(sub)))
        out.append(gate(row, models, cfg, noise_floor_A))
    best = best_student_arch(models)
    for engine in _engines(classical):
        col = f"md_{engine}{MD_SUFFIX}"
        if best is None or col not in models:
            continue
        m = measured(models, col)
        s_sub = m[m["arch"] == best]
        if s_sub.empty:
            continue
        sv, s_unit = _timing_values(s_sub, col)
        kv = _blocks(c, engine)
        t = _log_ratio_test(kv, sv, cfg, f"Welch t on log MD time ({len(kv)} timed blocks of {name}, {len(sv)} "
                                         f"{s_unit} of the student)")
        ratio = float(s_sub[col].mean()) / float(c[col])
        detail = f"the student takes {fmt(ratio)} x {name}'s time per atom-step"
        native = c.get(f"md_lammps{MD_SUFFIX}")
        if engine != "lammps" and native is not None and pd.notna(native):
            detail += (f"; {name} in LAMMPS's own MD: {fmt(float(native))} us, the student's {engine} time is "
                       f"{fmt(float(s_sub[col].mean()) / float(native))} x that")
        row = make_claim(Statement(SECTION, f"the best student runs MD as fast as {name} or faster ({engine})", PAPER,
                                   f"MD time per step per atom ({engine}) (us)",
                                   unit=f"relative time saved: 1 - student / {name}", unit_of_n=s_unit),
                         t, Evidence(f"best student architecture {best} vs {name}, same system, threads and engine",
                                     detail, float(c[col]), float(s_sub[col].mean()), model_ids(s_sub)))
        out.append(row)  # a cost: the gates on training and liquids do not apply
    return out
