"""The headline table (``tables/headline.{csv,md,html}``): the most accurate student architecture against the
teacher and against its control, and against a foundation-model teacher's own cost (docs/foundation.md)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..records import CalculatorCost
from ..tables import fmt, markdown_table
from .claim import ENERGY_PER_ATOM, FORCE
from .cost import best_student_arch, cost_columns, measured, teacher_arch


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


def headline_markdown(table: pd.DataFrame) -> str:
    return "\n".join(["# Headline: the best student against the teacher and its control", "", HEADLINE_INTRO, "",
                      markdown_table(headline_human(table))])


def foundation_headline(models: pd.DataFrame, cost: CalculatorCost | None) -> pd.DataFrame:
    """Headline rows against the foundation model itself: the most accurate student's MD time per atom-step
    (ase engine: the calculator runs on it) and memory per atom over the calculator's own
    (:mod:`tsmlip.md.calculator_cost`; its smaller system is named in ``meaning``)."""
    cols = ["device", "quantity", "unit", "best_student", "student", "foundation", "vs_foundation", "meaning"]
    best = best_student_arch(models)
    if not cost or best is None:
        return pd.DataFrame(columns=cols)
    name = cost.calculator.get("name", "calculator")
    rows = []
    col = "md_ase_us_per_atom_step"
    sel = models[(models["arch"] == best) & models[col].notna()] if col in models else models.iloc[0:0]
    s = float(sel[col].mean()) if len(sel) else math.nan
    f = cost.us_per_atom_step or math.nan
    rows.append({"device": cost.device, "quantity": "MD time per step per atom (ase)", "unit": "us",
                 "best_student": best, "student": s, "foundation": f, "vs_foundation": f / s if s else math.nan,
                 "meaning": f"speed-up: {name}'s time / student's ({name} on {cost.n_atoms} atoms, the "
                            f"models on {cost.models_n_atoms})"})
    for mcol in ("memory_per_atom_slope_bytes", "memory_per_atom_bytes"):
        if mcol in models and models[mcol].notna().any():
            sel = models[(models["arch"] == best) & models[mcol].notna()]
            s = float(sel[mcol].mean()) if len(sel) else math.nan
            f = cost.memory_per_atom_slope_bytes or math.nan
            rows.append({"device": cost.device, "quantity": f"memory per atom ({mcol})", "unit": "bytes",
                         "best_student": best, "student": s, "foundation": f,
                         "vs_foundation": s / f if f else math.nan,
                         "meaning": f"memory fraction: student / {name} ({name}: slope of one force call's peak "
                                    f"memory over {[r['n_atoms'] for r in cost.memory_sizes]} atoms)"})
            break
    return pd.DataFrame(rows, columns=cols)
