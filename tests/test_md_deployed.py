"""The deployed model as MD engines of the workflow (tsmlip.core.md.deployed): ``lammps`` (pair_style tsmlip, built by
`make lammps`) and ``torchsim`` (TorchSim, `make deploy`) follow ASE's velocity-Verlet trajectory, ``tsmlip
md-timing`` writes a valid record with each on the tiny config, a missing install fails in one line naming the
command, and ``md.engines: [ase, torch, lammps, torchsim]`` plans and runs through snakemake for one model."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tsmlip.ids import Arch, ModelId
from tsmlip.md import timing
from tsmlip.core.md.deployed import missing
from tsmlip.core.md.engines import Langevin, make_engine
from tsmlip.core.md.system import crystal_system
from tsmlip.records import MdTiming

from conftest import BASE_CONFIG, TEST_CONFIG, run_snakemake

needs = {e: pytest.mark.skipif(missing(e) is not None, reason=str(missing(e))) for e in ("lammps", "torchsim")}
DEPLOYED = [pytest.param(e, marks=needs[e]) for e in ("lammps", "torchsim")]


@pytest.fixture(scope="module")
def system(tiny_cfg):
    return crystal_system(tiny_cfg["md"], [13])


@pytest.fixture(scope="module")
def model_path(tmp_path_factory, tiny_cfg):
    from tsmlip.core.model import build_model, save_model

    path = tmp_path_factory.mktemp("deployed_model") / "model.pt"
    save_model(build_model(Arch(8, 6, 1), tiny_cfg["network"], seed=0), path)
    return path


@pytest.mark.parametrize("engine", DEPLOYED)
def test_deployed_engine_follows_ase(model_path, system, engine):
    """Same start, 8 NVE steps: positions, velocities, forces and energies of ASE's velocity Verlet to float32
    round-off; positions come back unwrapped in ASE's frame."""
    atoms = system.atoms(108)
    atoms.positions += 0.5 * atoms.cell.array.sum(0) - atoms.positions.mean(0) + 3.9  # atoms near the faces
    runs = {}
    for name in ("ase", engine):
        eng = make_engine(name, model_path, atoms, "cpu", 1.0, skin_A=1.0)
        e0 = eng.energies()
        eng.run(8)
        runs[name] = (e0, eng.energies(), eng.positions(), eng.velocities(), eng.forces(), eng.nsteps)
        if hasattr(eng, "close"):
            eng.close()
    (a0, a1, ax, av, af, an), (b0, b1, bx, bv, bf, bn) = runs["ase"], runs[engine]
    assert np.abs(ax - atoms.positions).max() > 1e-3 and an == bn == 8
    np.testing.assert_allclose(bx, ax, atol=2e-4)
    np.testing.assert_allclose(bv, av, atol=2e-5)
    np.testing.assert_allclose(bf, af, atol=2e-3)
    np.testing.assert_allclose(b0, a0, atol=1e-3)
    np.testing.assert_allclose(b1, a1, atol=1e-3)


@needs["lammps"]
def test_lammps_langevin_heats_and_changes_target(model_path, system):
    atoms = system.atoms(108)
    eng = make_engine("lammps", model_path, atoms, "cpu", 2.0, thermostat=Langevin(1500.0, 0.05, np.random.default_rng(1)))
    temps = []
    eng.run(30, lambda: temps.append(eng.temperature()))
    hot = np.mean(temps[-10:])
    eng.set_temperature(50.0)
    eng.run(30)
    assert len(temps) == 30 and eng.nsteps == 60 and hot > 2 * system.temperature_K
    assert eng.temperature() < hot / 2
    assert np.isfinite(eng.snapshot().positions).all()
    eng.close()


@pytest.mark.parametrize("engine", DEPLOYED)
def test_md_timing_cli_deployed(tmp_path, model_path, tiny_cfg, engine):
    out = tmp_path / f"md_timing_{engine}.json"
    assert timing.main(["--model", str(model_path), "--engine", engine, "--out", str(out), "--model-id",
                        "student/w8-s6-l1/seed0", "--config-json", json.dumps({"md": tiny_cfg["md"]})]) == 0
    rec = json.loads(out.read_text())
    assert rec.pop("_provenance")["step"] == "md-timing"
    MdTiming(**rec)  # every field of the record, nothing else
    assert list(rec) == [k for k in MdTiming.keys() if not k.startswith("pair_re")]
    tc = tiny_cfg["md"]["timing"]
    assert rec["engine"] == engine and rec["n_atoms"] == tc["n_atoms"] and rec["n_steps"] == tc["steps"]
    assert len(rec["us_per_atom_step_all"]) == rec["repeats_done"] == tc["repeats"]
    assert rec["us_per_atom_step"] == pytest.approx(float(np.median(rec["us_per_atom_step_all"])))
    assert rec["ns_per_day"] == pytest.approx(rec["steps_per_s"] * tc["timestep_fs"] * 1e-6 * 86400)
    assert rec["steps_per_s"] == pytest.approx(1e6 / (rec["us_per_atom_step"] * rec["n_atoms"]))
    assert rec["stable"] is True and abs(rec["energy_drift_eV_per_atom_per_ps"]) < 0.1
    assert len(rec["energy_trace"]) == 2 + tc["repeats"] and all(math.isfinite(e) for _, e in rec["energy_trace"])
    assert rec["hippynn_kernels"] is None and rec["engine_version"].startswith({"lammps": "LAMMPS",
                                                                              "torchsim": "torch-sim"}[engine])
    assert rec["pair_finder"] == {"lammps": "lammps neighbor bin", "torchsim": "vesin-torch (every call)"}[engine]
    assert rec["hardware"]["cpu"]["torch_threads"] == tc["torch_threads"]


def test_missing_install_fails_in_one_line(tmp_path, model_path, tiny_cfg, monkeypatch, capsys):
    monkeypatch.setenv("TSMLIP_LAMMPS_PLUGIN", str(tmp_path / "nowhere.so"))
    monkeypatch.setitem(__import__("sys").modules, "torch_sim", None)  # import torch_sim -> ImportError
    for engine, hint in (("lammps", "make lammps"), ("torchsim", "make deploy")):
        out = tmp_path / f"md_timing_{engine}.json"
        assert timing.main(["--model", str(model_path), "--engine", engine, "--out", str(out),
                            "--config-json", json.dumps({"md": tiny_cfg["md"]})]) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
        assert len(err) == 1 and hint in err[0] and engine in err[0], err
        assert not out.exists()


@needs["lammps"]
@needs["torchsim"]
def test_workflow_times_four_engines(tmp_path, tiny_cfg):
    """md.engines with all four: planned for every measured model; one md_timing job per engine times every
    measured model (their model.pt put in place, the other rules held back)."""
    from tsmlip.config import load_config
    from tsmlip.core.model import build_model, save_model

    results = tmp_path / "results"
    overlay = tmp_path / "engines.yaml"
    overlay.write_text(f"results_dir: {results}\nmd: {{engines: [ase, torch, lammps, torchsim]}}\n")
    plan = run_snakemake("-n", "--configfile", str(TEST_CONFIG), str(overlay))
    assert plan.returncode == 0, plan.stdout[-3000:] + plan.stderr[-3000:]
    cfg = load_config(BASE_CONFIG, TEST_CONFIG)
    for engine in ("ase", "torch", "lammps", "torchsim"):
        assert f"md_timing_{engine}.json" in plan.stdout and f"engine={engine}" in plan.stdout
    timed = {ModelId.parse(path.split("/models/", 1)[1].rsplit("/md_timing_", 1)[0])
             for line in plan.stdout.splitlines() if "output:" in line
             for path in line.split("output:", 1)[1].split(",")
             if "/md_timing_lammps.json" in path and "/models/" in path}  # not the classical
    for model_id in timed:  # every timed model's file in place: one job per engine times them all, interleaved
        model_dir = results / "models" / str(model_id)
        model_dir.mkdir(parents=True)
        save_model(build_model(model_id.arch, cfg["network"], seed=1), model_dir / "model.pt", model_id=str(model_id))
    model_id = min(timed, key=lambda m: (m.arch.width, m.arch.n_sensitivities, m.arch.n_atom_layers))  # quickest
    model_dir = results / "models" / str(model_id)
    targets = [str(model_dir / f"md_timing_{e}.json") for e in ("ase", "torch", "lammps", "torchsim")]
    run = run_snakemake(*targets, "--cores", "1", "--allowed-rules", "md_timing", "--configfile", str(TEST_CONFIG),
                        str(overlay))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert run.stdout.count("rule md_timing:") + run.stderr.count("rule md_timing:") == 4  # one job per engine
    for engine, target in zip(("ase", "torch", "lammps", "torchsim"), targets):
        rec = json.loads(open(target).read())
        assert rec["engine"] == engine and rec["model_id"] == str(model_id) and rec["us_per_atom_step"] > 0
        assert rec["stable"] is True and len(rec["timed_with"]) == len(timed) - 1


@needs["lammps"]
def test_rdf_liquid_in_lammps_within_the_seed_noise_floor(tmp_path, tiny_cfg, model_path):
    """rdf.engine: lammps (fix langevin: other random numbers than ASE's): its g(r) differs from the ase engine's
    (same seed) by no more than twice what another seed changes on the ase engine; the CLI records the engine."""
    from tsmlip import rdf

    base = dict(tiny_cfg["rdf"], collapse_distance_A=0.0)
    runs = {}
    for engine, seed in (("ase", 1), ("ase", 2), ("lammps", 1)):
        s = rdf.resolve_liquid(dict(base, seed=seed), [13])
        runs[(engine, seed)] = rdf.run_liquid_md(None, s, log=lambda m: None, model=model_path, engine=engine)
    assert runs[("lammps", 1)].engine == "lammps" and runs[("lammps", 1)].stable
    g = {k: rdf.rdf_of_frames(r.frames, s["r_max_A"], s["n_bins"]) for k, r in runs.items()}
    r = g[("ase", 1)][0]
    assert all(len(run.frames) == len(runs[("ase", 1)].frames) > 1 for run in runs.values())
    floor = rdf.rdf_error(r, g[("ase", 1)][1], g[("ase", 2)][1])
    assert floor > 0
    for ref in (("ase", 1), ("ase", 2)):
        assert rdf.rdf_error(r, g[ref][1], g[("lammps", 1)][1]) < 2 * floor, ref
    t_ase = np.mean([runs[("ase", k)].mean_temperature_K for k in (1, 2)])
    assert abs(runs[("lammps", 1)].mean_temperature_K - t_ase) < 0.2 * t_ase

    cfg = dict(base, engine="lammps", production_steps=10, melt_steps=5, equilibration_steps=5)
    assert rdf.main_md(["--model", str(model_path), "--config-json", json.dumps({"rdf": cfg}), "--out-csv",
                        str(tmp_path / "g.csv"), "--out-json", str(tmp_path / "g.json")]) == 0
    info = json.loads((tmp_path / "g.json").read_text())
    assert info["engine"] == "lammps" and info["pair_finder"] == "lammps neighbor bin"
    assert info["hippynn_kernels"] is None and info["n_frames"] == 2


def test_plugin_is_looked_for_in_this_repository(monkeypatch):
    """The lammps engine finds `make lammps`'s build in the repository the package lives in (a wrong path makes
    every LAMMPS test above skip instead of run)."""
    from conftest import ROOT
    from tsmlip.core.md.deployed import PLUGIN_ENV, plugin_path

    monkeypatch.delenv(PLUGIN_ENV, raising=False)
    assert plugin_path() == ROOT / "lammps" / "build" / "tsmlipplugin.so"
    monkeypatch.setenv(PLUGIN_ENV, "/elsewhere/plugin.so")
    assert plugin_path() == Path("/elsewhere/plugin.so")
