"""Every script under scripts/ runs: each has a `--smoke` mode (tiny sizes, seconds to a minute on a CPU), and
this test runs it and reads its output, so a script cannot rot unnoticed."""
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT

SCRIPTS = sorted(p.name for p in (ROOT / "scripts").glob("*.py"))
#: what each smoke run must print (a table row with numbers, not merely exit 0)
EXPECT = {
    "bench_liquid_stack.py": r"\| stack of 2 \| 2 \| [\d.]+ \| [\d.]+ \| [\d.]+ \|",
    "bench_md.py": r"student:w4-s4-l1 \(random\)\s+32\s+[\d.]+!?\s+[\d.]+!?\s+[\d.]+",
    "bench_lammps.py": r"(student:w4-s4-l1 \[cpp\]\s+32\s+[\d.]+|bench_lammps: the lammps engine needs)",
    "bench_md_rank.py": r"interleaved: \d of 1 trials rank the models",
    "bench_pairs.py": r"\n\s+256\s+1\s+\d+\s+[\d.]+\s+[\d.]+\s+[\d.]+",
    "bench_rdf_engines.py": r"108 atoms, cpu time, median: ase [\d.]+ ms/step, torch \(vesin\) [\d.]+ ms/step",
    "bench_train.py": r"\| student/w6-s6-l1/seed1 \| 4 \| \d+ \|",
    "committee_calibration.py": r"\| student\s+\| w4-s4-l1 \| liquid\s+\|\s+\d+ \|\s+\d+ \|",
    "compare_tables.py": r"smoke: same science -> 0, other science -> 1: ok",
    "publish_run.py": r"smoke: wrote headline.md, pareto_time.png, README.md",
    "rdf_noise_study.py": r"108 atoms\s+\d+ frames\s+noise floor mean [\d.]+",
}
#: scripts whose smoke run a test of their own runs and checks field by field
ELSEWHERE = {"gpu_campaign.py": "test_gpu_campaign.py"}


def test_every_script_is_covered():
    assert set(SCRIPTS) == set(EXPECT) | set(ELSEWHERE)
    for script, test in ELSEWHERE.items():
        assert f'"{script}"), "--smoke"' in (ROOT / "tests" / test).read_text()


@pytest.mark.parametrize("script", sorted(EXPECT))
def test_script_smoke_mode(script):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT / "workflow"), os.environ.get("PYTHONPATH")) if p))
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / script), "--smoke"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert re.search(EXPECT[script], out.stdout), out.stdout[-2000:]


def test_bench_train_engines_smoke_mode():
    """`bench_train.py --engines --smoke`: hippynn against the fast engine, one row per architecture with numbers."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT / "workflow"), os.environ.get("PYTHONPATH")) if p))
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_train.py"), "--engines", "--smoke"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert re.search(r"\| control w6-s6-l1 \| 2 \| 2 \| [\d.]+ \| [\d.]+ \| [\d.]+ \|", out.stdout), out.stdout[-2000:]
