"""The stacked liquid (tsmlip.rdf.stacked, ``tsmlip rdf-md-stack``): its forces are the ASE calculator's for every
model of a stack, its integrator is ASE's Langevin, a stacked liquid follows the ASE liquid of the same model,
writes the records ``rdf-md`` writes, and a model that blows up leaves the stack without stopping the others."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.calculators.emt import EMT

from tsmlip import provenance, rdf
from tsmlip.config import load_config
from tsmlip.ids import Arch
from tsmlip.records import RdfMd

ROOT = Path(__file__).resolve().parents[1]
ARCH = Arch(6, 6, 1)

warnings.filterwarnings("ignore", message="Provided distances are underneath sensitivity range")


@pytest.fixture(scope="module")
def test_cfg():
    return load_config(ROOT / "config" / "config.yaml", ROOT / "config" / "test.yaml")


@pytest.fixture(scope="module")
def models(tmp_path_factory, test_cfg):
    """Three random-weight models of one architecture (different weights), saved as model.pt under their ids."""
    from tsmlip.core.model import build_model, save_model

    root = tmp_path_factory.mktemp("stack_models")
    out = {}
    for seed, kind in zip((0, 1, 2), ("student", "control", "control_fw")):
        mid = f"{kind}/{ARCH.tag}/seed{seed}"
        path = root / mid / "model.pt"
        path.parent.mkdir(parents=True)
        save_model(build_model(ARCH, test_cfg["network"], seed=seed), path)
        out[mid] = path
    return out


def _tiny_settings(test_cfg, **kw):
    """test.yaml's rdf section made smaller still (32 atoms, 30 steps; as tests/test_rdf.py), resolved for Al."""
    s = dict(test_cfg["rdf"])
    s.update(supercell=[2, 2, 2], r_max_A=4.0, n_bins=40, melt_steps=10, equilibration_steps=10,
             production_steps=10, sample_interval=5, progress_every=10)
    s.update(kw)
    return rdf.resolve_liquid(s, [13])


def _snapshot(test_cfg):
    """A hot liquid-like configuration of the test liquid (108 atoms), positions unwrapped (outside the cell)."""
    from tsmlip.core.md.system import liquid_system

    s = rdf.resolve_liquid(dict(test_cfg["rdf"]), [13])
    atoms = liquid_system(s, 1200.0, np.random.default_rng(5))
    atoms.rattle(stdev=0.25, seed=2)
    atoms.positions += np.asarray(atoms.cell).sum(0) * np.random.default_rng(3).integers(-2, 3, (len(atoms), 1))
    return atoms


def test_forces_equal_the_calculator_for_every_model_of_a_stack(test_cfg, models):
    from tsmlip.core.calculator import load_calculator
    from tsmlip.core.md.stacked_forces import StackedForces, load_stack

    atoms = _snapshot(test_cfg)
    paths = list(models.values())
    model, payload = load_stack(paths)
    forces = StackedForces(model, payload["species"], atoms.get_atomic_numbers(), atoms.cell, skin=1.0)
    R = torch.as_tensor(np.stack([atoms.get_positions()] * len(paths)))
    F, E = forces(R)
    assert F.dtype == torch.float64 and F.shape == (3, len(atoms), 3)
    scale = []
    for k, path in enumerate(paths):
        a = atoms.copy()
        a.calc = load_calculator(path, device="cpu", skin=1.0)
        f_ref, e_ref = a.get_forces(), a.get_potential_energy()
        scale.append(np.abs(f_ref).max())
        assert np.abs(F[k].numpy() - f_ref).max() < 1e-5 * max(1.0, scale[-1]), k
        assert abs(float(E[k]) - e_ref) < 2e-6 * max(1.0, abs(e_ref)), k
    assert min(scale) > 1e-2  # the models exert real forces, and they differ
    assert not torch.allclose(F[0], F[1], atol=1e-3)


def test_pair_geometry_is_ase_neighbour_list(test_cfg):
    """The Verlet list (cut-off + skin) and the per-step geometry within the cut-off: exactly ASE's pairs."""
    from ase.neighborlist import neighbor_list

    from tsmlip.core.md.stacked_forces import StackedPairs

    atoms = _snapshot(test_cfg)
    pairs = StackedPairs(atoms.cell, 6.0, 1.0, len(atoms))
    R = torch.as_tensor(np.stack([atoms.get_positions()] * 2))
    pairs.update(R)
    first, second, model_of_pair, d, u = pairs.geometry(R)
    i, j, D = neighbor_list("ijD", atoms, 6.0)
    assert len(first) == 2 * len(i)
    n = len(atoms)
    sel = model_of_pair == 1
    mine = np.column_stack([first[sel].numpy() - n, second[sel].numpy() - n, d[sel].numpy(), u[sel].numpy()])
    ref = np.column_stack([i, j, np.linalg.norm(D, axis=1), D / np.linalg.norm(D, axis=1)[:, None]])
    mine, ref = (x[np.lexsort((np.round(x[:, 2], 3), x[:, 1], x[:, 0]))] for x in (mine, ref))
    assert np.array_equal(mine[:, :2], ref[:, :2])
    assert np.abs(mine[:, 2:] - ref[:, 2:]).max() < 1e-5
    # a small move keeps the list; a move beyond skin / 2 rebuilds that system's only
    builds = pairs.rebuilds
    R2 = R.clone()
    R2[0, 0, 0] += 0.4
    pairs.update(R2)
    assert pairs.rebuilds == builds
    R2[1, 3, 1] += 0.6
    pairs.update(R2)
    assert pairs.rebuilds == builds + 1


@pytest.mark.parametrize("friction", [0.0, 0.01])
def test_integrator_steps_equal_ase_langevin(test_cfg, friction):
    """Five steps of StackedLangevin (two systems) on EMT forces equal ASE's Langevin with the FixCom constraint
    (friction 0: velocity Verlet) from the same generator, to rounding."""
    from ase import units
    from ase.md.langevin import Langevin

    from tsmlip.core.md.system import liquid_system
    from tsmlip.rdf.stacked import StackedLangevin

    s = _tiny_settings(test_cfg)
    starts, ref, rngs = [], [], []
    for seed in (11, 12):
        atoms = liquid_system(s, 1500.0, np.random.default_rng(seed))
        starts.append(atoms.copy())
        a = atoms.copy()
        a.calc = EMT()
        dyn = Langevin(a, 2.0 * units.fs, temperature_K=1500.0, friction=friction / units.fs, fixcm=False,
                       rng=np.random.default_rng(seed + 100))
        dyn.run(5)
        ref.append((a.get_positions(), a.get_velocities()))
        rngs.append(np.random.default_rng(seed + 100))

    def emt_forces(R):
        out = []
        for k, pos in enumerate(R.numpy()):
            a = starts[k].copy()
            a.set_constraint()
            a.positions = pos
            a.calc = EMT()
            out.append(a.get_forces())
        return torch.as_tensor(np.stack(out)), None

    lv = StackedLangevin(starts[0].get_masses(), 2.0, friction, 1500.0, rngs)
    R = torch.as_tensor(np.stack([a.get_positions() for a in starts]))
    V = torch.as_tensor(np.stack([a.get_velocities() for a in starts]))
    F, _ = emt_forces(R)
    for _ in range(5):
        R, V, F, _ = lv.step(R, V, F, emt_forces)
    for k, (pos, vel) in enumerate(ref):
        assert np.abs(R[k].numpy() - pos).max() < 1e-11
        assert np.abs(V[k].numpy() - vel).max() < 1e-12 * max(1.0, np.abs(vel).max() / 1e-2)
    assert np.abs(R[0].numpy() - starts[0].get_positions()).max() > 1e-3  # it moved


def test_stacked_liquid_follows_the_ase_liquid(test_cfg, models):
    """Each model of a stack of three runs the liquid of ``rdf-md`` (ASE Langevin + calculator) with the same
    noise: its frames stay on the ASE trajectory to float32 rounding over the short run."""
    from tsmlip.rdf.stacked import run_liquid_stack

    s = _tiny_settings(test_cfg, collapse_distance_A=0.0)
    paths = list(models.values())
    runs = run_liquid_stack(paths, s, log=lambda m: None)
    assert [r.engine for r in runs] == ["stack"] * 3
    for k, path in enumerate(paths):
        ref = rdf.run_liquid_md(None, s, log=lambda m: None, model=path, engine="ase")
        mine = runs[k]
        assert mine.steps_done == ref.steps_done == 30 and len(mine.frames) == len(ref.frames) == 2
        assert mine.stable == ref.stable and mine.msd_A2.keys() == ref.msd_A2.keys()
        for fa, fb in zip(mine.frames, ref.frames):
            assert np.abs(fa.positions - fb.positions).max() < 1e-4
        assert mine.mean_temperature_K == pytest.approx(ref.mean_temperature_K, rel=1e-5)
    # the three models' liquids differ (no model sees another's system)
    assert np.abs(runs[0].frames[-1].positions - runs[1].frames[-1].positions).max() > 1e-3


def _scaled_model(path, out, factor):
    """A copy of a model whose energy head is ``factor`` times stronger (a model that blows a liquid up)."""
    payload = torch.load(path, weights_only=True)
    payload["henergy_state"] = {k: (v * factor if k == "layers.1.weight" else v)
                                for k, v in payload["henergy_state"].items()}
    payload["network_state"] = dict(payload["network_state"])
    torch.save(payload, out)
    return out


def test_rdf_md_stack_writes_the_records_of_rdf_md(tmp_path, test_cfg, models):
    """The command on the tiny config (108 atoms): every model's rdf.csv and rdf_md.json with RdfMd's keys, readable
    by rdf-error; a model that blows up is marked and leaves the stack, the others run to the end."""
    from tsmlip.rdf.stacked import main

    ids = list(models)
    bad = tmp_path / "bad" / "model.pt"
    bad.parent.mkdir()
    _scaled_model(models[ids[1]], bad, 1e4)
    cfg = {"rdf": dict(test_cfg["rdf"], blowup_temperature_K=20000.0, collapse_distance_A=0.0)}
    paths = [models[ids[0]], bad, models[ids[2]]]
    assert main(["--config-json", json.dumps(cfg), "--models", *map(str, paths), "--model-ids", *ids,
                 "--out-root", str(tmp_path / "out")]) == 0
    total = sum(cfg["rdf"][k] for k in ("melt_steps", "equilibration_steps", "production_steps"))
    infos = {}
    for mid in ids:
        info = json.loads((tmp_path / "out" / mid / "rdf_md.json").read_text())
        rec = info.pop("_provenance")  # each liquid's record names its own model file
        assert rec["step"] == "rdf-md-stack" and rec["inputs"]["model"]["content"] == \
            provenance.content_fingerprint(paths[ids.index(mid)])
        assert set(info) == set(RdfMd.keys()) and info["model_id"] == mid
        assert info["engine"] == "stack" and info["n_atoms"] == 108 and "stack of 3" in info["device"]
        r, g = rdf.read_curve(tmp_path / "out" / mid / "rdf.csv")
        assert len(r) == cfg["rdf"]["n_bins"]
        infos[mid] = info
    blown = infos[ids[1]]
    assert not blown["stable"] and blown["steps_done"] < total and "blowup_temperature_K" in blown["message"]
    for mid in (ids[0], ids[2]):
        assert infos[mid]["steps_done"] == total and infos[mid]["n_frames"] == 8
        assert "blowup" not in infos[mid]["message"] and infos[mid]["stable"]
    # rdf-error reads them as it reads rdf-md's
    err = tmp_path / "err.json"
    assert rdf.main_error(["--config-json", json.dumps({"rdf": {"experiment": {"enabled": False},
                                                                "peak_fit_halfwidth_A": 0.2}}),
                           "--model-id", ids[0], "--rdf", str(tmp_path / "out" / ids[0] / "rdf.csv"),
                           "--info", str(tmp_path / "out" / ids[0] / "rdf_md.json"),
                           "--teacher-rdf", str(tmp_path / "out" / ids[2] / "rdf.csv"),
                           "--teacher-ids", ids[2], "--out", str(err)]) == 0
    assert json.loads(err.read_text())["error_vs_teacher"] > 0


def test_rdf_md_stack_refuses_mixed_architectures(tmp_path, test_cfg, models, capsys):
    from tsmlip.core.model import build_model, save_model
    from tsmlip.rdf.stacked import main

    other = tmp_path / "student" / "w8-s4-l1" / "seed0" / "model.pt"
    other.parent.mkdir(parents=True)
    save_model(build_model(Arch(8, 4, 1), test_cfg["network"], seed=0), other)
    first = next(iter(models))
    assert main(["--config-json", json.dumps({"rdf": test_cfg["rdf"]}), "--models", str(models[first]), str(other),
                 "--model-ids", first, "student/w8-s4-l1/seed0", "--out-root", str(tmp_path / "out")]) == 2
    assert "one architecture" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_stacked_gr_agrees_with_the_ase_liquid_within_the_seed_noise(tmp_path):
    """The default liquid (config/config.yaml rdf:, 256 atoms, 1750 steps) of one trained model: the g(r) of the
    stacked engine against the ASE engine's with the same seed differs by less than the ASE liquid against itself
    with rdf.noise_seed (the noise floor of every RDF error). The model: the tiny config's teacher trained for 200
    epochs (``tsmlip train-stack`` on the tiny EMT data; about 80 s), which holds a stable, melted liquid (the 3
    epochs of the tiny config leave one that collapses)."""
    from tsmlip.rdf.stacked import run_liquid_stack

    cfg = load_config(ROOT / "config" / "config.yaml", ROOT / "config" / "test.yaml")
    cfg["training"].update(max_epochs=200, min_epochs=200)
    model = _train_tiny_teacher(tmp_path, cfg)
    base = load_config(ROOT / "config" / "config.yaml")
    s = rdf.resolve_liquid(dict(base["rdf"]), [13])
    quiet = lambda m: None  # noqa: E731
    stack = run_liquid_stack([model], s, log=quiet)[0]
    ase_run = rdf.run_liquid_md(None, s, log=quiet, model=model, engine="ase")
    noise = rdf.run_liquid_md(None, dict(s, seed=s["noise_seed"]), log=quiet, model=model, engine="ase")
    curves = {k: rdf.rdf_of_frames(run.frames, s["r_max_A"], s["n_bins"])
              for k, run in (("stack", stack), ("ase", ase_run), ("noise", noise))}
    r = curves["ase"][0]
    err = rdf.rdf_error(r, curves["stack"][1], curves["ase"][1])
    floor = rdf.rdf_error(r, curves["noise"][1], curves["ase"][1])
    print(f"stack vs ase {err:.4f} A, noise floor {floor:.4f} A, stack {stack.wall_time_s:.1f}s, "
          f"ase {ase_run.wall_time_s:.1f}s")
    assert stack.stable and ase_run.stable and len(stack.frames) == len(ase_run.frames)
    assert err < floor


def _train_tiny_teacher(tmp_path, cfg) -> Path:
    """The tiny config's teacher, trained by ``tsmlip train-stack`` on the tiny EMT data."""
    from tsmlip.data.dataset import load_dataset, pad_configurations, save_dataset
    from tsmlip.data.emt import generate
    from tsmlip.data.split import make_split
    from tsmlip.train.fast import main as train_stack

    configs, _ = generate(cfg["data"]["emt"], progress=False)
    save_dataset(pad_configurations(configs), tmp_path / "dataset.npz", {"source": "emt"})
    arrays = load_dataset(tmp_path / "dataset.npz")
    sp = cfg["split"]
    np.savez(tmp_path / "split.npz", **make_split(len(arrays["E"]), sp["valid_fraction"], sp["test_fraction"],
                                                  sp["seed"]))
    t = cfg["teacher"]
    mid = f"teacher/w{t['width']}-s{t['n_sensitivities']}-l{t['n_atom_layers']}/seed{t['seeds'][0]}"
    assert train_stack(["--config-json", json.dumps({k: cfg[k] for k in ("network", "training", "born_again")}),
                        "--model-ids", mid, "--dataset", str(tmp_path / "dataset.npz"),
                        "--split", str(tmp_path / "split.npz"), "--out-root", str(tmp_path / "models"),
                        "--checkpoint-root", str(tmp_path / "ckpt")]) == 0
    return tmp_path / "models" / mid / "model.pt"


def test_committee_is_the_mean_of_its_members_and_its_deviation_their_spread(test_cfg, models):
    """The committee calculator's energy and forces are the means of its members' calculators (float32 rounding);
    its per-atom force deviation is DeePMD's sqrt(<|F - <F>|^2>) of the members' forces, computed here by hand; a
    triclinic cell and a second call after the atoms moved give the same agreement."""
    from tsmlip.core.calculator import load_calculator
    from tsmlip.core.committee import load_committee

    paths = list(models.values())
    atoms = _snapshot(test_cfg)
    cell = np.asarray(atoms.cell)
    cell[1] += 0.15 * cell[0]  # triclinic
    atoms.set_cell(cell, scale_atoms=True)
    atoms.calc = load_committee(paths, skin=1.0)
    for move in (0.0, 0.05):
        atoms.positions += move
        E, F = atoms.get_potential_energy(), atoms.get_forces()
        members = []
        for path in paths:
            a = atoms.copy()
            a.calc = load_calculator(path, device="cpu", skin=1.0)
            members.append((a.get_potential_energy(), a.get_forces()))
        f_m = np.stack([f for _, f in members])
        scale = max(1.0, float(np.abs(f_m).max()))
        assert abs(E - np.mean([e for e, _ in members])) < 2e-6 * max(1.0, abs(E))
        assert np.abs(F - f_m.mean(0)).max() < 1e-5 * scale
        by_hand = np.sqrt(np.mean([np.sum((f - f_m.mean(0)) ** 2, axis=1) for f in f_m], axis=0))
        res = atoms.calc.results
        assert np.abs(res["force_deviation"] - by_hand).max() < 1e-5 * scale
        assert res["max_force_deviation"] == pytest.approx(by_hand.max(), abs=1e-5 * scale)
        assert res["mean_force_deviation"] == pytest.approx(by_hand.mean(), abs=1e-5 * scale)
        assert res["max_force_deviation"] > 1e-3  # members that differ


def test_committee_refuses_one_model_and_mixed_architectures(test_cfg, models, tmp_path):
    from tsmlip.core.committee import load_committee
    from tsmlip.core.md.stacked_forces import StackError

    paths = list(models.values())
    with pytest.raises(StackError, match="two models or more"):
        load_committee(paths[:1])
