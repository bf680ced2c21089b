"""``tsmlip rdf-error``: a model's g(r) error against the teachers' mean g(r), the reference potential's and,
with ``rdf.experiment``, the measured liquid-Al g(r) shipped in tsmlip/reference_data."""
from __future__ import annotations

import io
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..core.md.common import finite_or_none
from ..records import ExperimentComparison, RdfError, RdfMd
from .gr import first_peak, rdf_error, read_curve

#: the exact definition written into every rdf_error.json
ERROR_DEFINITION = (
    "sum_i |g_model(r_i) - g_ref(r_i)| * dr over the fixed r grid (bin centres r_i, dr = r_max_A/n_bins), "
    "in Angstrom; error_vs_teacher uses g_ref = mean g(r) of all teacher seeds (teacher_ids), "
    "error_vs_reference uses the reference potential's own g(r) from identical MD settings"
)

#: the package folder of the experimental curves (README.md there: source, licence, citation)
EXPERIMENT_DATA = "liquid_al_gr_experiment"
EXPERIMENT_CITATION = ("experimental liquid-Al g(r) as distributed with hippynn (lanl/hippynn, "
                       "examples/exp_train/Al_rdf_training/data/Al_ref_<T>K_Gr.txt; BSD-3-Clause)")
EXPERIMENT_ERROR_DEFINITION = (
    "sum_i |g_model(r_i) - g_exp(r_i)| * dr over the model's r grid (bin centres r_i, dr = r_max_A/n_bins), in "
    "Angstrom, the experimental curve at the nearest measured temperature linearly interpolated onto r_i")


def experimental_curves(element: str = "Al") -> dict[float, object]:
    """Temperature (K) -> the packaged CSV (an importlib.resources Traversable) of each experimental g(r);
    empty for an element without measured curves."""
    from importlib import resources

    if element != "Al":
        return {}
    folder = resources.files("tsmlip.reference_data").joinpath(EXPERIMENT_DATA)
    out = {}
    for f in folder.iterdir():
        name = f.name
        if name.startswith("al_liquid_") and name.endswith("K_gr.csv"):
            out[float(name[len("al_liquid_"):-len("K_gr.csv")])] = f
    return dict(sorted(out.items()))


def read_experiment(path) -> tuple[np.ndarray, np.ndarray]:
    """(r_A, g) of an experimental CSV (columns r_A,g)."""
    data = np.genfromtxt(io.StringIO(path.read_text()), delimiter=",", names=True)
    return np.atleast_1d(data["r_A"]).astype(float), np.atleast_1d(data["g"]).astype(float)


def compare_with_experiment(r: np.ndarray, g: np.ndarray, temperature_K: float, element: str = "Al",
                            max_gap_K: float | None = None, peak_halfwidth_A: float = 0.2,
                            curves: dict | None = None) -> ExperimentComparison:
    """The model's g(r) on its grid ``r`` against the experimental curve at the nearest temperature: the error
    (:data:`EXPERIMENT_ERROR_DEFINITION`, the same L1 definition as against the teacher), the experiment's first
    peak (same parabola fit, on its own 0.05 A grid) and the model's peak shift and height difference. Where no
    curve is within ``max_gap_K`` (or none for the element) the error is None and ``experiment_note`` says why."""
    curves = experimental_curves(element) if curves is None else curves
    none = ExperimentComparison(experiment_definition=EXPERIMENT_ERROR_DEFINITION, experiment_source=EXPERIMENT_CITATION)
    if not curves:
        return replace(none, experiment_note=f"no experimental g(r) of {element} is packaged")
    t_exp = min(curves, key=lambda t: (abs(t - float(temperature_K)), t))
    if max_gap_K is not None and abs(t_exp - float(temperature_K)) > float(max_gap_K):
        return replace(none, experiment_note=f"the nearest experimental temperature ({t_exp:g} K) is more than "
                                             f"rdf.experiment.max_temperature_gap_K = {max_gap_K:g} K from the "
                                             f"run's {float(temperature_K):g} K")
    r_e, g_e = (read_experiment(curves[t_exp]) if not isinstance(curves[t_exp], tuple) else curves[t_exp])
    r, g = np.asarray(r, float), np.asarray(g, float)
    inside = (r >= r_e.min()) & (r <= r_e.max())
    g_on_r = np.interp(r[inside], r_e, g_e)
    dr = float(r[1] - r[0]) if r.size > 1 else 2.0 * float(r[0])
    err = float(np.sum(np.abs(g[inside] - g_on_r)) * dr)
    pr, pg = first_peak(r_e, g_e, peak_halfwidth_A)
    mr, mg = first_peak(r, g, peak_halfwidth_A)
    return replace(none, error_vs_experiment=finite_or_none(err), experiment_temperature_K=t_exp,
                   experiment_first_peak_r_A=finite_or_none(pr), experiment_first_peak_g=finite_or_none(pg),
                   first_peak_r_shift_vs_experiment_A=finite_or_none(mr - pr),
                   first_peak_g_diff_vs_experiment=finite_or_none(mg - pg),
                   experiment_temperature_gap_K=float(temperature_K) - t_exp,
                   experiment_note="" if inside.all() else
                   f"{int((~inside).sum())} bins beyond the experiment's r range left out")


def _check_grid(r: np.ndarray, r_other: np.ndarray, what: str) -> None:
    if r.shape != r_other.shape or not np.allclose(r, r_other):
        raise ValueError(f"g(r) curves on different r grids ({what}); rerun rdf-md with one rdf config")


def teacher_mean_curve(paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Mean g(r) of the teacher curves (same grid required)."""
    curves = [read_curve(p) for p in paths]
    r = curves[0][0]
    for p, (ri, _) in zip(paths, curves):
        _check_grid(r, ri, f"{p} vs {paths[0]}")
    return r, np.mean([gi for _, gi in curves], axis=0)


def main_error(argv: list[str] | None = None) -> int:
    """``tsmlip rdf-error``: each model's g(r) error against the teachers' mean g(r) and the reference's (one job for
    every model: the work is a few sums per model, the start-up a few seconds)."""
    from ..cli import require, step_parser

    p = step_parser("rdf-error", main_error.__doc__ + "\n\nWith rdf.experiment.enabled also against the experimental "
                    "g(r) at the nearest temperature (none farther than rdf.experiment.max_temperature_gap_K), first "
                    "peaks fitted within rdf.peak_fit_halfwidth_A. --model-id, --rdf, --info and --out name one entry "
                    "per model, in the same order.")
    p.add_argument("--model-id", nargs="+", required=True)
    p.add_argument("--rdf", nargs="+", required=True, help="each model's rdf.csv")
    p.add_argument("--info", nargs="+", required=True, help="each model's rdf_md.json")
    p.add_argument("--teacher-rdf", nargs="+", required=True, help="rdf.csv of every teacher seed")
    p.add_argument("--teacher-ids", nargs="+", required=True, help="ids of those teachers, same order")
    p.add_argument("--reference-rdf", default=None, help="the reference potential's rdf.csv (if any)")
    p.add_argument("--out", nargs="+", required=True, help="each model's rdf_error.json")
    a = p.parse_args(argv)
    if len(a.teacher_rdf) != len(a.teacher_ids):
        p.error("--teacher-rdf and --teacher-ids need the same number of entries")
    if not len(a.model_id) == len(a.rdf) == len(a.info) == len(a.out):
        p.error(f"--model-id, --rdf, --info and --out need one entry per model (got {len(a.model_id)}, {len(a.rdf)}, "
                f"{len(a.info)}, {len(a.out)})")
    rc = a.config_json["rdf"]
    if rc["experiment"]["enabled"]:
        require(p, a.config_json, ("rdf.experiment.max_temperature_gap_K", "rdf.peak_fit_halfwidth_A"))

    from ..provenance_checks import check_gr

    for p_ in [*a.teacher_rdf, *([a.reference_rdf] if a.reference_rdf else [])]:
        check_gr(p_)
    teachers = teacher_mean_curve(a.teacher_rdf)  # read once for every model
    reference = read_curve(a.reference_rdf) if a.reference_rdf else None
    for model_id, rdf, info, out in zip(a.model_id, a.rdf, a.info, a.out):
        _model_error(a, model_id, rdf, info, out, teachers, reference)
    return 0


def _model_error(a, model_id: str, rdf: str, info_path: str, out_path: str, teachers, reference) -> None:
    """One model's ``rdf_error.json``."""
    from ..provenance import carry, check_file, check_made_from, record
    from ..provenance_checks import check_written_together

    rc = a.config_json["rdf"]
    experiment = rc["experiment"]["enabled"]
    # a stale liquid: its run JSON made from another model than the one now beside it; a g(r) edited by hand or of
    # another run than its run JSON (the teachers' and the reference's g(r): checked once, by the caller)
    check_file(info_path)
    check_made_from(info_path, "model", Path(info_path).with_name("model.pt"))
    check_written_together(rdf, info_path)
    r, g = read_curve(rdf)
    info = RdfMd.read(info_path)
    r_t, g_t = teachers
    _check_grid(r, r_t, f"{rdf} vs the teachers' g(r)")
    err_ref = None
    if a.reference_rdf:
        r_ref, g_ref = reference
        _check_grid(r, r_ref, f"{rdf} vs {a.reference_rdf}")
        err_ref = finite_or_none(rdf_error(r, g, g_ref))
    out = RdfError(
        model_id=model_id,
        error_vs_teacher=finite_or_none(rdf_error(r, g, g_t)),
        error_vs_reference=err_ref,
        definition=ERROR_DEFINITION,
        teacher_ids=list(a.teacher_ids),
        outcome=info.outcome,
        experiment=compare_with_experiment(r, g, info.outcome.temperature_K, info.element,
                                           rc["experiment"]["max_temperature_gap_K"], rc["peak_fit_halfwidth_A"])
        if experiment else None,
        density=info.density if experiment else None,
    )
    rec = record("rdf-error", a.config_json, {"rdf": rdf, "info": info_path, "teacher_rdf": list(a.teacher_rdf),
                                              "reference_rdf": a.reference_rdf})
    rec = carry(rec, "model", info_path)
    if info.provenance and "settings" in info.provenance:  # the settings of the liquid it was made of (aggregate)
        rec["liquid_settings"] = info.provenance["settings"]
    out = out.with_provenance(rec).write(out_path, indent=2)
    print(f"[rdf-error] {model_id}: vs teacher {out['error_vs_teacher']}, "
          f"vs reference {out['error_vs_reference']}"
          + (f", vs experiment {out['error_vs_experiment']}" if experiment else ""), file=sys.stderr, flush=True)
