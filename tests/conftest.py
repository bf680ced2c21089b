"""Shared fixtures: the tiny configuration (config/test.yaml over config/config.yaml) and a tiny
EMT dataset + split generated once per test session."""
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
#: the workflow's default config and the tiny overlay of the tests (the package reads only what it is named)
BASE_CONFIG = ROOT / "config" / "config.yaml"
TEST_CONFIG = ROOT / "config" / "test.yaml"
sys.path.insert(0, str(ROOT / "workflow"))
os.environ.setdefault("HIPPYNN_USE_CUSTOM_KERNELS", "False")

import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_cfg():
    from tsmlip.config import load_config

    return load_config(BASE_CONFIG, TEST_CONFIG)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory, tiny_cfg):
    """(dataset path, split path, arrays) of the tiny EMT set."""
    from tsmlip.data.dataset import pad_configurations, save_dataset, load_dataset
    from tsmlip.data.emt import generate
    from tsmlip.data.split import make_split

    d = tmp_path_factory.mktemp("tiny_data")
    configs, _ = generate(tiny_cfg["data"]["emt"], progress=False)
    save_dataset(pad_configurations(configs), d / "dataset.npz", {"source": "emt"})
    arrays = load_dataset(d / "dataset.npz")
    sp = tiny_cfg["split"]
    np.savez(d / "split.npz", **make_split(len(arrays["E"]), sp["valid_fraction"], sp["test_fraction"], sp["seed"]))
    return d / "dataset.npz", d / "split.npz", arrays


def run_snakemake(*args, cwd=ROOT, timeout=1800):
    """Run snakemake from the repo root with the package's CLI on PATH and this checkout's package first on
    PYTHONPATH (the rules and their steps import it); returns CompletedProcess."""
    import subprocess

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "workflow"), env.get("PYTHONPATH")) if p)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def e2e_run(tmp_path_factory):
    """The whole DAG of config/test.yaml, run once per session into a temporary results dir."""
    results = tmp_path_factory.mktemp("e2e") / "results"
    out = run_snakemake("--cores", "2", "--configfile", "config/test.yaml",
                        "--config", f"results_dir={results}", "--rerun-incomplete")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-8000:]
    return results, out


def write_emt_copper_xyz(path, n_configs=24, seed=3):
    """A tiny non-aluminum dataset: fcc copper (3x3x2 cubic cells, a few vacancies, +-3% strain) from
    Langevin MD with ASE's EMT at 300 and 1500 K, written as extended XYZ (energies eV, forces eV/A, and EMT's
    per-atom energies as an `energies` column)."""
    import ase.io
    from ase import units
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    rng = np.random.default_rng(seed)
    frames, traj = [], 0
    while len(frames) < n_configs:
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((3, 3, 2))
        del atoms[sorted(rng.choice(len(atoms), size=int(rng.integers(0, 5)), replace=False).tolist())]
        atoms.set_cell(atoms.cell.array * (1 + rng.uniform(-0.03, 0.03)), scale_atoms=True)
        T = (300.0, 1500.0)[traj % 2]
        atoms.calc = EMT()
        MaxwellBoltzmannDistribution(atoms, temperature_K=T, rng=rng)
        dyn = Langevin(atoms, 2.0 * units.fs, temperature_K=T, friction=0.02 / units.fs, rng=rng)
        dyn.run(20)
        for _ in range(4):
            dyn.run(10)
            snap = atoms.copy()
            snap.calc = SinglePointCalculator(snap, energy=atoms.get_potential_energy(), forces=atoms.get_forces(),
                                              energies=atoms.get_potential_energies())  # per atom: student_oracle
            frames.append(snap)
        traj += 1
    ase.io.write(path, frames[:n_configs], format="extxyz")
    return path


@pytest.fixture(scope="session")
def e2e_copper_run(tmp_path_factory):
    """The whole DAG of config/test.yaml on EMT copper read from an extended-XYZ file."""
    d = tmp_path_factory.mktemp("e2e_cu")
    xyz = write_emt_copper_xyz(d / "cu.xyz")
    overlay = d / "copper.yaml"
    # copper is denser than aluminum: the tiny 3x3x3 liquid cell (11.5 A) holds r_max_A = 5.5, not 6.0 (the
    # workflow would enlarge it to 4x4x4, 256 atoms; tests/test_rdf.py checks that)
    overlay.write_text(f"results_dir: {d / 'results'}\ndata: {{source: extxyz, path: {xyz}}}\n"
                       "rdf: {r_max_A: 5.5, n_bins: 55}\n")
    out = run_snakemake("--cores", "2", "--configfile", "config/test.yaml", str(overlay), "--rerun-incomplete")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-8000:]
    return d / "results", out
