"""The coverage figure: what the training data hold against what the liquid-RDF runs visit.

``tsmlip plot-coverage --dataset dataset.npz --rdf-info <rdf_md.json ...> --pdf F --png F`` draws

- (A) the closest-pair distance of every training configuration (histogram, per family for the
  embedded data) with each RDF run's closest approach over its production frames as a tick;
- (B) the configurations' mass densities, with the RDF state point's density;
- (C) the configurations' MD temperatures (when the dataset has them), with the RDF temperature.

A run whose closest approach lies left of the data's smallest distance moved where no model was
trained: its g(r) measures extrapolation, not the potential.
"""
from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .data.coverage import per_config  # noqa: E402
from .data.dataset import load_dataset  # noqa: E402
from .plot_style import kind_style, save, setup_style  # noqa: E402
from .records import RdfMd  # noqa: E402

FAMILY_NAMES = ("crystal", "strained", "liquid", "close_contact")


def _kind_of(model_id: str) -> str:
    return "reference" if model_id.startswith("reference") else model_id.split("/")[0]


def coverage_figure(arrays: dict, runs: list[RdfMd], families=FAMILY_NAMES) -> plt.Figure:
    pc = per_config(arrays)
    kinds = np.asarray(arrays["config_kind"]) if "config_kind" in arrays else np.zeros(len(arrays["E"]), int)
    names = list(families) if "config_kind" in arrays else ["all configurations"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), layout="constrained")
    panels = (("min_pair_distance_A", "closest pair in the configuration (Å)", "min_pair_distance_A"),
              ("density_g_cm3", "mass density (g/cm³)", "density_g_cm3"),
              ("T_K", "MD temperature (K)", "temperature_K"))
    for ax, (col, xlabel, run_key), letter in zip(axes, panels, "ABC"):
        values = pc[col]
        if not np.isfinite(values).any():
            ax.text(0.5, 0.5, "not recorded in this dataset", ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([])
        else:
            finite = values[np.isfinite(values)]
            bins = np.linspace(finite.min(), finite.max(), 25) if np.ptp(finite) > 0 else 10
            data = [values[(kinds == i) & np.isfinite(values)] for i in range(len(names))]
            keep = [i for i, d in enumerate(data) if len(d)]
            ax.hist([data[i] for i in keep], bins=bins, stacked=True, label=[names[i] for i in keep], alpha=0.8)
        y_top = ax.get_ylim()[1]
        seen = set()
        for run in runs:
            x = run.value(run_key)
            if x is None or not np.isfinite(x):
                continue
            kind = _kind_of(str(run.model_id))
            color = "grey" if kind == "reference" else kind_style(kind)[0]
            clean = run.outcome.stable and run.outcome.melted is not False
            label = None
            if (kind, clean) not in seen:
                seen.add((kind, clean))
                label = f"RDF run: {'EMT reference' if kind == 'reference' else kind}{'' if clean else ' (not clean)'}"
            ax.axvline(x, ymin=0.85, ymax=1.0, color=color, lw=1.5, ls="-" if clean else ":", label=label)
        ax.set_ylim(0, y_top * 1.15)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("training configurations")
        ax.set_title(f"({letter})", loc="left", fontsize="medium")
    axes[0].legend(fontsize="x-small", loc="upper left")
    fig.suptitle("Coverage of the dataset (histograms) against the liquid-RDF runs (ticks at the top: each run's "
                 "closest approach, density and temperature)", fontsize="medium")
    return fig


def main(argv: list[str] | None = None) -> int:
    """``tsmlip plot-coverage``: the dataset's coverage against the RDF runs, as PDF and PNG."""
    from .cli import step_parser

    ap = step_parser("plot-coverage", __doc__)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--rdf-info", nargs="*", default=[], help="rdf_md.json of every run (models and reference)")
    ap.add_argument("--pdf", required=True)
    ap.add_argument("--png", required=True)
    a = ap.parse_args(argv)
    setup_style()
    runs = [RdfMd.read(p) for p in a.rdf_info]
    fig = coverage_figure(load_dataset(a.dataset), runs)
    save(fig, a.pdf, a.png, a.config_json["aggregate"]["dpi"])
    from .provenance import record, write_sidecars

    write_sidecars([a.pdf, a.png], record("plot-coverage", a.config_json, {"dataset": a.dataset,
                                                                           "rdf_info": list(a.rdf_info)}))
    print(f"[plot-coverage] {len(runs)} RDF runs -> {a.pdf}, {a.png}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
