"""The claims table: every row computable from ``tables/models.csv``, gated."""
from __future__ import annotations

import pandas as pd

from ..records import AtomEnergies
from .claim import ENERGY_PER_ATOM, FORCE, Claim, claims_frame
from .cost import cost_columns, cost_vs_teacher_claims, pareto_claim, scaling_claims
from .gates import gate, with_budget_check_values
from .rows import (ablation_claims, beyond_claims, born_again_claims, knowledge_claims, learning_speed_claim,
                   paired_claims, rdf_claims, tracks_claim)


def statistical_claims(models: pd.DataFrame, labels: AtomEnergies | None, cfg: dict, rdf_noise_floor_A: float | None = None
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


def all_claims(models: pd.DataFrame, labels: AtomEnergies | None, cfg: dict, rdf_noise_floor_A: float | None = None
               ) -> pd.DataFrame:
    """Every claim row computable from ``models`` (and the labels' check results), gated (:func:`gate`), as a
    DataFrame. ``rdf_noise_floor_A``: the RDF error between two teacher liquids that differ only in seed."""
    rows = statistical_claims(models, labels, cfg, rdf_noise_floor_A)
    checked = with_budget_check_values(models)
    with_budget: dict[tuple, str] | None = None
    if checked is not None:
        again = statistical_claims(checked, labels, cfg, rdf_noise_floor_A)
        with_budget = {k: r.verdict for k, r in zip(_row_keys(again), again)}
    rows = [gate(r, models, cfg, rdf_noise_floor_A, None if with_budget is None else with_budget.get(k, ""))
            for k, r in zip(_row_keys(rows), rows)]
    return claims_frame(rows)
