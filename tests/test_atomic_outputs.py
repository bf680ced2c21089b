"""A crash inside an MD job leaves nothing a rerun would trust.

Every output of the MD jobs (``md_timing_<engine>.json``, ``max_atoms.json``, ``rdf.csv`` and
``rdf_md.json``) is written through :mod:`tsmlip.io_utils`: a hidden temporary file beside the output,
flushed, then renamed over it. Here: the writers are all-or-nothing even when the process is SIGKILLed in
the middle of a write; MD jobs SIGKILLed mid-run leave no output; and Snakemake, itself killed with its job
(a lost node), reruns the job and then produces complete outputs.
"""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import BASE_CONFIG, ROOT, TEST_CONFIG
from tsmlip.config import deep_merge, load_config
from tsmlip.ids import Arch
from tsmlip.io_utils import atomic_open, atomic_torch_save, atomic_write_json, atomic_write_text

WORKFLOW = ROOT / "workflow"


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(WORKFLOW), env.get("PYTHONPATH")) if p)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------------------------------ writers
def test_atomic_writers_are_all_or_nothing(tmp_path):
    out = tmp_path / "sub" / "out.json"
    atomic_write_json(out, {"a": 1, "b": [1.5, None]})
    assert json.loads(out.read_text()) == {"a": 1, "b": [1.5, None]}
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # ordinary permissions, not mkstemp's 0600
    atomic_write_json(out, {"a": float("nan"), "b": [float("inf"), np.float32(2.5)], "c": np.arange(2)})
    assert out.read_text() == '{\n "a": null,\n "b": [\n  null,\n  2.5\n ],\n "c": [\n  0,\n  1\n ]\n}\n'
    with pytest.raises(TypeError, match="object is not a JSON value"):  # refused before anything is written
        atomic_write_json(out, {"a": object()})
    atomic_write_json(out, {"a": 1})
    assert json.loads(out.read_text())["a"] == 1
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_open(out) as fh:
            fh.write('{"half": ')
            raise RuntimeError("boom")
    assert json.loads(out.read_text())["a"] == 1  # the previous file is untouched
    assert _leftovers(out.parent) == ["out.json"]  # and no temporary file is left behind
    atomic_write_text(tmp_path / "t.csv", "r_A,g\n1,2\n")
    assert (tmp_path / "t.csv").read_text() == "r_A,g\n1,2\n"
    import torch

    atomic_torch_save({"x": torch.arange(3)}, tmp_path / "t.pt")
    assert torch.load(tmp_path / "t.pt", weights_only=True)["x"].tolist() == [0, 1, 2]


@pytest.mark.parametrize("previous", [None, '{"old": true}\n'])
def test_writer_killed_mid_write_leaves_no_partial_file(tmp_path, previous):
    """SIGKILL while half of the file is written: the output path holds the previous file or nothing."""
    out = tmp_path / "md_timing_torch.json"
    if previous is not None:
        out.write_text(previous)
    code = ("import os, signal, sys\n"
            "from tsmlip.io_utils import atomic_open\n"
            "with atomic_open(sys.argv[1]) as fh:\n"
            "    fh.write('{\"us_per_atom_step\": ' + ' ' * 100000)\n"
            "    fh.flush()\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(out)], env=_env(), capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    if previous is None:
        assert not out.exists()
    else:
        assert out.read_text() == previous
    stray = [n for n in _leftovers(tmp_path) if n != out.name]
    assert len(stray) == 1 and stray[0].startswith(f".{out.name}.") and stray[0].endswith(".tmp")
    assert (tmp_path / stray[0]).stat().st_size > 100000  # the half-written data went there, not to `out`


# ---------------------------------------------------------------------------------- killed MD jobs
def _rdf_config(**kw):
    """What `tsmlip rdf-md --reference` reads: a small, endless EMT liquid (``kw`` changes the rdf: keys)."""
    s = dict(load_config(BASE_CONFIG, TEST_CONFIG)["rdf"])
    s.update(element="Al", supercell=[2, 2, 2], r_max_A=4.0, n_bins=40, melt_steps=0, equilibration_steps=0,
             production_steps=10 ** 7, sample_interval=5, progress_every=5)
    s.update(kw)
    return json.dumps({"rdf": s, "data": {"source": "emt"}})


def _kill_after_progress(cmd, progress: str, timeout: float = 120.0) -> list[str]:
    """Run ``cmd``; SIGKILL it right after its first stderr line containing ``progress``."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env())
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    lines = []
    try:
        for line in proc.stderr:
            lines.append(line)
            if progress in line:
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait()
    finally:
        watchdog.cancel()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, "".join(lines)[-3000:]
    assert any(progress in line for line in lines), "".join(lines)[-3000:]
    return lines


def test_killed_rdf_md_job_leaves_no_output(tmp_path):
    """``tsmlip rdf-md`` (EMT) SIGKILLed after its first progress line: no output file, nothing at the output
    paths and no stray file either (nothing had been written yet)."""
    _kill_after_progress([sys.executable, "-m", "tsmlip.cli", "rdf-md", "--reference",
                          "--config-json", _rdf_config(),
                          "--out-csv", str(tmp_path / "rdf.csv"), "--out-json", str(tmp_path / "rdf_md.json")],
                         "[rdf-md] step ")
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
def test_killed_md_timing_job_leaves_no_output(tmp_path):
    """The same for ``tsmlip md-timing`` with a random-weight model (slow: ~15 s of imports and priming)."""
    from tsmlip.core.model import build_model, save_model

    model = tmp_path / "model.pt"
    save_model(build_model(Arch(6, 6, 1), load_config(BASE_CONFIG, TEST_CONFIG)["network"], seed=0), model)
    out_dir = tmp_path / "md"
    out_dir.mkdir()
    md = deep_merge(load_config(BASE_CONFIG, TEST_CONFIG)["md"],
                    {"device": "cpu", "timing": {"warmup_steps": 0, "repeats": 1, "steps": 10 ** 7}})
    _kill_after_progress([sys.executable, "-m", "tsmlip.cli", "md-timing", "--model", str(model), "--engine",
                          "torch", "--config-json", json.dumps({"md": md}), "--out", str(out_dir / "md_timing_torch.json")],
                         "[md-timing] ")
    assert _leftovers(out_dir) == []


SNAKEFILE = """
rule all:
    input: "out/rdf.csv", "out/rdf_md.json"

rule rdf_md:
    output: csv="out/rdf.csv", json="out/rdf_md.json"
    log: "logs/rdf_md.log"
    shell: "{python} -m tsmlip.cli rdf-md --reference --config-json \\"$(cat settings.json)\\" "
           "--out-csv {{output.csv}} --out-json {{output.json}} > {{log}} 2>&1"
"""


def test_snakemake_reruns_a_job_killed_with_it(tmp_path):
    """Snakemake and its MD job both SIGKILLed (a lost node): the outputs are missing, so the next
    ``snakemake`` runs the job again for "Missing output files" (no --rerun-incomplete needed), and the rerun
    completes.

    Snakemake's own guard (outputs of a job that did not finish are marked incomplete in ``.snakemake/`` and
    deleted or refused on the next run) only covers jobs it ran and whose metadata survive; the atomic
    writes also cover a step run by hand (``tsmlip rdf-md ...``) and a lost ``.snakemake/`` folder: a killed
    job never leaves a file at its output path."""
    import psutil

    (tmp_path / "Snakefile").write_text(SNAKEFILE.format(python=sys.executable))
    (tmp_path / "settings.json").write_text(_rdf_config())
    snakemake = [sys.executable, "-m", "snakemake", "--cores", "1", "-d", str(tmp_path), "-s",
                 str(tmp_path / "Snakefile")]
    proc = subprocess.Popen(snakemake, cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    log = tmp_path / "logs" / "rdf_md.log"
    t0, family = time.time(), []
    try:
        while time.time() - t0 < 120 and proc.poll() is None:
            if log.exists() and "[rdf-md] step " in log.read_text():
                family = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
                break
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # snakemake and its job: the whole session started above
        proc.wait()
    assert family, "the MD job never reported progress:\n" + (log.read_text() if log.exists() else "")
    gone, alive = psutil.wait_procs([psutil.Process(p) for p in family if psutil.pid_exists(p)], timeout=10)
    assert not alive
    assert not (tmp_path / "out" / "rdf.csv").exists() and not (tmp_path / "out" / "rdf_md.json").exists()

    # Snakemake's lock outlives a SIGKILL: the documented `--unlock` (profiles/README.md) comes first
    unlock = subprocess.run(snakemake + ["--unlock"], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                            timeout=120)
    assert unlock.returncode == 0, unlock.stdout + unlock.stderr
    (tmp_path / "settings.json").write_text(_rdf_config(production_steps=10))
    rerun = subprocess.run(snakemake, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr + log.read_text()
    # Snakemake lists the missing files in no fixed order
    reason = re.search(r"reason: Missing output files: (.*)", rerun.stdout + rerun.stderr)
    assert reason, rerun.stdout + rerun.stderr
    assert sorted(f.strip() for f in reason.group(1).split(",")) == ["out/rdf.csv", "out/rdf_md.json"]
    info = json.loads((tmp_path / "out" / "rdf_md.json").read_text())
    assert info["steps_done"] == 10 and info["n_frames"] == 2
    data = np.genfromtxt(tmp_path / "out" / "rdf.csv", delimiter=",", names=True)
    assert data.dtype.names == ("r_A", "g") and len(data) == 40
