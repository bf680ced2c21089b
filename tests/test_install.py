"""The package as installed, not from this checkout: a non-editable install (``pip install .``) carries its
package data (the configuration's schema, the experimental g(r)), validates the config and plans the DAG."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

pytest.importorskip("setuptools")  # the build backend (pyproject.toml), used without build isolation (offline)


def _run(args, cwd, target, **kw):
    env = dict(os.environ, PYTHONPATH=str(target))  # the installed copy ahead of any editable install
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
                          **kw)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(target dir of a non-editable install of a copy of the package's sources, a scratch dir)."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    shutil.copytree(ROOT / "workflow" / "tsmlip", src / "workflow" / "tsmlip",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    target = tmp / "site"
    out = _run(["-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--quiet",
                "--target", str(target), str(src)], tmp, target)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return target, tmp


def test_installed_package_validates_the_config_and_reads_its_data(installed):
    target, tmp = installed
    code = f"""
import tsmlip
from tsmlip import config, rdf
assert tsmlip.__file__.startswith({str(target)!r}), tsmlip.__file__
for overlay in ("test.yaml", "paper.yaml"):
    config.load_config({str(ROOT / "config" / "config.yaml")!r}, {str(ROOT / "config")!r} + "/" + overlay)
assert len(rdf.experimental_curves("Al")) == 5
"""
    out = _run(["-c", code], tmp, target)
    assert out.returncode == 0, out.stderr[-4000:]


def test_installed_package_plans_the_dag(installed):
    """The workflow's files without the package's sources (so the Snakefile's import finds only the
    installed package) plan the tiny run."""
    target, tmp = installed
    wf = tmp / "workflow_only"
    shutil.copytree(ROOT / "workflow" / "rules", wf / "workflow" / "rules")
    shutil.copytree(ROOT / "workflow" / "report", wf / "workflow" / "report")
    for d in ("config", "envs"):
        shutil.copytree(ROOT / d, wf / d)
    shutil.copy(ROOT / "Snakefile", wf / "Snakefile")
    code = f"""
import sys
import tsmlip
assert tsmlip.__file__.startswith({str(target)!r}), tsmlip.__file__
from snakemake.cli import main
sys.argv = ["snakemake", "-n", "--cores", "1", "--configfile", "config/test.yaml",
            "--config", "results_dir={tmp / 'results'}"]
main()
"""
    out = _run(["-c", code], wf, target)
    assert out.returncode == 0 and "This was a dry-run" in out.stdout + out.stderr, out.stderr[-4000:]
