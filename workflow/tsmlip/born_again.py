"""The Born-Again table (section 3.5): the teacher vs the static and the scheduled Born-Again students, with the
paper's published numbers beside this run's (``tsmlip born-again-table``, models.csv -> csv, md, html)."""
from __future__ import annotations

import html
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from .kinds import BORN_AGAIN_TABLE_KINDS, REGISTRY
from .tables import fmt, markdown_table, write_csv, write_html_table

BORN_AGAIN_METRICS = {
    "test_energy_rmse_eV": "test energy RMSE (eV)",
    "test_energy_per_atom_rmse_eV": "test energy RMSE per atom (eV)",
    "test_force_rmse_eV_A": "test force RMSE (eV/A)",
}


def born_again_table(models: pd.DataFrame, paper: dict | None = None) -> pd.DataFrame:
    """Teacher vs static and scheduled Born-Again students (test errors, mean/std over seeds) with the
    relative change against the teacher's mean (negative = lower error than the teacher).

    ``paper``: the published numbers per kind and column (config ``paper_reference.born_again``:
    ``{kind: {column: {"mean", "std"}}}``); they go into ``paper_<column>_mean`` / ``_std`` (NaN where the
    paper gives none)."""
    paper = paper or {}
    sub = models[models["kind"].isin(BORN_AGAIN_TABLE_KINDS)]
    if sub.empty:
        raise ValueError("no teacher or Born-Again model in the table")
    rows = []
    teacher = sub[sub["kind"] == "teacher"]
    for kind in BORN_AGAIN_TABLE_KINDS:
        part = sub[sub["kind"] == kind]
        if part.empty:
            continue
        row = {"kind": kind, "model": REGISTRY[kind].born_again_label, "arch": part["arch"].iloc[0],
               "n_seeds": len(part)}
        for col in BORN_AGAIN_METRICS:
            vals = part[col].astype(float)
            row[f"{col}_mean"] = vals.mean()
            row[f"{col}_std"] = vals.std(ddof=1)
            ref = teacher[col].astype(float).mean() if not teacher.empty else math.nan
            row[f"{col}_change_vs_teacher"] = row[f"{col}_mean"] / ref - 1.0 if ref else math.nan
        for col in BORN_AGAIN_METRICS:
            pub = paper.get(kind, {}).get(col, {})
            row[f"paper_{col}_mean"] = float(pub.get("mean", math.nan))
            row[f"paper_{col}_std"] = float(pub.get("std", math.nan))
        rows.append(row)
    return pd.DataFrame(rows)


def mean_pm_std(mean, std, digits: int = 3) -> str:
    if std is None or not np.isfinite(std):
        return fmt(mean, digits)
    return f"{fmt(mean, digits)} ± {fmt(std, 2)}"


def main(argv: list[str] | None = None) -> int:
    """``tsmlip born-again-table``: models.csv -> teacher vs Born-Again students (csv, md, html)."""
    from .cli import step_parser

    ap = step_parser("born-again-table", main.__doc__ + "\n\nThe published numbers (paper_reference) "
                     "are shown beside the run's, which data.source names.")
    ap.add_argument("--models", required=True, help="tables/models.csv")
    ap.add_argument("--out-csv", required=True)
    ap.add_argument("--out-md", required=True)
    ap.add_argument("--out-html", default=None)
    args = ap.parse_args(argv)

    ref, data_source = args.config_json["paper_reference"], args.config_json["data"]["source"]
    from .provenance import check_sidecar, record, write_sidecars

    check_sidecar(args.models)  # a table changed after aggregate wrote it
    table = born_again_table(pd.read_csv(args.models), ref.get("born_again"))
    write_csv(table, args.out_csv)
    human = pd.DataFrame({"model": table["model"], "seeds": table["n_seeds"]})
    for col, label in BORN_AGAIN_METRICS.items():
        human[label] = [mean_pm_std(m, s) for m, s in zip(table[f"{col}_mean"], table[f"{col}_std"])]
        if table[f"paper_{col}_mean"].notna().any():
            human[f"paper: {label}"] = [mean_pm_std(m, s) for m, s in
                                        zip(table[f"paper_{col}_mean"], table[f"paper_{col}_std"])]
    human["force RMSE vs teacher"] = [
        "reference" if k == "teacher" else "-" if not np.isfinite(c) else f"{100 * c:+.1f}%"
        for k, c in zip(table["kind"], table["test_force_rmse_eV_A_change_vs_teacher"])
    ]
    intro = (
        "# Born-Again students vs the teacher (Section 3.5)\n\n"
        "Same architecture as the teacher; mean ± sample standard deviation over seeds; test split.\n\n"
    )
    note = ""
    if ref.get("born_again"):
        note = (f"Columns 'paper: ...' are the published numbers ({ref.get('dataset', 'the paper data')}; "
                f"{ref.get('citation', 'the paper')}); this run's data: {data_source}. "
                "They compare point by point only when this run used the same data and architecture.")
    Path(args.out_md).write_text(intro + (note + "\n\n" if note else "") + markdown_table(human))
    if args.out_html:
        write_html_table(human, args.out_html, "Born-Again students vs the teacher (test split)",
                         f"<p>{html.escape(note)}</p>" if note else "")
    write_sidecars([args.out_csv, args.out_md, args.out_html],
                   record("born-again-table", args.config_json, {"models": args.models}))
    print(f"[born-again-table] {len(table)} rows -> {args.out_csv}", file=sys.stderr, flush=True)
    return 0
