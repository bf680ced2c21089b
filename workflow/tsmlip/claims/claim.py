"""One row of the claims table: what it claims (:class:`Statement`), what its test ran on (:class:`Evidence`),
the row itself (:class:`Claim`), and the pieces every family of rows shares (metric names, the paper's words,
pairs of models of the same architecture and seed)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import pandas as pd

from ..kinds import OPT_IN_KINDS
from .stats import Test

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
RDF_METRICS = (RDF_TEACHER, RDF_REFERENCE)
SEED_UNIT = "seeds"
RELATIVE = "relative improvement (baseline - claimed) / baseline"

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
    "beyond": f"(not in the paper: the kinds beyond it, {' / '.join(OPT_IN_KINDS)}, docs/beyond.md)",
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
    #: False for a quantity training does not change (MD time, memory per atom: properties of the architecture),
    #: which the convergence and budget checks do not gate
    depends_on_training: bool = True
    comparison: str = ""
    detail: str = ""
    compared: list = field(default_factory=list, repr=False)


COLUMNS = [f.name for f in fields(Claim) if f.name != "compared"]


@dataclass(frozen=True)
class Statement:
    """What a row claims: its section, its sentence, the paper's words (a key of :data:`PAPER` or the text), the
    metric (a models.csv column of :data:`METRIC_NAMES` or the text), the unit of its effect and of its n."""

    section: str
    claim: str
    paper: str
    metric: str
    unit: str = RELATIVE
    unit_of_n: str = SEED_UNIT
    depends_on_training: bool = True


@dataclass(frozen=True)
class Evidence:
    """What a row's test ran on: the comparison in words, details, both sides' means, the model ids."""

    comparison: str = ""
    detail: str = ""
    baseline_mean: float = math.nan
    claimed_mean: float = math.nan
    compared: tuple | list = ()


def make_claim(statement: Statement, t: Test, evidence: Evidence = Evidence()) -> Claim:
    """The row of ``statement`` decided by ``t`` on ``evidence`` (the test's note goes first in the detail)."""
    s, e = statement, evidence
    notes = "; ".join(x for x in (t.note, e.detail) if x)
    return Claim(
        section=s.section, claim=s.claim, paper=PAPER.get(s.paper, s.paper),
        metric=METRIC_NAMES.get(s.metric, s.metric), test=t.name, unit=s.unit, unit_of_n=s.unit_of_n,
        baseline_mean=e.baseline_mean, claimed_mean=e.claimed_mean,
        effect=t.effect, spread=t.spread, n=t.n, ci_level=t.ci_level, ci_low=t.ci_low, ci_high=t.ci_high,
        p_value=t.p_value, p_adjusted=t.p_adjusted, detectable_effect=t.detectable, verdict_if_converged=t.verdict,
        verdict=t.verdict, depends_on_training=s.depends_on_training, comparison=e.comparison, detail=notes, compared=sorted(set(map(str, e.compared))),
    )


def claims_frame(rows: list[Claim]) -> pd.DataFrame:
    """The rows as the claims table (``claims.csv``'s columns)."""
    return pd.DataFrame([{k: v for k, v in asdict(r).items() if k != "compared"} for r in rows], columns=COLUMNS)


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def pct(x, sign: bool = True) -> str:
    if x is None or not np.isfinite(x):
        return "-"
    return f"{100 * x:+.1f}%" if sign else f"{100 * x:.1f}%"


def model_ids(df: pd.DataFrame) -> list[str]:
    return list(df["model_id"]) if "model_id" in df else []


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


def pair_ids(p: pd.DataFrame) -> list[str]:
    return [*p.get("baseline_id", []), *p.get("claimed_id", [])]

