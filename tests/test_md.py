"""MD cost: the test system, the pair finders, the two MD engines, timing and the max-atoms probe.

CPU tests use the tiny config (config/test.yaml) and a random-weight model; CUDA tests run only where
torch sees a GPU.
"""
import json
import math

import numpy as np
import pytest
import torch

from tsmlip.config import deep_merge
from tsmlip.ids import Arch
from tsmlip.md import probe, timing
from tsmlip.core.md.common import FAKE_OOM_ENV, fake_oom_atoms
from tsmlip.core.md.engines import Langevin, kernel_implementation, make_engine, set_kernels
from tsmlip.core.md.hardware import hardware_info
from tsmlip.core.md.pairs import cell_list_pairs, vesin_pairs
from tsmlip.core.elements import ElementError
from tsmlip.core.md.system import crystal_supercell, crystal_system, fcc_supercell, resolve_crystal, supercell_repeats
from tsmlip.records import MaxAtoms, MdTiming

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

TIMING_KEYS = {"model_id", "engine", "device", "device_name", "n_atoms", "n_steps", "warmup_steps", "repeats",
               "timestep_fs", "temperature_K", "us_per_atom_step", "us_per_atom_step_all", "steps_per_s",
               "ns_per_day", "energy_drift_eV_per_atom_per_ps", "stable", "hardware"}
PROBE_KEYS = {"model_id", "device", "device_name", "max_atoms", "memory_budget_bytes", "memory_per_atom_bytes",
              "memory_per_atom_slope_bytes", "sizes", "hardware"}
SIZE_KEYS = {"n_atoms", "ok", "peak_bytes", "nvml_used_bytes"}


@pytest.fixture(scope="module")
def md_cfg(tiny_cfg):
    """The tiny md section (element, crystal and lattice constant null: the model's)."""
    return tiny_cfg["md"]


@pytest.fixture(scope="module")
def system(md_cfg):
    """The tiny md section's crystal for an aluminum model."""
    return crystal_system(md_cfg, [13])


@pytest.fixture(scope="module")
def model_path(tmp_path_factory, tiny_cfg):
    from tsmlip.core.model import build_model, save_model

    path = tmp_path_factory.mktemp("md_model") / "model.pt"
    save_model(build_model(Arch(8, 6, 1), tiny_cfg["network"], seed=0), path)
    return path


# ------------------------------------------------------------------------------------------ system
def test_supercell_exact_count_and_near_cubic():
    assert supercell_repeats(12000) == (20, 24, 25)  # 48,000 atoms without vacancies
    for n in (1, 7, 108, 500, 1001):
        atoms = fcc_supercell(n, 4.05, seed=1)
        a, b, c = atoms.info["supercell"]
        assert len(atoms) == n and atoms.info["vacancies"] == 4 * a * b * c - n
        assert a <= b <= c <= 1.5 * a and all(atoms.pbc)
        assert np.allclose(atoms.cell.lengths(), 4.05 * np.array([a, b, c]))


def test_md_system_of_any_element(tiny_cfg):
    md = tiny_cfg["md"]  # element, crystal and lattice constant null: from the model's species and ASE
    al = resolve_crystal(md, [13])
    assert (al.element, al.crystal_structure, al.lattice_constant_A) == ("Al", "fcc", 4.05)
    cu = crystal_system(md, [29])
    assert (cu.crystal.element, cu.crystal.crystal_structure, cu.crystal.lattice_constant_A) == ("Cu", "fcc", 3.61)
    atoms = cu.atoms(108)
    assert len(atoms) == 108 and set(atoms.get_chemical_symbols()) == {"Cu"}
    assert np.allclose(atoms.cell.lengths(), 3 * 3.61)
    fe = crystal_system(md, [26])
    assert fe.crystal.crystal_structure == "bcc" and len(fe.atoms(100)) == 100
    mg = resolve_crystal(md, [12])  # hcp: orthorhombic cell, most repeats along its shortest edge
    atoms = crystal_supercell(400, mg)
    assert len(atoms) == 400 and mg.crystal_structure == "hcp"
    assert atoms.cell.lengths().max() / atoms.cell.lengths().min() < 1.5
    set_a = resolve_crystal(dict(md, element="Cu", lattice_constant_A=3.7), [13, 29])
    assert set_a.lattice_constant_A == 3.7 and set_a.crystal_source == "config + ASE reference data"
    assert type(cu).from_json(cu.to_json()) == cu  # the probe worker's copy


def test_md_refuses_an_element_the_model_was_not_trained_on(tmp_path, tiny_cfg, model_path):
    from tsmlip.core.model import build_model, save_model

    with pytest.raises(ElementError, match=r"md.element = Cu, but the model .* was trained on Al only"):
        timing.time_md(model_path, "torch", dict(tiny_cfg["md"], element="Cu"), torch.device("cpu"))
    out = tmp_path / "t.json"
    copper = json.dumps({"md": dict(tiny_cfg["md"], element="Cu")})
    assert timing.main(["--model", str(model_path), "--engine", "ase", "--out", str(out), "--config-json",
                        copper]) == 2 and not out.exists()
    assert probe.main(["--model", str(model_path), "--out", str(out), "--config-json", copper]) == 2
    assert not out.exists()
    for settings in ([], ["--config-json", json.dumps(tiny_cfg["md"])]):  # none, or not the md: key
        with pytest.raises(SystemExit) as stop:
            timing.main(["--model", str(model_path), "--engine", "ase", "--out", str(out), *settings])
        assert stop.value.code == 2
    alloy = tmp_path / "alloy.pt"
    save_model(build_model(Arch(4, 4, 1), tiny_cfg["network"], seed=0, species=(13, 29)), alloy)
    with pytest.raises(ElementError, match="single-element systems only: set md.element to one of Al, Cu"):
        timing.time_md(alloy, "torch", tiny_cfg["md"], torch.device("cpu"))


def test_md_timing_of_a_copper_model(tmp_path, tiny_cfg):
    from tsmlip.core.model import build_model, save_model

    cu = tmp_path / "cu.pt"
    save_model(build_model(Arch(4, 4, 1), tiny_cfg["network"], seed=0, species=(29,)), cu)
    md = deep_merge(tiny_cfg["md"], {"timing": {"n_atoms": 108, "repeats": 1, "max_drift_eV_per_atom_per_ps": 1e9}})
    rec = timing.time_md(cu, "torch", md, torch.device("cpu"))
    assert rec["element"] == "Cu" and rec["lattice_constant_A"] == 3.61 and rec["n_atoms"] == 108
    assert math.isfinite(rec["us_per_atom_step"])


def test_thermalised_system(md_cfg, system):
    atoms = system.atoms(500)
    assert np.allclose(atoms.get_momenta().sum(0), 0.0, atol=1e-10)
    assert atoms.get_temperature() == pytest.approx(md_cfg["temperature_K"], rel=0.2)


# -------------------------------------------------------------------------------------------- pairs
def _pair_set(pf, ps, off):
    return set(zip(pf.tolist(), ps.tolist(), map(tuple, off.tolist())))


@pytest.mark.parametrize("cell,n", [
    (np.diag([21.0, 22.0, 25.0]), 300),                                   # orthorhombic, >= 3 bins
    (np.array([[20.0, 0, 0], [3.0, 21.0, 0], [-2.0, 1.5, 23.0]]), 300),   # triclinic
    (np.diag([9.0, 10.0, 11.0]), 40),                                     # one bin per direction
    (np.diag([14.0, 4.0, 30.0]), 60),                                     # thinner than the cut-off
    (np.array([[5.0, 0, 0], [2.0, 5.0, 0], [1.0, 1.0, 40.0]]), 80),       # thin and triclinic
])
@pytest.mark.parametrize("finder", ["cell_list", "vesin"])
def test_pair_finders_match_dense_search(cell, n, finder):
    from hippynn.layers.pairs.dispatch import neighbor_list_torch

    rng = np.random.default_rng(0)
    cell_t = torch.as_tensor(cell, dtype=torch.float64)
    # positions partly outside the cell: the finder must wrap them and return offsets for the raw positions
    coords = torch.as_tensor(rng.uniform(-0.3, 1.3, size=(n, 3)) @ cell, dtype=torch.float64)
    cutoff = 6.5
    if finder == "cell_list":
        got = cell_list_pairs(cutoff, coords, cell_t, chunk=5000)  # small chunks exercise the loop
    else:
        got = vesin_pairs(cutoff, coords, cell_t)
    ref = neighbor_list_torch(cutoff, coords, cell_t)
    assert _pair_set(*got) == _pair_set(*ref)
    pf, ps, off = got
    dist = (coords[pf] - coords[ps] + off.double() @ cell_t).norm(dim=1)
    assert bool((dist < cutoff).all()) and len(pf) == len(set(_pair_set(*got)))


# ------------------------------------------------------------------------------------------ engines
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-9), (torch.float32, 2e-4)])
def test_engines_follow_the_same_trajectory(model_path, md_cfg, system, dtype, tol):
    atoms = system.atoms(256)
    runs = {}
    for name, finder in (("ase", None), ("torch", "kdtree"), ("torch", "cell_list"), ("torch", "periodic"),
                         ("torch", "vesin")):
        eng = make_engine(name, model_path, atoms, "cpu", 1.0, skin_A=md_cfg["skin_A"],
                          pair_finder=finder or "cell_list", dtype=dtype)
        e0 = eng.energies()
        eng.run(5)
        runs[(name, finder)] = (eng.positions(), eng.velocities(), e0, eng.energies())
    ref_pos, ref_vel, ref_e0, ref_e1 = runs[("ase", None)]
    assert np.abs(ref_pos - atoms.get_positions()).max() > 1e-3  # the atoms did move
    for key, (pos, vel, e0, e1) in runs.items():
        assert np.abs(pos - ref_pos).max() < tol, key
        assert np.abs(vel - ref_vel).max() < tol, key
        assert np.allclose(e0, ref_e0, atol=1e3 * tol) and np.allclose(e1, ref_e1, atol=1e3 * tol), key


def test_langevin_engines_follow_the_same_trajectory(model_path):
    """NVT Langevin with FixCom: ASE's integrator and the torch engine's copy draw the same noise from one
    seed; in float64 they stay on one trajectory, across a change of the target temperature."""
    from ase.constraints import FixCom

    from tsmlip.core.md.system import liquid_system
    from tsmlip.rdf import resolve_liquid

    s = resolve_liquid({"element": None, "density_g_cm3": None, "liquid_density_ratio": 0.85, "supercell": [3, 3, 3],
                        "r_max_A": 5.0, "rattle_A": 0.05, "seed": 3}, [13])
    runs = {}
    for name, finder in (("ase", None), ("torch", "vesin"), ("torch", "kdtree")):
        rng = np.random.default_rng(5)
        atoms = liquid_system(s, 1500.0, rng)
        assert any(isinstance(c, FixCom) for c in atoms.constraints)
        eng = make_engine(name, model_path, atoms, "cpu", 2.0, pair_finder=finder or "vesin", dtype=torch.float64,
                          thermostat=Langevin(1500.0, 0.01, rng))
        temps = []
        eng.run(6, lambda: temps.append(eng.temperature()))
        eng.set_temperature(600.0)
        eng.run(4)
        runs[(name, finder)] = (eng.positions(), eng.velocities(), temps, eng.potential_energy(), eng.nsteps,
                                eng.snapshot())
    ref = runs[("ase", None)]
    assert ref[4] == 10 and len(ref[2]) == 6
    masses = ref[5].get_masses()
    for key, (pos, vel, temps, epot, nsteps, frame) in runs.items():
        assert np.abs(pos - ref[0]).max() < 1e-9 and np.abs(vel - ref[1]).max() < 1e-9, key
        assert np.allclose(temps, ref[2], rtol=1e-9) and epot == pytest.approx(ref[3], abs=1e-8), key
        assert nsteps == 10 and np.allclose(frame.positions, pos) and not frame.constraints
        assert np.abs(masses @ vel).max() < 1e-9  # FixCom: no net momentum


def test_kernels_per_device():
    """auto = plain pytorch on the CPU; implementation names pass through; unknown names fail."""
    try:
        assert set_kernels("auto", "cpu") == "pytorch" == kernel_implementation()
        assert set_kernels(None, torch.device("cpu")) == "pytorch"
        assert set_kernels("sparse", "cpu") == "sparse" == kernel_implementation()
        with pytest.raises(ValueError, match="unknown hippynn kernels"):
            set_kernels("fastest", "cpu")
    finally:
        set_kernels("pytorch", "cpu")


def test_torch_engine_reuses_pairs_within_the_skin(model_path, system):
    eng = make_engine("torch", model_path, system.atoms(256), "cpu", 1.0, skin_A=1.0, pair_finder="kdtree")
    eng.run(10)
    stats = eng.pair_stats()
    # hippynn's own test (sum over atoms) would rebuild every step; the per-atom test keeps the list
    assert stats["pair_rebuilds"] == 1 and stats["pair_reuses"] >= 10


# ------------------------------------------------------------------------------------------- timing
@pytest.mark.parametrize("engine", ["ase", "torch"])
def test_md_timing_cli(tmp_path, model_path, md_cfg, tiny_cfg, engine):
    out = tmp_path / f"md_timing_{engine}.json"
    assert timing.main(["--model", str(model_path), "--engine", engine, "--out", str(out),
                        "--model-id", "student/w8-s6-l1/seed0", "--config-json", json.dumps({"md": tiny_cfg["md"]})]) == 0
    rec = json.loads(out.read_text())
    assert rec.pop("_provenance")["inputs"]["model"]["file"] == "model.pt"  # its record (tsmlip.provenance)
    assert TIMING_KEYS <= set(rec)
    assert list(rec) == [k for k in MdTiming.keys()
                         if (engine == "torch" or not k.startswith("pair_re")) and k != "engine_version"]
    tc = md_cfg["timing"]
    assert rec["engine"] == engine and rec["device"] == "cpu" and rec["model_id"] == "student/w8-s6-l1/seed0"
    assert rec["n_atoms"] == tc["n_atoms"] and rec["n_steps"] == tc["steps"] and rec["repeats"] == tc["repeats"]
    assert len(rec["us_per_atom_step_all"]) == tc["repeats"]
    assert rec["us_per_atom_step"] == pytest.approx(float(np.median(rec["us_per_atom_step_all"])))
    for key in ("us_per_atom_step", "steps_per_s", "ns_per_day"):
        assert math.isfinite(rec[key]) and rec[key] > 0
    assert rec["steps_per_s"] == pytest.approx(1e6 / (rec["us_per_atom_step"] * rec["n_atoms"]))
    assert rec["stable"] is True
    assert abs(rec["energy_drift_eV_per_atom_per_ps"]) < 0.1  # a few fs of a random-weight model at 1 fs
    assert rec["hardware"]["device"] == "cpu" and rec["hardware"]["cpu"]["torch_threads"] == tc["torch_threads"]
    assert rec["hippynn_kernels"] == "pytorch" and rec["hippynn_kernels_setting"] == "auto"


class _Clock:
    """A simulated clock: the fake engines below advance it by their cost, slowed ``load`` times while the clock
    is before ``load_until`` (a load that comes and goes on a shared machine)."""

    def __init__(self, load: float, load_until: float):
        self.t, self.load, self.load_until = 0.0, load, load_until

    def __call__(self) -> float:
        return self.t


class _FakeEngine:
    def __init__(self, clock: _Clock, cost_per_step: float):
        self.clock, self.cost = clock, cost_per_step

    def run(self, n):
        for _ in range(n):
            self.clock.t += self.cost * (self.clock.load if self.clock.t < self.clock.load_until else 1.0)

    def energies(self):
        return [0.0]

    def synchronize(self):
        pass


def test_interleaved_blocks_rank_the_engines_under_a_passing_load(monkeypatch):
    """Engine A costs 1.0 per step, B 1.2: timed one after the other, a load (3x) over the first 40 % of the
    time falls on A alone and ranks A slower; interleaved (one block of each per round, the order rotated), it
    falls on both alike and the medians rank A faster, by the true ratio."""
    steps, repeats = 10, 5

    def run(interleaved: bool) -> list[float]:
        clock = _Clock(load=3.0, load_until=0.4 * (1.0 + 1.2) * steps * repeats * 3.0 / 2)
        monkeypatch.setattr(timing.time, "perf_counter", clock)
        monkeypatch.setattr(timing.time, "process_time", clock)
        engines = [_FakeEngine(clock, 1.0), _FakeEngine(clock, 1.2)]
        if interleaved:
            blocks = timing.interleaved_blocks(engines, 1, 1.0, 0, steps, repeats, ["a", "b"])
        else:
            blocks = [timing.timed_blocks(e, 1, 1.0, 0, steps, repeats, t) for e, t in zip(engines, "ab")]
        assert all(len(b.per_atom_us) == len(b.cpu_per_atom_us) == repeats for b in blocks)
        return [float(np.median(b.per_atom_us)) for b in blocks]

    a, b = run(interleaved=False)
    assert a > b  # the load ranks the cheaper engine slower
    a, b = run(interleaved=True)
    assert b / a == pytest.approx(1.2)


def test_md_timing_of_two_models_interleaved(tmp_path, model_path, tiny_cfg):
    """Two models in one `tsmlip md-timing`: one record each, every round timed both (``timed_with`` names the
    other), CPU time beside wall time; as many --out as --model or a one-line refusal."""
    import shutil

    outs = [tmp_path / "a.json", tmp_path / "b.json"]
    other = tmp_path / "other" / "model.pt"
    other.parent.mkdir()
    shutil.copy(model_path, other)
    md = json.dumps({"md": tiny_cfg["md"]})
    args = ["--engine", "torch", "--config-json", md, "--model", str(model_path), str(other)]
    with pytest.raises(SystemExit):
        timing.main(args + ["--out", str(outs[0])])
    assert timing.main(args + ["--out", *map(str, outs)]) == 0
    a, b = (json.loads(o.read_text()) for o in outs)
    repeats = tiny_cfg["md"]["timing"]["repeats"]
    for rec in (a, b):
        assert len(rec["us_per_atom_step_all"]) == len(rec["cpu_us_per_atom_step_all"]) == repeats
        assert rec["cpu_us_per_atom_step"] > 0 and rec["us_per_atom_step_spread"] >= 0
    assert a["timed_with"] == [str(other)] and b["timed_with"] == [str(model_path)]


def test_energy_drift_and_unstable_flag(model_path, md_cfg):
    t = [0.0, 0.001, 0.002, 0.003]
    assert timing.energy_drift(t, [10.0, 10.1, 10.2, 10.3], 10) == pytest.approx(10.0)
    assert math.isnan(timing.energy_drift(t, [1.0, float("nan"), 1.0, 1.0], 10))
    cfg = deep_merge(md_cfg, {"timing": {"max_drift_eV_per_atom_per_ps": 1e-12, "repeats": 1}})
    rec = timing.time_md(model_path, "torch", cfg, torch.device("cpu"))
    assert rec["stable"] is False


def test_hardware_info_on_cpu():
    info = hardware_info("cpu")
    assert info["device"] == "cpu" and info["cpu"]["logical_cores"] >= 1 and "gpu" not in info
    json.dumps(info)


# -------------------------------------------------------------------------------------------- probe
def _threshold_trial(limit):
    calls = []

    def trial(n):
        calls.append(n)
        return {"n_atoms": n, "ok": n <= limit, "peak_bytes": 1000 * n if n <= limit else None,
                "nvml_used_bytes": None}
    return trial, calls


@pytest.mark.parametrize("limit,resolution", [(1000, 0.05), (1000, 10), (5, 0.1), (70, 0.5)])
def test_search_brackets_the_limit(limit, resolution):
    trial, calls = _threshold_trial(limit)
    found = probe.search_max_atoms(trial, start=64, growth=2.0, resolution=resolution, cap=10**6,
                                   progress=lambda m: None)
    lo, hi = found["max_atoms"], found["first_failure_atoms"]
    assert lo <= limit < hi
    assert hi - lo <= max(1, resolution * lo if resolution < 1 else resolution)
    slope, _ = probe.memory_slope(found["sizes"])
    assert slope is None if sum(r["ok"] for r in found["sizes"]) < 2 else slope == pytest.approx(1000.0)
    assert len(calls) == len(set(calls))


def test_search_stops_at_the_cap():
    trial, _ = _threshold_trial(10**9)
    found = probe.search_max_atoms(trial, 100, 3.0, 0.1, cap=1000, progress=lambda m: None)
    assert found == {**found, "max_atoms": 1000, "capped": True, "first_failure_atoms": None}


def test_fake_oom_setting(monkeypatch):
    monkeypatch.delenv(FAKE_OOM_ENV, raising=False)
    assert fake_oom_atoms() is None and fake_oom_atoms(7) == 7
    monkeypatch.setenv(FAKE_OOM_ENV, "123")
    assert fake_oom_atoms() == 123
    with pytest.raises(MemoryError):
        probe.md_step("unused.pt", 200, None, {}, torch.device("cpu"), fake_oom_above=123)


def test_cpu_probe_with_injected_oom(tmp_path, model_path, md_cfg, tiny_cfg):
    """End to end on the CPU: forked children, RSS budget, and an injected OOM above 100 atoms."""
    out = tmp_path / "max_atoms.json"
    md = deep_merge(tiny_cfg["md"], {"probe": {"start_atoms": 16, "growth_factor": 4.0, "resolution": 0.1,
                                               "cpu_memory_budget_MB": 400}})
    assert probe.main(["--model", str(model_path), "--out", str(out), "--config-json", json.dumps({"md": md}),
                       "--fake-oom-above", "100"]) == 0
    rec = json.loads(out.read_text())
    assert rec.pop("_provenance")["step"] == "max-atoms"
    assert PROBE_KEYS <= set(rec) and rec["device"] == "cpu" and list(rec) == list(MaxAtoms.keys())
    assert rec["hippynn_kernels"] == "pytorch" and rec["hippynn_kernels_setting"] == "auto"
    assert all(SIZE_KEYS <= set(row) for row in rec["sizes"])
    budget = 400 * 2**20
    assert rec["memory_budget_bytes"] == budget
    assert 90 <= rec["max_atoms"] <= 100 and rec["first_failure_atoms"] > 100
    assert [r["n_atoms"] for r in rec["sizes"]][:3] == [16, 64, 256]
    for row in rec["sizes"]:
        assert row["ok"] == (row["n_atoms"] <= 100)
        if row["ok"]:
            assert 0 <= row["peak_bytes"] <= budget
        else:
            assert "injected" in row["reason"]
    assert rec["memory_per_atom_bytes"] == pytest.approx(budget / rec["max_atoms"])
    assert rec["memory_per_atom_slope_bytes"] is None or math.isfinite(rec["memory_per_atom_slope_bytes"])


def test_cpu_probe_budget_counts_as_oom(model_path, md_cfg):
    """A budget far below one step's memory: every size fails on RSS, without an exception."""
    cfg = deep_merge(md_cfg, {"probe": {"start_atoms": 256, "resolution": 128, "cpu_memory_budget_MB": 0.5}})
    rec = probe.probe_max_atoms(model_path, cfg, torch.device("cpu"))
    assert rec["max_atoms"] < 256 and rec["first_failure_atoms"] is not None
    failed = [r for r in rec["sizes"] if not r["ok"]]
    assert failed and all("budget" in r["reason"] for r in failed)


# --------------------------------------------------------------------------------------------- CUDA
@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("engine", ["ase", "torch"])
def test_md_timing_on_cuda(tmp_path, model_path, md_cfg, engine):
    rec = timing.time_md(model_path, engine, md_cfg, torch.device("cuda"))
    assert rec["device"] == "cuda" and rec["stable"] and rec["us_per_atom_step"] > 0
    assert rec["hardware"]["gpu"]["total_memory_bytes"] > 0


@pytest.mark.gpu
@cuda
def test_cuda_engines_agree(model_path, md_cfg, system):
    atoms = system.atoms(256)
    pos = []
    for name in ("ase", "torch"):
        eng = make_engine(name, model_path, atoms, "cuda", 1.0, pair_finder="cell_list", dtype=torch.float64)
        eng.run(5)
        pos.append(eng.positions())
    assert np.abs(pos[0] - pos[1]).max() < 1e-8


@pytest.mark.gpu
@cuda
def test_cuda_probe_injected_and_real_oom(model_path, md_cfg):
    cfg = deep_merge(md_cfg, {"probe": {"start_atoms": 32, "growth_factor": 2.0, "resolution": 0.25}})
    rec = probe.probe_max_atoms(model_path, cfg, torch.device("cuda"), fake_oom_above=300)
    assert 225 <= rec["max_atoms"] <= 300
    assert all(r["nvml_used_bytes"] is None or r["nvml_used_bytes"] > 0 for r in rec["sizes"])
    assert any("OutOfMemoryError" in r.get("reason", "") for r in rec["sizes"])
    # a real out-of-memory: cap torch's allocator at 32 MB (all-torch engine: no slow host neighbour list)
    cfg = deep_merge(cfg, {"probe": {"engine": "torch", "gpu_memory_budget_MB": 32, "max_atoms_cap": 200000,
                                     "growth_factor": 4.0}})
    try:
        rec = probe.probe_max_atoms(model_path, cfg, torch.device("cuda"))
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert rec["memory_budget_bytes"] == 32 * 2**20 and 0 < rec["max_atoms"] < 200000
    assert all(r["peak_bytes"] <= 32 * 2**20 for r in rec["sizes"] if r["ok"])
    assert any("OutOfMemoryError" in r.get("reason", "") for r in rec["sizes"])


def test_ase_host_memory_estimate_counts_the_pairs(model_path, md_cfg, system):
    eng = make_engine("ase", model_path, system.atoms(500), "cpu", 1.0, skin_A=md_cfg["skin_A"])
    pairs_per_atom = len(eng.atoms.calc.nl.nl.pair_first) / 500
    estimate = probe.ase_host_bytes(500, model_path, system, md_cfg["skin_A"]) / probe.ASE_NL_BYTES_PER_PAIR / 500
    assert estimate == pytest.approx(pairs_per_atom, rel=0.3)  # a continuum count of discrete fcc shells
