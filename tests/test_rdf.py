"""g(r) of the liquid (tsmlip.rdf): the estimator on lattices and ideal gases, triclinic cells, the
error definition, the cut-off check, and short MD runs with a random-weight model and with EMT."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT

from conftest import write_record
from tsmlip import rdf
from tsmlip.config import load_config
from tsmlip.ids import Arch
from tsmlip.records import DatasetProvenance, RdfMd

ROOT = Path(__file__).resolve().parents[1]
#: the CLI subprocesses run this checkout's package
CLI_ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT / "workflow"), os.environ.get("PYTHONPATH"))
                                                      if p))
A_FCC = 4.05
#: what `tsmlip rdf-error` reads, with no comparison with experiment
NO_EXPERIMENT = json.dumps({"rdf": {"experiment": {"enabled": False}}})
#: fcc neighbour shells in units of the cubic lattice constant: sqrt(n/2), n = 1..5
FCC_SHELLS = [np.sqrt(n / 2.0) for n in (1, 2, 3, 4, 5)]


@pytest.fixture(scope="module")
def test_cfg():
    return load_config(ROOT / "config" / "config.yaml", ROOT / "config" / "test.yaml")


def _tiny_settings(test_cfg, **kw):
    """The test.yaml rdf section, made smaller still (32 atoms, 30 steps), resolved for aluminum."""
    s = dict(test_cfg["rdf"])
    s.update(supercell=[2, 2, 2], r_max_A=4.0, n_bins=40, melt_steps=10, equilibration_steps=10,
             production_steps=10, sample_interval=5, progress_every=10)
    s.update(kw)
    return rdf.resolve_liquid(s, [13])


# ---------------------------------------------------------------------------------------- estimator
def test_fcc_peaks_at_shell_radii():
    atoms = bulk("Al", "fcc", a=A_FCC, cubic=True).repeat((5, 5, 5))
    frames = []
    for seed in range(3):
        f = atoms.copy()
        f.rattle(stdev=0.02, seed=seed)
        frames.append(f)
    r, g = rdf.rdf_of_frames(frames, r_max=7.0, n_bins=350)
    dr = r[1] - r[0]
    for shell in FCC_SHELLS:
        r0 = shell * A_FCC
        window = np.abs(r - r0) < 0.15
        r_peak = r[window][np.argmax(g[window])]
        assert abs(r_peak - r0) <= 1.5 * dr, (r0, r_peak)
        assert g[window].max() > 5.0
    # nothing between the first two shells, and 12 nearest neighbours
    gap = (r > 3.1) & (r < 3.8)
    assert np.all(g[gap] == 0)
    rho = len(atoms) / atoms.get_volume()
    first = r < 3.4
    coordination = np.sum(4 * np.pi * r[first] ** 2 * rho * g[first] * dr)
    assert coordination == pytest.approx(12.0, rel=0.02)
    r_peak, g_peak = rdf.first_peak(r, g)
    assert r_peak == pytest.approx(A_FCC / np.sqrt(2), abs=dr)


@pytest.mark.parametrize("triclinic", [False, True])
def test_ideal_gas_tends_to_one(triclinic):
    rng = np.random.default_rng(0)
    cell = np.diag([25.0, 25.0, 25.0])
    if triclinic:
        cell = np.array([[25.0, 0, 0], [9.0, 24.0, 0], [-6.0, 5.0, 26.0]])
    frames = [Atoms("Al1000", scaled_positions=rng.random((1000, 3)), cell=cell, pbc=True)
              for _ in range(4)]
    r, g = rdf.rdf_of_frames(frames, r_max=9.0, n_bins=45)
    far = r > 3.0
    assert np.mean(g[far]) == pytest.approx(1.0, abs=0.01)
    assert np.all(np.abs(g[far] - 1.0) < 0.1)
    # the minimum-image distances agree with ASE's neighbour list in this cell
    _, g_nl = rdf.rdf_of_frames(frames[:1], r_max=9.0, n_bins=45, neighbor_list=True)
    np.testing.assert_allclose(rdf.rdf_of_frames(frames[:1], 9.0, 45)[1], g_nl, rtol=1e-12)


def test_mic_distances_in_skewed_cell():
    """Brute force over 5^3 images of a strongly sheared cell: rounding is exact below half the height."""
    rng = np.random.default_rng(1)
    cell = np.array([[10.0, 0, 0], [7.0, 9.0, 0], [-4.0, 6.5, 11.0]])
    atoms = Atoms("Al40", scaled_positions=rng.random((40, 3)), cell=cell, pbc=True)
    d = rdf.mic_distances(atoms)
    shifts = np.array(np.meshgrid(*[np.arange(-2, 3)] * 3)).reshape(3, -1).T @ cell
    vec = atoms.positions[:, None, :] - atoms.positions[None, :, :]
    brute = np.linalg.norm(vec[:, :, None, :] + shifts[None, None], axis=-1).min(axis=-1)
    half = 0.5 * rdf.cell_heights(cell).min()
    close = brute < half
    np.testing.assert_allclose(d[close], brute[close], atol=1e-10)
    assert np.all(d >= brute - 1e-10)


def test_triclinic_primitive_cell_equals_cubic():
    """The fcc primitive (rhombohedral) cell repeated is the same crystal as the cubic cell: same g(r)."""
    cubic = bulk("Al", "fcc", a=A_FCC, cubic=True).repeat((5, 5, 5))
    prim = bulk("Al", "fcc", a=A_FCC).repeat((8, 8, 8))
    assert not np.allclose(prim.cell.angles(), 90.0)
    r_max, n_bins = 7.0, 333  # shell radii fall well inside bins
    r1, g1 = rdf.rdf_of_frames([cubic], r_max, n_bins)
    r2, g2 = rdf.rdf_of_frames([prim], r_max, n_bins)
    np.testing.assert_allclose(r1, r2)
    np.testing.assert_allclose(g1, g2, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(rdf.rdf_of_frames([prim], r_max, n_bins, neighbor_list=True)[1], g2,
                               rtol=1e-9, atol=1e-9)
    peaks = r1[g1 > 1.0]
    for shell in FCC_SHELLS:
        assert np.min(np.abs(peaks - shell * A_FCC)) < r1[1] - r1[0]


def test_cutoff_above_half_cell_height_raises():
    cubic = bulk("Al", "fcc", a=A_FCC, cubic=True).repeat((3, 3, 3))  # height 12.15
    rdf.check_cutoff(cubic.cell, 6.0)
    with pytest.raises(rdf.RdfCutoffError, match="half the shortest cell height"):
        rdf.rdf_of_frames([cubic], r_max=6.1, n_bins=10)
    # triclinic: the height (not the lattice-vector length) counts
    prim = bulk("Al", "fcc", a=A_FCC).repeat((6, 6, 6))
    heights = rdf.cell_heights(prim.cell)
    assert np.allclose(heights, 6 * A_FCC / np.sqrt(3))
    r_bad = 0.5 * (0.5 * heights.min() + 0.5 * np.linalg.norm(prim.cell[0]))
    with pytest.raises(rdf.RdfCutoffError):
        rdf.check_cutoff(prim.cell, r_bad)


def test_error_definition():
    r = rdf.r_grid(8.0, 160)
    assert r[0] == pytest.approx(0.025) and r[-1] == pytest.approx(7.975)
    g = 1 + np.sin(r) * np.exp(-r / 3)
    assert rdf.rdf_error(r, g, g) == 0.0
    assert rdf.rdf_error(r, g, g + 0.1) == pytest.approx(0.1 * 8.0)
    with pytest.raises(ValueError):
        rdf.rdf_error(r, g, g[:-1])


@pytest.mark.parametrize("halfwidth", [0.0, 0.2])
def test_first_peak_parabola(halfwidth):
    r = rdf.r_grid(8.0, 160)
    g = 1 + 1.5 * np.exp(-((r - 2.81) / 0.3) ** 2) + 0.3 * np.exp(-((r - 5.3) / 0.5) ** 2)
    g[r < 2.0] = 0.0
    noisy = g + 0.01 * np.random.default_rng(0).standard_normal(r.size)
    for curve in (g, noisy):
        r_peak, g_peak = rdf.first_peak(r, curve, halfwidth)
        assert r_peak == pytest.approx(2.81, abs=0.01)
        assert g_peak == pytest.approx(2.5, abs=0.05)
    assert np.isnan(rdf.first_peak(r, np.full_like(r, np.nan))[0])
    assert np.isnan(rdf.first_peak(r, np.zeros_like(r))[0])


def test_curve_round_trip(tmp_path):
    r = rdf.r_grid(6.0, 60)
    g = np.linspace(0, 2, 60)
    rdf.write_curve(tmp_path / "g.csv", r, g)
    assert (tmp_path / "g.csv").read_text().splitlines()[0] == "r_A,g"
    r2, g2 = rdf.read_curve(tmp_path / "g.csv")
    np.testing.assert_allclose(r2, r, rtol=1e-7)
    np.testing.assert_allclose(g2, g, rtol=1e-7)


def test_density():
    # 2.70 g/cm^3 solid aluminum <-> fcc a = 4.05 A (4 atoms per cube)
    assert rdf.number_density(2.70) == pytest.approx(4 / 4.05**3, rel=0.01)
    s = {"density_g_cm3": 2.3, "element": "Al", "supercell": [2, 2, 2], "rattle_A": 0.0, "seed": 0}
    atoms = rdf.initial_liquid_cell(s)
    assert len(atoms) / atoms.get_volume() == pytest.approx(rdf.number_density(2.3))


# ---------------------------------------------------------------------------------------------- MD
def test_liquid_of_the_data_element(test_cfg):
    s = dict(test_cfg["rdf"])  # element and density null: from the species and ASE's reference data
    al = rdf.resolve_liquid(s, [13])
    assert al["element"] == "Al" and al["density_g_cm3"] == pytest.approx(2.300, abs=0.001)
    assert "ASE reference fcc Al" in al["density_source"] and al["supercell"] == s["supercell"]
    cu = rdf.resolve_liquid(s, [29])  # denser: 3 cells no longer hold r_max_A = 6 A -> enlarged
    assert cu["element"] == "Cu" and cu["density_g_cm3"] == pytest.approx(8.93 * 0.852, rel=0.01)
    assert cu["supercell_configured"] == [3, 3, 3] and cu["supercell"] == [4, 4, 4]
    rdf.check_cutoff(rdf.initial_liquid_cell(cu).cell, cu["r_max_A"])
    assert rdf.resolve_liquid(dict(s, density_g_cm3=8.0), [29])["density_source"] == "rdf.density_g_cm3"
    from tsmlip.core.elements import ElementError
    with pytest.raises(ElementError, match="rdf.element = Cu, but the model was trained on Al only"):
        rdf.resolve_liquid(dict(s, element="Cu"), [13])
    with pytest.raises(ElementError, match="single-element systems only"):
        rdf.resolve_liquid(s, [13, 29])
    with pytest.raises(ElementError, match="set rdf.density_g_cm3"):
        rdf.resolve_liquid(dict(s, element="H"), [1])  # no reference crystal in ASE


def test_cli_refuses_a_foreign_element_before_md(tmp_path, test_cfg):
    from tsmlip.core.model import build_model, save_model

    model = tmp_path / "model.pt"
    save_model(build_model(Arch(4, 4, 1), test_cfg["network"], seed=0), model)
    cfg_json = json.dumps({"rdf": dict(test_cfg["rdf"], element="Cu")})
    assert rdf.main_md(["--model", str(model), "--config-json", cfg_json, "--out-csv", str(tmp_path / "g.csv"),
                        "--out-json", str(tmp_path / "g.json")]) == 2
    assert not (tmp_path / "g.csv").exists()


def test_emt_md_identical_start_and_finite(test_cfg):
    s = _tiny_settings(test_cfg)
    runs = [rdf.run_liquid_md(EMT(), s, log=lambda m: None) for _ in range(2)]
    assert runs[0].stable and len(runs[0].frames) == 2 and runs[0].steps_done == 30
    # seeded: same structure, velocities and noise -> the same trajectory
    np.testing.assert_allclose(runs[0].frames[-1].positions, runs[1].frames[-1].positions)
    r, g = rdf.rdf_of_frames(runs[0].frames, s["r_max_A"], s["n_bins"])
    assert np.all(np.isfinite(g)) and g.max() > 1.0


def test_unstable_runs_are_flagged(test_cfg):
    hot = rdf.run_liquid_md(EMT(), _tiny_settings(test_cfg, blowup_temperature_K=10.0), log=lambda m: None)
    assert not hot.stable and hot.frames == [] and "temperature" in hot.message
    r, g = rdf.rdf_of_frames(hot.frames, 4.0, 40)
    assert np.all(np.isnan(g))
    close = rdf.run_liquid_md(EMT(), _tiny_settings(test_cfg, collapse_distance_A=2.6),
                              log=lambda m: None)
    assert not close.stable and len(close.frames) == 2 and "closer than" in close.message


def test_cli_model_and_reference(tmp_path, test_cfg):
    """rdf-md for a random-weight model and for EMT, then rdf-error: seconds, finite numbers."""
    from tsmlip.core.model import build_model, save_model

    model = tmp_path / "teacher" / "model.pt"
    model.parent.mkdir()
    save_model(build_model(Arch(6, 6, 1), test_cfg["network"], seed=0), model)
    cfg_json = json.dumps({"rdf": dict(_tiny_settings(test_cfg), element=None, density_g_cm3=None),  # derived
                           "data": {"source": "emt"}})
    prov = tmp_path / "provenance.json"
    write_record(prov, DatasetProvenance, species=[13])
    run = [sys.executable, "-m", "tsmlip.cli"]
    for who, out in ((["--model", str(model), "--model-id", "teacher/w6-s6-l1/seed0"], "teacher"),
                     (["--reference", "--data-provenance", str(prov)], "reference")):
        subprocess.run(run + ["rdf-md", *who, "--config-json", cfg_json, "--threads", "1",
                              "--out-csv", str(tmp_path / f"{out}.csv"),
                              "--out-json", str(tmp_path / f"{out}.json")],
                       check=True, capture_output=True, text=True, timeout=300, env=CLI_ENV)
    info = json.loads((tmp_path / "teacher.json").read_text())
    assert info["n_atoms"] == 32 and info["n_frames"] == 2 and info["device"].startswith("cpu")
    assert info["element"] == "Al" and info["density_g_cm3"] == pytest.approx(2.30, abs=0.002)
    ref = json.loads((tmp_path / "reference.json").read_text())
    assert 2.4 < ref["first_peak_r_A"] < 3.2 and ref["first_peak_g"] > 1.0
    r, g = rdf.read_curve(tmp_path / "teacher.csv")
    assert r.size == 40 and np.all(np.isfinite(g))

    from tsmlip.rdf import main_error

    out = tmp_path / "rdf_error.json"
    main_error(["--config-json", NO_EXPERIMENT, "--model-id", "teacher/w6-s6-l1/seed0", "--rdf", str(tmp_path / "teacher.csv"),
                "--info", str(tmp_path / "teacher.json"), "--teacher-rdf", str(tmp_path / "teacher.csv"),
                "--teacher-ids", "teacher/w6-s6-l1/seed0",
                "--reference-rdf", str(tmp_path / "reference.csv"), "--out", str(out)])
    err = json.loads(out.read_text())
    assert set(err) >= {"model_id", "error_vs_teacher", "error_vs_reference", "definition", "teacher_ids",
                        "first_peak_r_A", "first_peak_g", "n_frames", "device", "temperature_K",
                        "n_atoms"}
    assert err["error_vs_teacher"] == 0.0
    assert np.isfinite(err["error_vs_reference"]) and err["error_vs_reference"] > 0
    assert err["teacher_ids"] == ["teacher/w6-s6-l1/seed0"] and err["temperature_K"] == 1200.0
    from tsmlip.records import ExperimentComparison, LiquidDensity, RdfError, RdfMd

    assert info.pop("_provenance")["inputs"]["model"]["file"] == "model.pt"
    assert ref.pop("_provenance")["inputs"]["data_provenance"]["file"] == "provenance.json"
    assert err.pop("_provenance")["inputs"]["model"] == json.loads((tmp_path / "teacher.json").read_text())[
        "_provenance"]["inputs"]["model"]  # carried from the liquid's record
    assert list(info) == list(RdfMd.keys()) and list(ref) == list(RdfMd.keys())
    assert list(err) == [k for k in RdfError.keys() if k not in ExperimentComparison.keys() + LiquidDensity.keys()]


def test_error_against_mean_of_teachers(tmp_path):
    r = rdf.r_grid(4.0, 40)
    curves = {"t0": np.ones(40), "t1": np.ones(40) * 3, "m": np.ones(40) * 2}
    for name, g in curves.items():
        rdf.write_curve(tmp_path / f"{name}.csv", r, g)
    write_record(tmp_path / "m.json", RdfMd, n_frames=5, device="cpu", temperature_K=1200.0, n_atoms=32, stable=True)
    out = tmp_path / "e.json"
    rdf.main_error(["--config-json", NO_EXPERIMENT, "--model-id", "student/w6-s6-l1/seed1", "--rdf", str(tmp_path / "m.csv"),
                    "--info", str(tmp_path / "m.json"),
                    "--teacher-rdf", str(tmp_path / "t0.csv"), str(tmp_path / "t1.csv"),
                    "--teacher-ids", "teacher/w6-s6-l1/seed0", "teacher/w6-s6-l1/seed1", "--out", str(out)])
    err = json.loads(out.read_text())
    assert err["error_vs_teacher"] == 0.0  # the mean of 1 and 3
    assert err["error_vs_reference"] is None
    rdf.write_curve(tmp_path / "short.csv", rdf.r_grid(4.0, 20), np.ones(20))
    with pytest.raises(ValueError, match="different r grids"):
        rdf.main_error(["--config-json", NO_EXPERIMENT, "--model-id", "x", "--rdf", str(tmp_path / "short.csv"), "--info",
                        str(tmp_path / "m.json"), "--teacher-rdf", str(tmp_path / "t0.csv"),
                        "--teacher-ids", "t", "--out", str(out)])


# ------------------------------------------------------------------------------------- rule graph
@pytest.mark.skipif(shutil.which("snakemake") is None, reason="snakemake not installed")
@pytest.mark.parametrize("source,stack", [("emt", True), ("extxyz", True), ("emt", False)])
def test_rule_graph(tmp_path, source, stack, test_cfg):
    """rdf rules for every model (rdf.stack: one rdf_md_stack job per architecture and a local copy per model;
    else one rdf_md job per model); the reference rule only when the data come from EMT."""
    from tsmlip.model_ids import all_model_ids

    results = tmp_path / "results"
    for m in all_model_ids(test_cfg):
        p = results / "models" / m.path / "model.pt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x")
    overlay = tmp_path / "overlay.yaml"
    data = "{source: emt}" if source == "emt" else "{source: extxyz, path: data.xyz}"
    overlay.write_text(f"results_dir: {results}\ndata: {data}\nrdf: {{stack: {str(stack).lower()}}}\n")
    (tmp_path / "data.xyz").write_text("")
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(  # data.smk: the reference run reads the dataset's provenance (its element)
        f'configfile: "{ROOT / "config" / "config.yaml"}"\n'
        f'include: "{ROOT / "workflow" / "rules" / "common.smk"}"\n'
        f'include: "{ROOT / "workflow" / "rules" / "data.smk"}"\n'
        f'include: "{ROOT / "workflow" / "rules" / "rdf.smk"}"\n'
        "rule all:\n    input: rdf_targets()\n")
    out = subprocess.run(
        [shutil.which("snakemake"), "-n", "-s", str(snakefile), "-d", str(tmp_path),
         "--configfile", str(ROOT / "config" / "test.yaml"), str(overlay)],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    n = len(all_model_ids(test_cfg))
    counts = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    assert counts["rdf_error"] == 1  # one job scores every model's g(r)
    if stack:
        archs = {m.arch.tag for m in all_model_ids(test_cfg)}
        assert counts["rdf_md_stack"] == len(archs) > 1 and counts["collect_rdf"] == n and "rdf_md" not in counts
    else:
        assert counts["rdf_md"] == n and "rdf_md_stack" not in counts
    assert ("rdf_reference" in counts) == (source == "emt")


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
def test_md_on_cuda(tmp_path, test_cfg):
    from tsmlip.core.model import build_model, save_model

    model = tmp_path / "model.pt"
    save_model(build_model(Arch(6, 6, 1), test_cfg["network"], seed=0), model)
    cfg_json = json.dumps({"rdf": _tiny_settings(test_cfg, device="cuda")})
    assert rdf.main_md(["--model", str(model), "--config-json", cfg_json, "--out-csv",
                        str(tmp_path / "g.csv"), "--out-json", str(tmp_path / "g.json")]) == 0
    info = json.loads((tmp_path / "g.json").read_text())
    assert info["device"].startswith("cuda") and info["n_frames"] == 2


# ---------------------------------------------------------------------------------- the MD engines
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, test_cfg):
    from tsmlip.core.model import build_model, save_model

    path = tmp_path_factory.mktemp("rdf_model") / "model.pt"
    save_model(build_model(Arch(6, 6, 1), test_cfg["network"], seed=0), path)
    return path


def test_liquid_runs_on_both_engines_alike(test_cfg, tiny_model):
    """The liquid through tsmlip.core.md's engines: ASE's Langevin and the torch engine's copy of it draw the same
    noise from the same seed, so in float32 the two g(r) agree far below the seed noise floor."""
    s = _tiny_settings(test_cfg, collapse_distance_A=0.0)
    runs = {e: rdf.run_liquid_md(None, s, log=lambda m: None, model=tiny_model, engine=e, pair_finder=pf)
            for e, pf in (("ase", None), ("torch", "vesin"))}
    assert {e: r.engine for e, r in runs.items()} == {"ase": "ase", "torch": "torch"}
    a, t = runs["ase"], runs["torch"]
    assert a.steps_done == t.steps_done == 30 and len(a.frames) == len(t.frames) == 2
    assert abs(a.mean_temperature_K - t.mean_temperature_K) < 1.0
    assert a.msd_A2.keys() == t.msd_A2.keys()
    r, ga = rdf.rdf_of_frames(a.frames, s["r_max_A"], s["n_bins"])
    _, gt = rdf.rdf_of_frames(t.frames, s["r_max_A"], s["n_bins"])
    assert rdf.rdf_error(r, ga, gt) < 0.02 * rdf.rdf_error(r, ga, np.zeros_like(ga))


def test_torch_engine_liquid_cli_records_engine(tmp_path, test_cfg, tiny_model):
    cfg = dict(_tiny_settings(test_cfg), engine="torch", element=None, density_g_cm3=None)
    assert rdf.main_md(["--model", str(tiny_model), "--config-json", json.dumps({"rdf": cfg}), "--out-csv",
                        str(tmp_path / "g.csv"), "--out-json", str(tmp_path / "g.json")]) == 0
    info = json.loads((tmp_path / "g.json").read_text())
    assert info["engine"] == "torch" and info["pair_finder"] == cfg["pair_finder"]["cpu"]
    assert info["hippynn_kernels"] == "pytorch" and info["n_frames"] == 2
    assert rdf.main_md(["--model", str(tiny_model), "--config-json", json.dumps({"rdf": dict(cfg, engine="ase")}),
                        "--out-csv", str(tmp_path / "a.csv"), "--out-json", str(tmp_path / "a.json")]) == 0
    assert json.loads((tmp_path / "a.json").read_text())["engine"] == "ase"


# --- rdf.experiment: the comparison with the measured liquid-Al g(r) (docs/foundation.md) -----------------
def test_experiment_error_on_a_synthetic_curve_is_known():
    from tsmlip.rdf import compare_with_experiment, r_grid

    r_e = np.arange(0, 10.0001, 0.05)
    g_e = np.where(r_e > 2.0, 1.0 + 1.5 * np.exp(-((r_e - 2.8) / 0.6) ** 2), 0.0)
    curves = {943.0: (r_e, g_e + 5.0), 1198.0: (r_e, g_e), 1323.0: (r_e, g_e - 5.0)}
    r = r_grid(6.0, 60)  # the model's grid: bin centres 0.05, 0.15, ..., 5.95
    g = np.interp(r, r_e, g_e) + 0.1  # off by 0.1 everywhere: error 0.1 x 6 A
    out = compare_with_experiment(r, g, 1200.0, curves=curves, max_gap_K=150)
    assert out.experiment_temperature_K == 1198.0  # the nearest temperature
    assert out.error_vs_experiment == pytest.approx(0.6, abs=1e-9)
    assert out.first_peak_r_shift_vs_experiment_A == pytest.approx(0.0, abs=0.02)
    assert out.first_peak_g_diff_vs_experiment == pytest.approx(0.1, abs=0.02)
    far = compare_with_experiment(r, g, 2000.0, curves=curves, max_gap_K=150)
    assert far.error_vs_experiment is None and "more than" in far.experiment_note
    assert compare_with_experiment(r, g, 1200.0, element="Cu").error_vs_experiment is None


def test_packaged_experimental_curves_are_found_through_the_package():
    from importlib import resources

    from tsmlip.rdf import experimental_curves, first_peak, read_experiment

    curves = experimental_curves("Al")
    assert sorted(curves) == [943.0, 1023.0, 1123.0, 1198.0, 1323.0]
    for t, (r0, g0) in {943.0: (2.80, 2.83), 1198.0: (2.75, 2.51), 1323.0: (2.75, 2.22)}.items():
        r, g = read_experiment(curves[t])  # the data's README: first peaks
        assert len(r) == 201 and r[1] - r[0] == pytest.approx(0.05)
        assert r[np.argmax(g)] == pytest.approx(r0, abs=1e-6) and g.max() == pytest.approx(g0, abs=0.01)
        pr, pg = first_peak(r, g, 0.2)  # the parabola through the top bins, as for the models
        assert pr == pytest.approx(r0, abs=0.05) and pg == pytest.approx(g0, abs=0.05)
    readme = resources.files("tsmlip.reference_data").joinpath("liquid_al_gr_experiment", "README.md").read_text()
    assert "BSD-3-Clause" in readme and "lanl/hippynn" in readme


def test_rdf_md_with_the_teacher_calculator_equals_the_reference_run(tmp_path, test_cfg):
    """rdf-md --calculator (foundation.liquid) runs the same MD as --reference: with the emt shortcut, the
    same g(r) to the bit."""
    cfg_json = json.dumps({"rdf": dict(_tiny_settings(test_cfg), element=None, density_g_cm3=None, device="cpu"),
                           "data": {"source": "emt"}, "foundation": {"calculator": "emt"}})
    prov = tmp_path / "provenance.json"
    write_record(prov, DatasetProvenance, species=[13])
    run = [sys.executable, "-m", "tsmlip.cli", "rdf-md", "--config-json", cfg_json, "--data-provenance", str(prov)]
    for who, out in ((["--reference"], "reference"), (["--calculator"], "calculator")):
        subprocess.run(run + who + ["--out-csv", str(tmp_path / f"{out}.csv"), "--out-json",
                                    str(tmp_path / f"{out}.json")], check=True, capture_output=True, text=True,
                       timeout=300, env=CLI_ENV)
    np.testing.assert_array_equal(rdf.read_curve(tmp_path / "reference.csv")[1],
                                  rdf.read_curve(tmp_path / "calculator.csv")[1])
    info = json.loads((tmp_path / "calculator.json").read_text())
    assert info["model_id"] == "calculator:emt" and info["calculator"]["package"] == "ase"
