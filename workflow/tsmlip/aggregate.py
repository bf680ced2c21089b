"""Tidy tables of every trained model: errors, costs, learning speed; seed statistics.

Reads the per-model files of docs/outputs.md (``metrics.json``, ``curve.csv``, ``md_timing_<engine>.json``,
``max_atoms.json``, ``rdf_error.json``) and writes

- ``tables/models.csv``: one row per model. Columns keep the units in their names: ``*_eV`` (energies),
  ``*_eV_A`` (forces), ``md_<engine>_us_per_atom_step`` (microseconds per MD step per atom),
  ``memory_per_atom_bytes``, ``*_s`` (seconds). A quantity a run did not produce is NaN.
- ``tables/summary.csv``: mean and sample standard deviation (``<col>_mean``, ``<col>_std``) over seeds
  per (kind, architecture), with ``n_seeds``.
- ``tables/curves.csv``: every learning curve, stacked, with the model's kind/architecture/seed.
- ``tables/born_again.csv`` / ``.md`` (``tsmlip born-again-table``): teacher vs Born-Again students.

Learning speed: a model has learned "enough" once its validation force RMSE falls to
``factor x`` the teacher's best validation force RMSE (mean over teacher seeds); ``epochs_to_threshold``
is the curve's ``epoch`` value at the first such epoch and ``wall_time_to_threshold_s`` the training wall
time then. Both are NaN when the threshold is never reached.

Convergence (``metrics.json``'s ``convergence`` block, written by training): ``stopped_by`` (``patience`` or
``max_epochs``; ``unknown`` when the block is null), ``best_epoch``, ``late_relative_improvement`` (how
much the best validation force RMSE still improved over the last ``convergence.late_fraction`` of the epochs
(``tsmlip.train.LATE_FRACTION``), relative; information only) and ``converged``: stopped by the stopping rule
(``stopped_by == "patience"``), not by the epoch cap. A model whose block is null counts as not converged. The
claims table never decides a claim on a model that did not converge.

Budget check (``--budget-check-files``): some models are trained a second time from scratch with every
budget doubled (``<results>/budget_check/<id>/metrics.json``). Each such model's row gets
``budget_check_<metric>`` (its test errors at the doubled budget, :data:`BUDGET_CHECK_METRICS`),
``budget_check_relative_change`` = (doubled - base) / base of the test force RMSE, ``budget_check_stopped_by``
and ``budget_check_epochs``; NaN for a model that was not checked. The claims gate on them.
"""
from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from .ids import ModelId
from .data.split import SPLITS
from .kinds import KINDS
from .core.metrics import atom_energy_agreement  # noqa: F401  (re-exported: the tables use it)
from .records import MaxAtoms, MdTiming, RdfError, SplitErrors, TrainMetrics
from .tables import (BUDGET_CHECK_ERROR, BUDGET_CHECK_METRICS, STOPPED_BY_RULE, fmt, write_csv,
                     write_html_table)

#: metrics.json's errors per split in models.csv (``<split>_<key>``); the energy MAE stays out of the table
SPLIT_METRICS = tuple(k for k in SplitErrors.keys() if k != "energy_mae_eV")
#: metrics.json keys copied into models.csv
METRICS_KEYS = TrainMetrics.select("n_weights", "epochs", "best_epoch", "wall_time_s", "device", "teacher_labels")
MD_KEYS = MdTiming.select(
    "n_atoms",
    "us_per_atom_step",
    "us_per_atom_step_all",  # one value per timed block (JSON list): the claims' replicate timings
    "us_per_atom_step_spread",
    "cpu_us_per_atom_step",
    "steps_per_s",
    "ns_per_day",
    "energy_drift_eV_per_atom_per_ps",
    "stable",
    "device",
    "device_name",
    "hippynn_kernels",
)
#: max_atoms.json key -> models.csv column (the bisection brackets the limit: max_atoms fits, first_failure
#: does not; a capped probe never failed)
MAX_ATOMS_KEYS = {
    "max_atoms": "max_atoms",
    "first_failure_atoms": "max_atoms_first_failure",
    "capped": "max_atoms_capped",
    "memory_budget_bytes": "memory_budget_bytes",
    "memory_per_atom_bytes": "memory_per_atom_bytes",
    "memory_per_atom_slope_bytes": "memory_per_atom_slope_bytes",
    "device": "max_atoms_device",
    "device_name": "max_atoms_device_name",
    "hippynn_kernels": "max_atoms_hippynn_kernels",
}
MaxAtoms.select(*MAX_ATOMS_KEYS)  # each is a max_atoms.json field
#: convergence columns of models.csv (see the module docstring)
CONVERGENCE_COLUMNS = ("stopped_by", "best_epoch", "late_relative_improvement", "converged")
BUDGET_CHECK_COLUMNS = (*(f"budget_check_{m}" for m in BUDGET_CHECK_METRICS), "budget_check_relative_change",
                        "budget_check_stopped_by", "budget_check_epochs")
RDF_KEYS = RdfError.select(
    "error_vs_teacher", "error_vs_reference", "first_peak_r_A", "first_peak_g", "stable", "melted", "clean",
    "melt_indicator", "min_pair_distance_A", "definition",
    # rdf.experiment (docs/foundation.md); absent (NaN) when the comparison is off
    "error_vs_experiment", "experiment_temperature_K", "experiment_first_peak_r_A", "experiment_first_peak_g",
    "first_peak_r_shift_vs_experiment_A", "first_peak_g_diff_vs_experiment")
#: identifying columns of a model row; the rest are measurements
ID_COLUMNS = ("model_id", "kind", "arch", "width", "n_sensitivities", "n_atom_layers", "seed")
GROUP_COLUMNS = ("kind", "arch", "width", "n_sensitivities", "n_atom_layers")
ANALYSIS_FILES = ("max_atoms.json", "rdf_error.json")  # besides md_timing_<engine>.json
PER_MODEL_FILES = ("metrics.json", "curve.csv", *ANALYSIS_FILES)
#: the record of each per-model JSON file besides md_timing_<engine>.json (MdTiming)
PER_MODEL_RECORDS = {"metrics.json": TrainMetrics, "max_atoms.json": MaxAtoms, "rdf_error.json": RdfError}
MD_TIMING_RE = re.compile(r"^md_timing_(.+)\.json$")


# ----------------------------------------------------------------------------------------------------------
# metrics


def learning_speed(curve: pd.DataFrame, threshold: float, column: str = "valid_force_rmse_eV_A") -> tuple[float, float]:
    """(epochs, wall time in s) at the first epoch whose ``column`` is <= ``threshold``; NaNs if never.

    ``epochs`` is the curve's ``epoch`` value there (the number of epochs trained when epochs count from 1).
    """
    if curve is None or curve.empty or not np.isfinite(threshold) or column not in curve:
        return math.nan, math.nan
    hit = curve[curve[column] <= threshold]
    if hit.empty:
        return math.nan, math.nan
    first = hit.iloc[0]
    wall = float(first["wall_time_s"]) if "wall_time_s" in hit else math.nan
    return float(first["epoch"]), wall


# ----------------------------------------------------------------------------------------------------------
# reading per-model files


def record_class(path: Path):
    """The record of a per-model JSON file, by its name."""
    if MD_TIMING_RE.match(path.name):
        return MdTiming
    try:
        return PER_MODEL_RECORDS[path.name]
    except KeyError:
        raise ValueError(f"{path}: not a per-model JSON file this step reads ({', '.join(PER_MODEL_RECORDS)}, "
                         "md_timing_*.json)") from None


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def read_curve(path: Path) -> pd.DataFrame:
    """A ``curve.csv``; a resumed run's repeated epochs keep their last row."""
    curve = pd.read_csv(path)
    if "epoch" not in curve:
        raise ValueError(f"{path}: no 'epoch' column")
    return curve.drop_duplicates("epoch", keep="last").sort_values("epoch").reset_index(drop=True)


def model_files(models_dir: str | Path, model_ids, optional=()) -> list[Path]:
    """The files to read for ``model_ids``: each model's ``metrics.json`` and ``curve.csv`` (which must exist)
    and those of the ``optional`` file names (e.g. ``md_timing_ase.json``) that exist."""
    root = Path(models_dir)
    paths = []
    for mid in model_ids:
        d = root / str(ModelId.parse(str(mid)))
        for name in ("metrics.json", "curve.csv"):
            if not (d / name).is_file():
                raise FileNotFoundError(f"model {mid}: {d / name} is missing")
            paths.append(d / name)
        paths += [d / name for name in optional if (d / name).is_file()]
    return paths


def record_model_id(path: Path) -> str:
    """The model id a per-model JSON file records (its ``model_id``)."""
    mid = record_class(path).read(path).model_id
    try:
        return str(ModelId.parse(str(mid)))
    except ValueError as err:
        raise ValueError(f"{path}: its model_id {mid!r} is not a model id <kind>/<arch>/seed<N> ({err})") from None


def collect_files(files=None, models_dir: str | Path | None = None) -> dict[str, dict]:
    """Per-model files grouped by model id: ``{id: {"metrics.json": path, ..., "md_timing": {engine: path}}}``.

    ``files`` lists exactly what to read; a JSON file's model id is the one it records, a ``curve.csv`` belongs
    to the ``metrics.json`` beside it. Without ``files`` every known file under ``models_dir`` is taken.
    """
    if files is None:
        if models_dir is None:
            raise ValueError("collect_files: give the files or the models directory")
        root = Path(models_dir)
        names = set(PER_MODEL_FILES)
        files = [p for p in root.rglob("*.json") if p.name in names or MD_TIMING_RE.match(p.name)]
        files += list(root.rglob("curve.csv"))
    found: dict[str, dict] = {}
    metrics_ids: dict[Path, str] = {}
    for p in sorted((Path(f) for f in files), key=lambda p: (p.name == "curve.csv", p)):  # curves last
        m = MD_TIMING_RE.match(p.name)
        if not m and p.name not in PER_MODEL_FILES:
            raise ValueError(f"{p}: not a per-model file this step reads ({', '.join(PER_MODEL_FILES)}, md_timing_*.json)")
        if p.name == "curve.csv":
            if p.parent not in metrics_ids:
                raise ValueError(f"{p}: no metrics.json beside it among the inputs")
            mid = metrics_ids[p.parent]
        else:
            mid = record_model_id(p)
        if p.name == "metrics.json":
            metrics_ids[p.parent] = mid
        entry = found.setdefault(mid, {"md_timing": {}})
        if m:
            entry["md_timing"][m.group(1)] = p
        else:
            entry[p.name] = p
    return found


def convergence(met: TrainMetrics) -> dict:
    """``stopped_by``, ``best_epoch``, ``late_relative_improvement``, ``converged`` from a ``metrics.json``.

    Converged: stopped by the stopping rule (``stopped_by == "patience"``), not by the epoch cap; the late
    improvement is information only. With a null ``convergence`` block: ``stopped_by`` is ``unknown`` and the
    model does not count as converged.
    """
    block = met.convergence
    if block is None:
        return {"stopped_by": "unknown", "best_epoch": met.best_epoch,
                "late_relative_improvement": math.nan, "converged": False}
    stopped = str(block.stopped_by or "unknown")
    late = block.late_relative_improvement
    late = float(late) if _is_number(late) else math.nan
    best = block.best_epoch
    converged = stopped == STOPPED_BY_RULE
    return {"stopped_by": stopped, "best_epoch": best, "late_relative_improvement": late, "converged": bool(converged)}


def model_row(model_id: str, files: dict) -> dict:
    """One row of ``models.csv`` from one model's files (see the module docstring for the columns)."""
    mid = ModelId.parse(model_id)
    row: dict = {
        "model_id": str(mid),
        "kind": mid.kind,
        "arch": mid.arch.tag,
        "width": mid.arch.width,
        "n_sensitivities": mid.arch.n_sensitivities,
        "n_atom_layers": mid.arch.n_atom_layers,
        "seed": mid.seed,
    }
    if "metrics.json" not in files:
        raise FileNotFoundError(f"model {model_id}: no metrics.json among the inputs")
    met = TrainMetrics.read(files["metrics.json"])
    for key in METRICS_KEYS:
        row[key] = met.value(key)
    row.update(convergence(met))
    weights = met.loss_weights or {}
    for w in ("w_E", "w_F", "w_A"):  # scheduled (Born-Again) weights are not single numbers: NaN
        row[w] = weights.get(w) if _is_number(weights.get(w)) else math.nan
    for split in SPLITS:
        vals = (met.splits or {}).get(split)
        for key in SPLIT_METRICS:
            v = None if vals is None else vals.value(key)
            row[f"{split}_{key}"] = math.nan if v is None else v
    for engine, path in sorted(files.get("md_timing", {}).items()):
        md = MdTiming.read(path)
        for key in MD_KEYS:
            row[f"md_{engine}_{key}"] = md.value(key)
    if "max_atoms.json" in files:
        ma = MaxAtoms.read(files["max_atoms.json"])
        for key, col in MAX_ATOMS_KEYS.items():
            row[col] = ma.value(key)
    if "rdf_error.json" in files:
        rdf = RdfError.read(files["rdf_error.json"])
        for key in RDF_KEYS:  # the experiment's keys are None (NaN) when the comparison is off
            row[f"rdf_{key}"] = rdf.value(key)
    # one cell per value: lists and dicts (e.g. several teachers' labels) as JSON text, None as NaN
    return {k: json.dumps(v) if isinstance(v, (dict, list)) else math.nan if v is None else v for k, v in row.items()}


def share_cost_within_architecture(models: pd.DataFrame) -> pd.DataFrame:
    """MD time and memory depend on the architecture only (a student and its control run the same
    computation), so a configuration may measure them on one model per architecture
    (``md.per_architecture``): the other models of that architecture take the measured values, and
    ``md_measured_on`` names the model they come from."""
    cost = [c for c in models.columns if c.startswith(("md_", "max_atoms", "memory_per_atom"))]
    if not cost or "arch" not in models:
        return models
    models = models.copy()
    measured = models[cost].notna().any(axis=1)
    models["md_measured_on"] = np.where(measured, models["model_id"], None)
    for c in cost + ["md_measured_on"]:
        models[c] = models[c].fillna(models.groupby("arch")[c].transform("first"))
    return models


def read_budget_checks(files) -> dict[str, dict]:
    """The budget-check models' results, by the model id each ``metrics.json`` records:
    ``{id: {"budget_check_<metric>": ..., "budget_check_stopped_by": ..., "budget_check_epochs": ...}}``."""
    out: dict[str, dict] = {}
    for p in sorted(Path(f) for f in files or ()):
        if p.name != "metrics.json":
            raise ValueError(f"{p}: a budget check is read from its metrics.json")
        from .provenance_checks import check_model_files

        check_model_files(p)  # not edited by hand, and the metrics of the model.pt beside it
        mid = record_model_id(p)
        met = TrainMetrics.read(p)
        test = (met.splits or {}).get("test")
        entry = {}
        for metric in BUDGET_CHECK_METRICS:
            v = None if test is None else test.value(metric[len("test_"):])
            entry[f"budget_check_{metric}"] = float(v) if _is_number(v) else math.nan
        entry["budget_check_stopped_by"] = convergence(met)["stopped_by"]
        entry["budget_check_epochs"] = met.epochs
        out[mid] = entry
    return out


def add_budget_checks(models: pd.DataFrame, checks: dict[str, dict]) -> pd.DataFrame:
    """The budget-check columns (:data:`BUDGET_CHECK_COLUMNS`) of ``models``: each checked model's errors at
    the doubled budget and ``budget_check_relative_change`` = (doubled - base) / base of its test force RMSE;
    NaN for the models not checked. A check of a model that is not in the table is an error."""
    unknown = sorted(set(checks) - set(models["model_id"].astype(str)))
    if unknown:
        raise ValueError(f"budget check of models not in the table: {', '.join(unknown)}")
    models = models.copy()
    ids = models["model_id"].astype(str)
    for col in BUDGET_CHECK_COLUMNS:
        values = [checks.get(m, {}).get(col, math.nan) for m in ids]
        models[col] = pd.Series(values, index=models.index, dtype=object if col.endswith("stopped_by") else float)
    base = models[BUDGET_CHECK_ERROR].astype(float) if BUDGET_CHECK_ERROR in models else math.nan
    checked = models[f"budget_check_{BUDGET_CHECK_ERROR}"].astype(float)
    models["budget_check_relative_change"] = ((checked - base) / base).where(base != 0)
    return models


def build_tables(found: dict[str, dict], learning_speed_factor: float,
                 budget_checks: dict[str, dict] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(models table, stacked curves) from :func:`collect_files`' result; ``budget_checks`` from
    :func:`read_budget_checks` (none: every budget-check column NaN)."""
    rows, curves = [], []
    n = len(found)
    for i, (mid, files) in enumerate(sorted(found.items()), 1):
        row = model_row(mid, files)
        curve = read_curve(files["curve.csv"]) if "curve.csv" in files else None
        if curve is not None:
            row["curve_best_valid_force_rmse_eV_A"] = float(curve["valid_force_rmse_eV_A"].min())
            curves.append(curve.assign(**{k: row[k] for k in ID_COLUMNS}))
        rows.append((row, curve))
        if i % 50 == 0 or i == n:
            print(f"[aggregate] read {i}/{n} models", file=sys.stderr, flush=True)
    if not rows:
        raise ValueError("no model to aggregate")
    teacher_best = [
        r.get("curve_best_valid_force_rmse_eV_A", r.get("valid_force_rmse_eV_A", math.nan))
        for r, _ in rows
        if r["kind"] == "teacher"
    ]
    teacher_best = [v for v in teacher_best if v is not None and np.isfinite(v)]
    threshold = learning_speed_factor * float(np.mean(teacher_best)) if teacher_best else math.nan
    for row, curve in rows:
        row["learning_speed_factor"] = learning_speed_factor
        row["threshold_force_rmse_eV_A"] = threshold
        row["epochs_to_threshold"], row["wall_time_to_threshold_s"] = learning_speed(curve, threshold)
    models = share_cost_within_architecture(pd.DataFrame([r for r, _ in rows]))
    models = add_budget_checks(models, budget_checks or {})
    first = [c for c in ID_COLUMNS if c in models] + ["n_weights"]
    models = models[first + [c for c in models.columns if c not in first]]
    kinds_order = {k: i for i, k in enumerate(KINDS)}
    models = models.sort_values(
        ["kind", "width", "n_sensitivities", "n_atom_layers", "seed"], key=lambda s: s.map(kinds_order) if s.name == "kind" else s
    ).reset_index(drop=True)
    curves_df = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=["epoch", *ID_COLUMNS])
    first = list(ID_COLUMNS)
    curves_df = curves_df[first + [c for c in curves_df.columns if c not in first]]
    return models, curves_df


# ----------------------------------------------------------------------------------------------------------
# statistics over seeds


def numeric_columns(models: pd.DataFrame) -> list[str]:
    skip = set(ID_COLUMNS)
    return [c for c in models.columns if c not in skip and pd.api.types.is_numeric_dtype(models[c]) and not pd.api.types.is_bool_dtype(models[c])]


def summarize(models: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample std (ddof=1; NaN for one seed) over seeds per (kind, architecture)."""
    cols = numeric_columns(models)
    g = models.groupby(list(GROUP_COLUMNS), sort=False)
    mean = g[cols].mean().add_suffix("_mean")
    std = g[cols].std(ddof=1).add_suffix("_std")
    out = pd.concat([g.size().rename("n_seeds"), mean, std], axis=1)
    ordered = ["n_seeds"] + [x for c in cols for x in (f"{c}_mean", f"{c}_std")]
    return out[ordered].reset_index()


# ----------------------------------------------------------------------------------------------------------
# writing


# ----------------------------------------------------------------------------------------------------------
# command line


def main(argv: list[str] | None = None) -> int:
    """``tsmlip aggregate``: per-model files -> models.csv, summary.csv, curves.csv (+ HTML views)."""
    from .cli import step_parser

    ap = step_parser("aggregate", main.__doc__ + "\n\nThe learning-speed threshold is "
                     "aggregate.learning_speed_factor x the teacher's best validation force RMSE.")
    ap.add_argument("--files", nargs="+", default=None,
                    help="exactly the per-model files to read (metrics.json and curve.csv of every model, and any "
                         "md_timing_<engine>.json, max_atoms.json, rdf_error.json), in models/<kind>/<arch>/seed<N>/; "
                         "the workflow's way: nothing else is looked for on disk")
    ap.add_argument("--models-dir", default=None, help="<results>/models (without --files)")
    ap.add_argument("--model-ids", nargs="+", default=None,
                    help="models to read (default: every model directory found under --models-dir)")
    ap.add_argument("--optional", nargs="*", default=[],
                    help="with --model-ids: further per-model files to read where present, e.g. md_timing_ase.json "
                         "max_atoms.json rdf_error.json")
    ap.add_argument("--budget-check-files", nargs="*", default=[],
                    help="metrics.json of every budget-check model (trained again with every budget doubled), in "
                         "<dir>/<kind>/<arch>/seed<N>/: each adds the budget_check_* columns to its model's row")
    ap.add_argument("--expect-settings", nargs="*", default=[], metavar="STEP=HASH",
                    help="the settings hash (tsmlip.provenance.settings_hash of its --config-json) this configuration "
                         "gives each step whose files are read (md-timing, max-atoms, rdf-error, rdf-md): a file "
                         "recording other settings is refused")
    ap.add_argument("--out-models", required=True)
    ap.add_argument("--out-summary", required=True)
    ap.add_argument("--out-curves", required=True)
    ap.add_argument("--out-models-html", default=None)
    ap.add_argument("--out-summary-html", default=None)
    args = ap.parse_args(argv)
    factor = args.config_json["aggregate"]["learning_speed_factor"]
    if (args.files is None) == (args.models_dir is None):
        ap.error("give either --files or --models-dir")
    if args.files is not None and (args.model_ids or args.optional):
        ap.error("--model-ids and --optional go with --models-dir, not --files")

    if args.files is not None:
        files = args.files
    else:
        files = model_files(args.models_dir, args.model_ids, args.optional) if args.model_ids else None
    found = collect_files(files, args.models_dir)
    expect = dict(s.split("=", 1) for s in args.expect_settings)
    from .provenance_checks import check_made_from_models

    check_made_from_models(found, expect)
    models, curves = build_tables(found, factor, read_budget_checks(args.budget_check_files))
    summary = summarize(models)
    write_csv(models, args.out_models)
    write_csv(summary, args.out_summary)
    write_csv(curves, args.out_curves)
    thr = models["threshold_force_rmse_eV_A"].iloc[0]
    n_conv = int(models["converged"].sum())
    n_checked = int(models["budget_check_test_force_rmse_eV_A"].notna().sum())
    note = (
        f"<p>Units are in the column names. Learning-speed threshold: {fmt(thr)} eV/A "
        f"({factor:g} x the teacher's best validation force RMSE). Converged: {n_conv} of "
        f"{len(models)} models (stopped by the stopping rule, not the epoch cap). Budget check (trained again "
        f"with every budget doubled): {n_checked} models, columns budget_check_*. Missing values: '-'.</p>"
    )
    if args.out_models_html:
        write_html_table(models, args.out_models_html, "Every trained model", note, nowrap=True)
    if args.out_summary_html:
        write_html_table(summary, args.out_summary_html, "Mean and standard deviation over seeds", note, nowrap=True)
    from .provenance import record, write_sidecars

    read = sorted(str(p) for e in found.values() for p in [*e["md_timing"].values(),
                                                          *(v for k, v in e.items() if k != "md_timing")])
    rec = record("aggregate", args.config_json, {"files": read, "budget_check": list(args.budget_check_files)})
    write_sidecars([args.out_models, args.out_summary, args.out_curves, args.out_models_html, args.out_summary_html],
                   rec)
    print(f"[aggregate] {len(models)} models ({n_conv} converged, {n_checked} budget-checked), {len(summary)} "
          f"(kind, architecture) groups, "
          f"{len(curves)} curve rows -> {args.out_models}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
