"""The configurations the teacher cannot fit: after the teacher trains, every configuration's energy-per-atom
error and force RMSE under the teacher, each against the dataset's own spread (the robust spread of the energy
per atom, the RMS force component), sorted worst first; configurations whose error exceeds ``FLAG_FACTOR`` times
the teacher's median error are flagged. A flagged configuration is a candidate for a labelling fault the
per-configuration data checks let through (docs/data.md); the table is listed in the run report.

Output: ``tables/data_quality.csv`` (columns :data:`COLUMNS`) and its provenance sidecar.
"""
from __future__ import annotations

import csv
import sys

import numpy as np

#: a configuration is flagged when its energy-per-atom error or its force RMSE exceeds this times the teacher's
#: median over the dataset
FLAG_FACTOR = 5.0
COLUMNS = ["rank", "index", "split", "n_atoms", "energy_per_atom_error_eV", "energy_error_over_spread",
           "force_rmse_eV_A", "force_rmse_over_spread", "flagged"]


def quality_rows(pred: dict, arrays: dict, split: dict) -> list[dict]:
    """The table's rows, worst first (by the larger of the two errors relative to the dataset's spread)."""
    Z, E, F = arrays["Z"], arrays["E"], arrays["F"]
    n = (Z != 0).sum(axis=1)
    e = E / n
    e_spread = max(1.4826 * float(np.median(np.abs(e - np.median(e)))), 1e-6)
    real = Z != 0
    f_spread = max(float(np.sqrt(np.mean(F[real] ** 2))), 1e-6)
    de = np.abs(pred["E"] - E) / n
    frmse = np.array([float(np.sqrt(np.mean((pred["F"][c][real[c]] - F[c][real[c]]) ** 2))) for c in range(len(E))])
    which = np.empty(len(E), dtype=object)
    for name, idx in split.items():
        which[idx] = name
    flagged = (de > FLAG_FACTOR * np.median(de)) | (frmse > FLAG_FACTOR * np.median(frmse))
    score = np.maximum(de / e_spread, frmse / f_spread)
    rows = []
    for rank, c in enumerate(np.argsort(-score, kind="stable"), start=1):
        rows.append({"rank": rank, "index": int(c), "split": which[c], "n_atoms": int(n[c]),
                     "energy_per_atom_error_eV": float(de[c]), "energy_error_over_spread": float(de[c] / e_spread),
                     "force_rmse_eV_A": float(frmse[c]), "force_rmse_over_spread": float(frmse[c] / f_spread),
                     "flagged": bool(flagged[c])})
    return rows


def main(argv=None) -> int:
    from . import provenance
    from .cli import step_parser
    from .data.dataset import load_dataset
    from .data.split import load_split
    from .io_utils import atomic_open
    from .core.model import load_model
    from .core.predict import predict

    p = step_parser("data-quality", __doc__)
    p.add_argument("--teacher", required=True, help="the teacher's model.pt")
    p.add_argument("--dataset", required=True)
    p.add_argument("--split", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    provenance.check_model_data(a.teacher, a.dataset, a.split)
    arrays = load_dataset(a.dataset)
    split = load_split(a.split, len(arrays["E"]))
    pred = predict(load_model(a.teacher), arrays, batch_size=a.config_json["training"]["eval_batch_size"])
    rows = quality_rows(pred, arrays, split)
    with atomic_open(a.out, "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=COLUMNS)
        wr.writeheader()
        wr.writerows(rows)
    provenance.write_sidecar(a.out, provenance.record("data-quality", a.config_json, {
        "teacher": a.teacher, "dataset": a.dataset, "split": a.split}))
    n_flag = sum(r["flagged"] for r in rows)
    print(f"[data-quality] {n_flag} of {len(rows)} configurations flagged (error > {FLAG_FACTOR} x the teacher's "
          f"median); worst: configuration {rows[0]['index']} ({rows[0]['split']})", file=sys.stderr)
    return 0
