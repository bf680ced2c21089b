"""The paper's figures from the tidy tables (``tables/models.csv``, ``tables/curves.csv``, ``tables/born_again.csv``).

``tsmlip plot <figure> ...`` writes one figure as PDF and PNG:

- ``pareto_time`` (Fig. 2A): test force RMSE vs MD time per step per atom (one panel per MD engine);
- ``pareto_memory`` (Fig. 2B): test force RMSE vs memory per atom;
- ``capacity`` (Fig. 3): test force RMSE, energy RMSE per atom and RDF error vs the number of weights (the RDF
  panel with the seed noise floor as a band, ``--rdf-noise-floor``; the teacher, whose g(r) is the reference, is
  not a point of it);
- ``learning_curves`` (Fig. 4): train and validation force RMSE vs epoch, one architecture;
- ``scaling`` (Fig. 5): MD time per step per atom and the maximum number of atoms vs the number of weights;
- ``born_again`` (Section 3.5): teacher vs static and scheduled Born-Again students.

Points are means over seeds with error bars of one sample standard deviation. A Pareto front (both axes
minimised) is drawn as a step line through the non-dominated means of each kind.
"""
from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .figures import FIGURES as FIGURE_TABLE  # noqa: E402
from .kinds import KINDS, SWEEP_KINDS  # noqa: E402
from .plot_style import (auto_log, device_names, errorbar_kinds, group_stats, kind_style, legend_below,  # noqa: E402
                         md_engines, no_data, readable_log_ticks, save, setup_style)

FORCE_LABEL = "test force RMSE (eV/Å)"


# ----------------------------------------------------------------------------------------------------------
# figures


def _label_archs(ax, stats: pd.DataFrame, x: str, y: str, kind: str = "student", xscale: float = 1.0,
                 max_labels: int = 12) -> None:
    """Architecture tags next to one kind's points (the other kinds share the architectures' costs)."""
    part = stats[(stats["kind"] == kind) & stats[x].notna() & stats[y].notna()]
    if len(part) > max_labels:
        return
    for _, r in part.iterrows():
        ax.annotate(r["arch"], (r[x] * xscale, r[y]), xytext=(4, -9), textcoords="offset points",
                    fontsize="x-small", color="dimgrey")


def _pareto(models: pd.DataFrame, ax, cost: str, xscale: float, xlabel: str,
            classical: pd.DataFrame | None = None) -> None:
    """The sweep kinds with their Pareto fronts; the teacher as the reference point (no front) and the classical
    potential (``classical``) as points of their own."""
    stats = group_stats(models, [cost, "test_force_rmse_eV_A"])
    errorbar_kinds(ax, stats, cost, "test_force_rmse_eV_A", front=True, xscale=xscale)
    _label_archs(ax, stats, cost, "test_force_rmse_eV_A", xscale=xscale)
    teacher = group_stats(models, [cost, "test_force_rmse_eV_A"], kinds=("teacher",))
    teacher = teacher[teacher[cost].notna() & teacher["test_force_rmse_eV_A"].notna()]
    if len(teacher):
        errorbar_kinds(ax, teacher, cost, "test_force_rmse_eV_A", xscale=xscale)
        _label_archs(ax, teacher, cost, "test_force_rmse_eV_A", kind="teacher", xscale=xscale)
        stats = pd.concat([stats, teacher], ignore_index=True)
    xs, ys = _classical_points(ax, classical, cost, xscale)
    auto_log(ax, pd.concat([stats[cost], pd.Series(xs, dtype=float)]), "x")
    auto_log(ax, pd.concat([stats["test_force_rmse_eV_A"], pd.Series(ys, dtype=float)]), "y")
    readable_log_ticks(ax, "x")
    readable_log_ticks(ax, "y")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(FORCE_LABEL)


def _classical_points(ax, classical: pd.DataFrame | None, cost: str, xscale: float) -> tuple[list, list]:
    """The classical anchor (tables/classical.csv) on a Pareto panel: a star at its cost on the panel's engine, and
    where it has a time on LAMMPS's own MD but the panel is another engine's, a dotted line there (what a user
    runs). Returns the x and y values drawn (for the axes' scales)."""
    xs, ys = [], []
    if classical is None or classical.empty or "test_force_rmse_eV_A" not in classical:
        return xs, ys
    for _, r in classical.iterrows():
        y = float(r["test_force_rmse_eV_A"])
        name = r.get("name", "classical")
        if cost in r and pd.notna(r[cost]):
            ax.plot([float(r[cost]) * xscale], [y], marker="*", ms=14, color="black", ls="none",
                    label=f"{name} (classical, same engine)")
            xs.append(float(r[cost]) * xscale)
            ys.append(y)
        native = "md_lammps_us_per_atom_step"
        if cost != native and native in r and pd.notna(r[native]) and cost.startswith("md_"):
            ax.axvline(float(r[native]) * xscale, color="black", ls=":", lw=1,
                       label=f"{name} in LAMMPS's own MD (what a user runs)")
            ax.plot([float(r[native]) * xscale], [y], marker="*", ms=12, mfc="none", color="black", ls="none")
            xs.append(float(r[native]) * xscale)
            ys.append(y)
    return xs, ys


def pareto_time(models: pd.DataFrame, classical: pd.DataFrame | None = None) -> plt.Figure:
    """Fig. 2A: test force RMSE vs MD time per step per atom (µs), one panel per MD engine; with ``classical``
    (tables/classical.csv) the classical anchor as a star on each panel (:func:`_classical_points`)."""
    engines = md_engines(models)
    n = max(1, len(engines))
    fig, axes = plt.subplots(1, n, figsize=(6 * n, 5.2), squeeze=False, layout="constrained")
    for ax, engine in zip(axes[0], engines):
        _pareto(models, ax, f"md_{engine}_us_per_atom_step", 1.0, "MD time per step per atom (µs)", classical)
        dev = device_names(models, f"md_{engine}_device_name")
        ax.set_title(f"MD engine {engine}" + (f" on {dev}" if dev else ""), fontsize="medium")
    if not engines:
        no_data(axes[0, 0], "MD timings")
    fig.suptitle("Accuracy vs MD speed (means ± std over seeds; lines: Pareto fronts; lower left is better)",
                 fontsize="medium")
    legend_below(fig, axes, ncol=1 if n == 1 else 3)
    return fig


def pareto_memory(models: pd.DataFrame) -> plt.Figure:
    """Fig. 2B: test force RMSE vs memory per atom (KiB)."""
    fig, ax = plt.subplots(figsize=(6, 5.2), layout="constrained")
    col = "memory_per_atom_bytes"
    if col in models and models[col].notna().any():
        _pareto(models, ax, col, 1 / 1024, "memory per atom (KiB)")
        dev = device_names(models, "max_atoms_device_name")
        ax.set_title("memory measured" + (f" on {dev}" if dev else ""), fontsize="medium")
    else:
        no_data(ax, "memory measurements")
    fig.suptitle("Accuracy vs memory (means ± std over seeds;\nlines: Pareto fronts; lower left is better)",
                 fontsize="medium")
    legend_below(fig, [ax], ncol=1)
    return fig


RDF_TEACHER = "rdf_error_vs_teacher"


def noise_floor_band(ax, floor_A: float | None) -> None:
    """The seed noise floor of the RDF error (two teacher liquids differing only in the MD seed) as a band from
    zero to the floor: an RDF error or difference inside it is not resolved. Call after the axis scale is set;
    the axis is widened to show the band."""
    if floor_A is None or not (np.isfinite(floor_A) and floor_A > 0):
        return
    lo, hi = ax.get_ylim()
    bottom = min(lo, floor_A / 2) if ax.get_yscale() == "log" else min(lo, 0.0)
    ax.axhspan(bottom, floor_A, color="grey", alpha=0.2, lw=0, zorder=1,
               label=f"seed noise floor of the RDF error ({floor_A:.3g} Å): not resolved below")
    ax.set_ylim(bottom, max(hi, 1.1 * floor_A))


def capacity(models: pd.DataFrame, rdf_noise_floor_A: float | None = None) -> plt.Figure:
    """Fig. 3: test force RMSE, energy RMSE per atom (meV) and RDF error vs the number of weights.

    The RDF panel (error vs the teacher's g(r)) draws the seed noise floor as a band; the teacher is not a
    point of it (its g(r) is the reference, so its error against itself says nothing)."""
    panels = [("test_force_rmse_eV_A", FORCE_LABEL, 1.0, ""),
              ("test_energy_per_atom_rmse_eV", "test energy RMSE per atom (meV/atom)", 1e3, "")]
    if RDF_TEACHER in models and models[RDF_TEACHER].notna().any():
        # the full definition is in models.csv (rdf_definition) and in the figure's report caption
        panels.append((RDF_TEACHER, "RDF error vs the teacher, Σ|Δg(r)|·dr (Å)", 1.0,
                       "the teacher's g(r) is the reference"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 4.6), squeeze=False, layout="constrained")
    stats = group_stats(models, [p[0] for p in panels], kinds=SWEEP_KINDS + ("teacher",))
    for ax, (col, label, scale, note), letter in zip(axes[0], panels, "ABC"):
        rdf = col == RDF_TEACHER
        shown = stats[stats["kind"] != "teacher"] if rdf else stats
        errorbar_kinds(ax, shown, "n_weights", col, yscale=scale, dodge=True)
        ax.set_xscale("log")
        auto_log(ax, shown[col] * scale, "y")
        if rdf:
            noise_floor_band(ax, rdf_noise_floor_A)
        readable_log_ticks(ax, "x")
        readable_log_ticks(ax, "y")
        ax.set_xlabel("number of weights")
        ax.set_ylabel(label)
        ax.set_title(f"({letter}) {note}".strip(), loc="left", fontsize="small" if note else "medium")
    fig.suptitle("Accuracy vs model capacity (test split; means ± std over seeds)", fontsize="medium")
    legend_below(fig, axes, ncol=2)
    return fig


def pick_arch(models: pd.DataFrame, arch: str | None) -> str:
    """The learning-curve architecture: ``arch`` if students have it, else the one with the most students."""
    students = models[models["kind"] == "student"]
    pool = students if not students.empty else models[models["kind"].isin(SWEEP_KINDS)]
    if pool.empty:
        raise ValueError("no student or control model to draw learning curves of")
    if arch and arch in set(pool["arch"]):
        return arch
    counts = pool.groupby("arch").size()
    return str(counts.idxmax())


def _threshold_label(models: pd.DataFrame) -> str:
    if "learning_speed_factor" in models and models["learning_speed_factor"].notna().any():
        return f"learning-speed threshold ({models['learning_speed_factor'].dropna().iloc[0]:g} × teacher's best validation)"
    return "learning-speed threshold"


def learning_curves(models: pd.DataFrame, curves: pd.DataFrame, arch: str | None = None) -> plt.Figure:
    """Fig. 4: train (A) and validation (B) force RMSE vs epoch; thin lines = seeds, thick = mean."""
    arch = pick_arch(models, arch)
    sub = curves[(curves["arch"] == arch) & curves["kind"].isin(SWEEP_KINDS)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8), sharey=True, layout="constrained")
    thr = models["threshold_force_rmse_eV_A"].dropna() if "threshold_force_rmse_eV_A" in models else pd.Series(dtype=float)
    for ax, split, letter in zip(axes, ("train", "valid"), "AB"):
        col = f"{split}_force_rmse_eV_A"
        name = "training" if split == "train" else "validation"
        for kind in [k for k in KINDS if k in set(sub["kind"])]:
            color, _, label = kind_style(kind)
            part = sub[sub["kind"] == kind]
            # the training split is evaluated every training.train_eval_every epochs (NaN between): each line joins
            # the epochs that have a value, so a sparse column still draws (markers where evaluations are sparse)
            part = part[part[col].notna()]
            marker = "o" if split == "train" else None
            for _, one in part.groupby("seed"):
                ax.plot(one["epoch"], one[col], color=color, lw=0.7, alpha=0.35)
            mean = part.groupby("epoch")[col].mean()
            ax.plot(mean.index, mean.to_numpy(), color=color, lw=2, marker=marker, ms=3,
                    label=f"{label}, mean of {part['seed'].nunique()} seeds")
        if len(thr):
            ax.axhline(thr.iloc[0], color="grey", ls="--", lw=1, label=_threshold_label(models))
        ax.set_yscale("log")
        readable_log_ticks(ax, "y")
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{name} force RMSE (eV/Å)")
        ax.set_title(f"({letter}) {name} split", loc="left", fontsize="medium")
    fig.suptitle(f"Learning dynamics of architecture {arch} (width-sensitivities-atom layers); "
                 "thin lines: single seeds", fontsize="medium")
    axes[1].tick_params(axis="y", labelleft=True)  # sharey hides the second panel's labels otherwise
    legend_below(fig, axes, ncol=2)
    return fig


def _per_arch(models: pd.DataFrame, col: str) -> pd.DataFrame:
    """Mean and std of ``col`` per architecture over every model of it (cost does not depend on training)."""
    sub = models[models[col].notna()]
    out = sub.groupby("arch").agg(n_weights=("n_weights", "mean"), mean=(col, "mean"), std=(col, "std"))
    return out.sort_values("n_weights")


def _finish_cost_axis(ax, has_data: bool, ylabel: str, legend_title: str, what: str, title: str) -> None:
    if has_data:
        ax.set_xscale("log")
        readable_log_ticks(ax, "x")
        readable_log_ticks(ax, "y")
        ax.set_xlabel("number of weights")
        ax.set_ylabel(ylabel)
        ax.legend(title=legend_title, fontsize="small")
    else:
        no_data(ax, what)
    ax.set_title(title, loc="left", fontsize="medium")


def scaling(models: pd.DataFrame) -> plt.Figure:
    """Fig. 5: MD time per step per atom (A, per engine) and the maximum number of atoms (B) vs the number
    of weights, one point per architecture (every kind of it pooled: cost does not depend on training).
    The legends name the device and hippynn's message-passing kernels the numbers were measured with
    (``hippynn_kernels`` of the JSON: memory per atom depends on them)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), layout="constrained")
    ax = axes[0]
    engines = md_engines(models)
    for engine, marker in zip(engines, "osD^v"):
        col = f"md_{engine}_us_per_atom_step"
        arch = _per_arch(models, col)
        dev = device_names(models, f"md_{engine}_device_name")
        kernels = device_names(models, f"md_{engine}_hippynn_kernels")
        # points, not a line: the architectures differ along several axes (width, sensitivities, layers), so the
        # cost is no function of the weight count alone; each point is labelled with its architecture
        ax.errorbar(arch["n_weights"], arch["mean"], yerr=arch["std"], fmt=marker, capsize=2,
                    label=f"{engine}" + (f" on {dev}" if dev else "") + (f", {kernels} kernels" if kernels else ""))
        for tag, row in arch.iterrows():
            ax.annotate(tag, (row["n_weights"], row["mean"]), fontsize="x-small", xytext=(3, 3),
                        textcoords="offset points")
        auto_log(ax, arch["mean"], "y")
    _finish_cost_axis(ax, bool(engines), "MD time per step per atom (µs)", "MD engine", "MD timings", "(A) speed")
    ax = axes[1]
    has_max = "max_atoms" in models and models["max_atoms"].notna().any()
    if has_max:
        arch = _per_arch(models, "max_atoms")
        dev = device_names(models, "max_atoms_device_name")
        kernels = device_names(models, "max_atoms_hippynn_kernels")
        ax.plot(arch["n_weights"], arch["mean"], "o", color="dimgrey",
                label=(dev or "this device") + (f", {kernels} kernels" if kernels else ""))
        for tag, row in arch.iterrows():
            ax.annotate(tag, (row["n_weights"], row["mean"]), fontsize="x-small", xytext=(3, 3),
                        textcoords="offset points")
        auto_log(ax, arch["mean"], "y")
    _finish_cost_axis(ax, has_max, "maximum number of atoms", "device", "maximum-atoms measurements", "(B) memory")
    fig.suptitle("Cost of large-scale MD vs model capacity (one point per architecture, every kind of it pooled)",
                 fontsize="medium")
    return fig


def born_again(table: pd.DataFrame) -> plt.Figure:
    """Section 3.5: test energy and force RMSE of the teacher and the Born-Again students (bars = mean over
    seeds, error bars = std)."""
    panels = [("test_energy_rmse_eV", "test energy RMSE (eV)"), ("test_force_rmse_eV_A", FORCE_LABEL)]
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.5), layout="constrained")
    x = np.arange(len(table))
    names = [kind_style(k)[2].replace(", ", "\n", 1) for k in table["kind"]]  # "Born-Again\nstatic weights"
    for ax, (col, label) in zip(axes, panels):
        mean, std = table[f"{col}_mean"].to_numpy(float), table[f"{col}_std"].to_numpy(float)
        ax.bar(x, mean, color=[kind_style(k)[0] for k in table["kind"]], alpha=0.85, width=0.6)
        has = np.isfinite(std)
        ax.errorbar(x[has], mean[has], yerr=std[has], fmt="none", ecolor="black", capsize=5, lw=1.2)
        for xi, m in zip(x, mean):  # value inside the bar, clear of the error bar
            ax.text(xi, 0.5 * m, f"{m:#.3g}", ha="center", va="center", color="white", fontsize="small",
                    fontweight="bold")
        ax.set_xticks(x, [f"{name}\n(n = {n})" for name, n in zip(names, table["n_seeds"])])
        ax.set_ylabel(label)
        ax.grid(axis="x", visible=False)
    arch = table["arch"].iloc[0] if "arch" in table and len(table) else ""
    fig.suptitle(f"Born-Again students vs the teacher (architecture {arch}; test split; mean ± std over n seeds)",
                 fontsize="medium")
    return fig


#: the figures (their inputs and labels: :mod:`tsmlip.figures`), each drawn by the function of its name
FIGURES = tuple(FIGURE_TABLE)


def make_figure(name: str, models: pd.DataFrame | None = None, curves: pd.DataFrame | None = None,
                born_again_table: pd.DataFrame | None = None, arch: str | None = None,
                rdf_noise_floor_A: float | None = None, classical: pd.DataFrame | None = None) -> plt.Figure:
    setup_style()
    if name == "pareto_time":
        return pareto_time(models, classical)
    if name == "capacity":
        return capacity(models, rdf_noise_floor_A)
    if name == "learning_curves":
        return learning_curves(models, curves, arch)
    if name == "born_again":
        return born_again(born_again_table)
    if name in FIGURES:
        return globals()[name](models)
    raise ValueError(f"unknown figure {name!r}; one of {', '.join(FIGURES)}")


def main(argv: list[str] | None = None) -> int:
    """``tsmlip plot <figure>``: one figure of the paper from the tidy tables, as PDF and PNG."""
    from .cli import require, step_parser
    from .ids import Arch

    ap = step_parser("plot", main.__doc__ + "\n\nlearning_curves draws aggregate.curves_arch, or where null the "
                     "architecture of sweep.base.")
    ap.add_argument("figure", choices=FIGURES)
    ap.add_argument("--models", help="tables/models.csv (every figure but born_again)")
    ap.add_argument("--curves", help="tables/curves.csv (learning_curves)")
    ap.add_argument("--born-again", help="tables/born_again.csv (born_again)")
    ap.add_argument("--rdf-noise-floor", default=None,
                    help="capacity: rdf_noise/noise_floor.json (its error_vs_teacher is drawn as a band)")
    ap.add_argument("--classical", default=None,
                    help="pareto_time: tables/classical.csv (the classical anchor, drawn as a star)")
    ap.add_argument("--pdf", required=True)
    ap.add_argument("--png", required=True)
    args = ap.parse_args(argv)

    figure = FIGURE_TABLE[args.figure]
    for key in figure.required:
        if not getattr(args, key):
            ap.error(f"figure {args.figure} needs --{key.replace('_', '-')}")
    cfg, arch = args.config_json, None
    require(ap, cfg, figure.reads)
    if args.figure == "learning_curves":
        arch = cfg["aggregate"]["curves_arch"] or Arch.from_dict(cfg["sweep"]["base"]).tag
    from .provenance import check_file, check_sidecar, record, write_sidecars

    tables = {"models": args.models, "curves": args.curves, "born_again": args.born_again,
              "classical": args.classical}
    for p in tables.values():
        if p:
            check_sidecar(p)  # a table changed after its step wrote it
    if args.rdf_noise_floor:
        check_file(args.rdf_noise_floor)
    read = lambda p: pd.read_csv(p) if p else None  # noqa: E731
    floor = None
    if args.rdf_noise_floor:
        from .records import RdfError

        floor = RdfError.read(args.rdf_noise_floor).error_vs_teacher
        floor = float(floor) if floor is not None else None
    fig = make_figure(args.figure, read(args.models), read(args.curves), read(args.born_again), arch, floor,
                      read(args.classical))
    save(fig, args.pdf, args.png, cfg["aggregate"]["dpi"])
    write_sidecars([args.pdf, args.png], record("plot", {"figure": args.figure, **cfg},
                                                {**tables, "noise_floor": args.rdf_noise_floor}))
    print(f"[plot] {args.figure} -> {args.pdf}, {args.png}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
