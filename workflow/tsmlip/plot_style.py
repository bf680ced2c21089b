"""The drawing every figure shares (:mod:`tsmlip.plots`, :mod:`tsmlip.coverage_plot`): the house style, a kind's
colour, marker and label (:mod:`tsmlip.kinds`), means over seeds with error bars and Pareto fronts, the shared
legend, readable log ticks, an empty panel, saving a figure as PDF and PNG."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .kinds import KINDS, REGISTRY, SWEEP_KINDS  # noqa: E402
from .tables import pareto_front  # noqa: E402

__all__ = ["auto_log", "device_names", "errorbar_kinds", "group_stats", "kind_style", "legend_below", "md_engines",
           "no_data", "readable_log_ticks", "save", "setup_style"]

#: data spanning more than this ratio get a logarithmic axis
LOG_SPAN = 10.0


def setup_style() -> None:
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)
    plt.rcParams.update({"legend.frameon": True, "legend.framealpha": 0.9, "savefig.bbox": "tight"})


def kind_style(kind: str) -> tuple[str, str, str]:
    """Colour, marker and legend label of a model kind (:mod:`tsmlip.kinds`)."""
    k = REGISTRY.get(kind)
    return (k.color, k.marker, k.label) if k else ("grey", "x", kind)


def auto_log(ax, values, axis: str = "x") -> None:
    """Logarithmic ``axis`` when the positive ``values`` span more than a decade."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size and v.max() / v.min() > LOG_SPAN:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


def group_stats(models: pd.DataFrame, cols: list[str], kinds=SWEEP_KINDS) -> pd.DataFrame:
    """Mean and std (``<col>``, ``<col>_std``) over seeds per (kind, arch), with ``n_weights`` and ``n``."""
    sub = models[models["kind"].isin(kinds)]
    g = sub.groupby(["kind", "arch"], sort=False)
    mean = g[cols + ["n_weights"]].mean()
    std = g[cols].std(ddof=1).add_suffix("_std")
    return pd.concat([mean, std, g.size().rename("n")], axis=1).reset_index()


def device_names(models: pd.DataFrame, col: str) -> str:
    if col not in models:
        return ""
    names = sorted({str(v) for v in models[col].dropna() if str(v)})
    return ", ".join(names)


def errorbar_kinds(ax, stats: pd.DataFrame, x: str, y: str, front: bool = False, xscale: float = 1.0,
                   yscale: float = 1.0, dodge: bool = False) -> None:
    """Means with one-std error bars, one colour per kind; with ``front`` the kind's Pareto front as steps."""
    kinds = [k for k in KINDS if k in set(stats["kind"])]
    for i, kind in enumerate(kinds):
        part = stats[(stats["kind"] == kind) & stats[x].notna() & stats[y].notna()].sort_values(x)
        if part.empty:
            continue
        color, marker, label = kind_style(kind)
        shift = 1.0 + (0.03 * (i - (len(kinds) - 1) / 2) if dodge else 0.0)  # side by side on a log x axis
        xs, ys = part[x] * xscale * shift, part[y] * yscale
        xerr = part[f"{x}_std"] * xscale if f"{x}_std" in part else None
        yerr = part[f"{y}_std"] * yscale if f"{y}_std" in part else None
        ax.errorbar(xs, ys, xerr=xerr, yerr=yerr, fmt=marker, color=color, ms=10 if marker == "*" else 6, capsize=2, lw=1,
                    label=label, alpha=0.9, zorder=3)
        if front:
            on = pareto_front(part[x], part[y])
            fx, fy = xs[on].to_numpy(), ys[on].to_numpy()
            order = np.argsort(fx)
            ax.plot(fx[order], fy[order], drawstyle="steps-post", color=color, lw=1.5, alpha=0.7, zorder=2)


def no_data(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} in this run", ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def md_engines(models: pd.DataFrame) -> list[str]:
    """MD engines with timings in the table (from the ``md_<engine>_us_per_atom_step`` columns)."""
    from .tables import md_time_engines

    return md_time_engines(models)


def legend_below(fig, axes, ncol: int = 2) -> None:
    """One legend for all panels, below them (figures use the constrained layout)."""
    handles: dict = {}
    for ax in np.ravel(axes):
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    if handles:
        fig.legend(list(handles.values()), list(handles.keys()), loc="outside lower center",
                   ncol=min(ncol, len(handles)), fontsize="small")


def readable_log_ticks(ax, axis: str = "y") -> None:
    """On a log axis spanning few decades, also label the 2x and 5x minor ticks, as plain numbers."""
    from matplotlib import ticker

    a = ax.yaxis if axis == "y" else ax.xaxis
    if (ax.get_yscale() if axis == "y" else ax.get_xscale()) != "log":
        return
    lo, hi = (ax.get_ylim() if axis == "y" else ax.get_xlim())
    if hi / lo > 1e3:
        return

    shown = [1, 2, 5] if hi / lo > 10 else list(range(1, 10))  # within a decade: label every tick

    def label(v, _pos):
        mant = v / 10 ** np.floor(np.log10(v) + 1e-9)
        return f"{v:g}" if np.isclose(mant, shown, rtol=1e-6).any() else ""

    a.set_major_formatter(ticker.FuncFormatter(label))
    a.set_minor_formatter(ticker.FuncFormatter(label))


def save(fig: plt.Figure, pdf: str | Path, png: str | Path, dpi: int = 150) -> None:
    for path in (pdf, png):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(pdf)
    fig.savefig(png, dpi=dpi)
    plt.close(fig)
