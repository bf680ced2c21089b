"""Every figure from a synthetic run with known numbers (see test_aggregate.write_synthetic_run)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import BASE_CONFIG, ROOT, write_record
from test_aggregate import ARCHS, build, write_synthetic_run
from tsmlip import aggregate, born_again, plot_style, plots
from tsmlip.config import load_config
from tsmlip.records import RdfError


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root = write_synthetic_run(tmp_path_factory.mktemp("run"))
    models, curves = build(root)
    return models, curves, born_again.born_again_table(models)


def _front_lines(ax):
    return [ln for ln in ax.get_lines() if ln.get_drawstyle() == "steps-post"]


def test_pareto_time_draws_fronts_through_means(tables):
    models, _, _ = tables
    fig = plots.make_figure("pareto_time", models)
    ax = fig.axes[0]
    assert "Test CPU" in ax.get_title() and "ase" in ax.get_title()
    fronts = _front_lines(ax)
    assert len(fronts) == 3  # student, control, control_fw
    # the synthetic students: cost 1, 2, 4 us and force 0.8 x the control's: every architecture on the front
    student = [ln for ln in fronts if ln.get_color() == plot_style.kind_style("student")[0]][0]
    x, y = student.get_data()
    cost = [us for _, us, _, _ in ARCHS.values()]
    force = [0.8 * fc for *_, fc in ARCHS.values()]
    assert np.asarray(x) == pytest.approx(cost, rel=0.01)
    assert np.asarray(y) == pytest.approx(force, rel=0.01)
    assert ax.get_xlabel() == "MD time per step per atom (µs)"


def test_pareto_memory_front_drops_dominated_point(tables):
    models, _, _ = tables
    worse = models.copy()
    # the largest student is now both costlier and worse than the middle one: off the front
    sel = (worse["kind"] == "student") & (worse["arch"] == "w16-s4-l1")
    worse.loc[sel, "test_force_rmse_eV_A"] = 0.5
    ax = plots.make_figure("pareto_memory", worse).axes[0]
    student = [ln for ln in _front_lines(ax) if ln.get_color() == plot_style.kind_style("student")[0]][0]
    assert np.asarray(student.get_data()[0]) == pytest.approx([10_000 / 1024, 20_000 / 1024])
    assert "KiB" in ax.get_xlabel()


def test_capacity_panels_follow_the_data(tables):
    models, _, _ = tables
    fig = plots.make_figure("capacity", models)
    assert len([a for a in fig.axes if a.get_xlabel()]) == 3
    assert all(a.get_xscale() == "log" for a in fig.axes if a.get_xlabel())
    no_rdf = models.drop(columns=[c for c in models.columns if c.startswith("rdf_")])
    assert len([a for a in plots.make_figure("capacity", no_rdf).axes if a.get_xlabel()]) == 2


def _rdf_axis(fig):
    return [a for a in fig.axes if a.get_ylabel().startswith("RDF error")][0]


def test_capacity_rdf_panel_draws_the_noise_floor_and_not_the_teacher(tables):
    """The teacher's g(r) is the reference (its RDF error 0 against itself): no teacher point on the RDF panel,
    the seed noise floor drawn as a band from zero up to it."""
    models, _, _ = tables
    ax = _rdf_axis(plots.make_figure("capacity", models, rdf_noise_floor_A=0.03))
    teacher = plot_style.kind_style("teacher")[2]
    assert teacher not in [h.get_label() for h in ax.get_legend_handles_labels()[0]]
    assert all(ln.get_marker() != "*" for ln in ax.get_lines())
    assert "reference" in ax.get_title(loc="left")
    bands = [p for p in ax.patches if "noise floor" in p.get_label()]
    assert len(bands) == 1
    ys = bands[0].get_patch_transform().transform(bands[0].get_path().vertices)[:, 1]  # data units
    assert max(ys) == pytest.approx(0.03) and min(ys) <= 0.03 / 2
    assert ax.get_ylim()[1] >= 0.03
    # the force panel still shows the teacher; without a floor there is no band
    force = [a for a in plots.make_figure("capacity", models).axes if a.get_ylabel() == plots.FORCE_LABEL][0]
    assert any(ln.get_marker() == "*" for ln in force.get_lines())
    assert not [p for p in _rdf_axis(plots.make_figure("capacity", models)).patches if "noise floor" in p.get_label()]


def test_learning_curves_mean_and_threshold(tables):
    models, curves, _ = tables
    fig = plots.make_figure("learning_curves", models, curves, arch="w8-s4-l1")
    assert "w8-s4-l1" in fig._suptitle.get_text()
    ax_train, ax_valid = fig.axes[:2]
    assert ax_valid.get_yscale() == "log"
    labels = [ln.get_label() for ln in ax_valid.get_lines()]
    assert any(lab.startswith("student") and "mean of 3 seeds" in lab for lab in labels)
    assert any(lab.startswith("learning-speed threshold (2 × teacher") for lab in labels)
    assert plots.pick_arch(models, "w999-s1-l1") in ARCHS  # unknown architecture: the best-covered one


def test_scaling_and_born_again(tables):
    models, _, ba = tables
    fig = plots.make_figure("scaling", models)
    assert fig.axes[0].get_ylabel() == "MD time per step per atom (µs)"
    assert fig.axes[1].get_ylabel() == "maximum number of atoms"
    fig = plots.make_figure("born_again", born_again_table=ba)
    bars = [p.get_height() for p in fig.axes[1].patches]
    assert bars == pytest.approx([0.1, 0.1, 0.09])  # teacher, static, scheduled


def test_figures_without_md_say_so(tmp_path):
    models, _ = build(write_synthetic_run(tmp_path, md=False, rdf=False))
    for name in ("pareto_time", "pareto_memory", "scaling"):
        fig = plots.make_figure(name, models)
        assert any("no " in t.get_text() for a in fig.axes for t in a.texts)


def test_cli_writes_pdf_and_png(tables, tmp_path):
    models, curves, ba = tables
    models.to_csv(tmp_path / "models.csv", index=False)
    curves.to_csv(tmp_path / "curves.csv", index=False)
    ba.to_csv(tmp_path / "ba.csv", index=False)
    floor = tmp_path / "noise_floor.json"
    write_record(floor, RdfError, error_vs_teacher=0.03)
    cfg = {"aggregate": {"dpi": 60, "curves_arch": None}, "sweep": {"base": load_config(BASE_CONFIG)["sweep"]["base"]}}
    for name in plots.FIGURES:
        args = [name, "--config-json", json.dumps(cfg), "--pdf", str(tmp_path / f"{name}.pdf"),
                "--png", str(tmp_path / f"{name}.png")]
        args += ["--born-again", str(tmp_path / "ba.csv")] if name == "born_again" else ["--models", str(tmp_path / "models.csv")]
        args += ["--curves", str(tmp_path / "curves.csv")] if name == "learning_curves" else []
        args += ["--rdf-noise-floor", str(floor)] if name == "capacity" else []
        assert plots.main(args) == 0
        assert (tmp_path / f"{name}.pdf").read_bytes()[:4] == b"%PDF"
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SystemExit):
        plots.main(["learning_curves", "--config-json", json.dumps(cfg), "--models", str(tmp_path / "models.csv"),
                    "--pdf", "a.pdf", "--png", "a.png"])
    with pytest.raises(SystemExit):  # learning_curves reads the architecture to draw
        plots.main(["learning_curves", "--config-json", '{"aggregate": {"dpi": 60}}', "--models",
                    str(tmp_path / "models.csv"), "--curves", str(tmp_path / "curves.csv"), "--pdf", "a.pdf",
                    "--png", "a.png"])
    assert pd.read_csv(tmp_path / "models.csv").shape[0] == len(models)


def test_one_figure_table():
    """tsmlip.figures is the one table of figures: `tsmlip plot` draws each by the function of its name, and the
    rules read their inputs, config keys and labels from it."""
    from tsmlip.figures import FIGURES

    assert plots.FIGURES == tuple(FIGURES)
    for name, fig in FIGURES.items():
        assert callable(getattr(plots, name)), name
        assert set(fig.required) <= set(fig.inputs) and fig.required
    common = (ROOT / "workflow" / "rules" / "common.smk").read_text()
    assert "FIGURES = tsfigures.FIGURES" in common and "Fig. 2A" not in common


def _drawn_points(line) -> int:
    y = np.asarray(line.get_ydata(), dtype=float)
    return int(np.isfinite(y).sum())


def test_learning_curves_draw_a_sparsely_evaluated_training_split(tables):
    """The training split is evaluated every few epochs (NaN between): every panel still draws each kind's lines
    (a run's learning-curve figure once had an empty training panel)."""
    models, curves, _ = tables
    sparse = curves.copy()
    sparse.loc[sparse["epoch"] % 10 != 0, "train_force_rmse_eV_A"] = np.nan
    fig = plots.make_figure("learning_curves", models, sparse, arch="w8-s4-l1")
    for ax in fig.axes[:2]:
        means = [ln for ln in ax.get_lines() if "mean of" in ln.get_label()]
        assert means and all(_drawn_points(ln) >= 2 for ln in means), ax.get_title()
        # a line with a NaN between every two values draws nothing: none may be left
        assert all(np.isfinite(np.asarray(ln.get_ydata(), dtype=float)).all() for ln in means)


def test_scaling_does_not_join_architectures_into_a_trend(tables):
    """Cost against the weight count, one labelled point per architecture; no line through them (the architectures
    differ along several axes)."""
    models, _, _ = tables
    fig = plots.make_figure("scaling", models)
    for ax in fig.axes[:2]:
        assert all(ln.get_linestyle() in ("None", "", " ") for ln in ax.get_lines() if len(ln.get_xdata()) > 1)
        assert {t.get_text() for t in ax.texts} >= set(ARCHS)


def test_pareto_figures_show_the_teacher_as_a_reference_point(tables):
    """The teacher is drawn (its own marker, labelled with its architecture) without a front of its own."""
    models, _, _ = tables
    teacher = models[models["kind"] == "teacher"]
    assert len(teacher) and teacher["md_ase_us_per_atom_step"].notna().any()
    ax = plots.make_figure("pareto_time", models).axes[0]
    labels = [t.get_text() for t in ax.texts]
    assert teacher["arch"].iloc[0] in labels
    handles, names = ax.get_legend_handles_labels() if ax.get_legend() is None else (None, [])
    names = names or [t.get_text() for t in ax.figure.legends[0].get_texts()]
    assert plot_style.kind_style("teacher")[2] in names
    assert len(_front_lines(ax)) == 3  # fronts of the sweep kinds only
