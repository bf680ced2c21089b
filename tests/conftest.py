"""Shared fixtures: the tiny configuration (config/test.yaml over config/config.yaml) and a tiny
EMT dataset + split generated once per test session."""
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))
os.environ.setdefault("HIPPYNN_USE_CUSTOM_KERNELS", "False")

import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_cfg():
    from tsmlip.config import load_config

    return load_config(ROOT / "config" / "test.yaml")


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
    """Run snakemake from the repo root with the package's CLI on PATH; returns CompletedProcess."""
    import subprocess

    env = dict(os.environ)
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
