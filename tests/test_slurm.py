"""The SLURM profiles, proved on a real one-node SLURM cluster.

    tests/slurm/run_ci.sh                         # start cluster, these tests, stop cluster
    pytest -m slurm tests/test_slurm.py -x        # starts (or reuses) the cluster itself

The cluster (tests/slurm/start_cluster.sh) is Debian's slurmctld + slurmd on 127.0.0.1 with
one node "localhost" (2 cores) that advertises two fake GPUs (Gres=gpu:2); it needs
root and apt-get, else the `slurm` tests skip with the reason. The default test run
(`-m 'not slow and not slurm'`) keeps only `test_profiles_plan`, a dry run that needs no
cluster.

Evidence collected per job:
  * Snakemake's own log line "Job N has been submitted with SLURM jobid J" (the job went
    through sbatch, not the local executor);
  * the exact sbatch command line the plugin ran (a `sbatch` wrapper first on PATH writes
    its arguments to a file, then execs the real sbatch) -- GPU rules carry `--gpus=1`,
    CPU rules carry no GPU option;
  * SLURM's record of the job (`scontrol show job J`: Comment=rule_<rule>,
    TresPerJob=gres:gpu:1 for the GPU rules only, JobState=COMPLETED, ExitCode=0:0);
  * the job's environment (toy workflow): CUDA_VISIBLE_DEVICES set by SLURM in a GPU job
    (different devices for GPU jobs that overlap in time) and torch falling back to the
    CPU through tsmlip.core.model.resolve_device("auto").

Faults (docs/runs/2026-11-25-faults.md): the teacher's training job of the real workflow is cancelled
(`scancel`) or requeued (`scontrol requeue`) between two checkpoints; the rerun resumes from the
checkpoint, loses at most `checkpoint_every` epochs and ends with the metrics of an uninterrupted run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SLURM_SCRIPTS = REPO / "tests" / "slurm"
CI_PROFILE = REPO / "profiles" / "slurm-ci"
SITE_PROFILE = REPO / "profiles" / "slurm"
DEFAULT_PROFILE = REPO / "profiles" / "default"
STATE = Path(os.environ.get("TSMLIP_SLURM_STATE", "/var/lib/tsmlip-slurm"))
DAEMONS = ("munged", "slurmctld", "slurmd")

# rules that must be submitted with --gpus=1: `gpu: true` in the resources table of config/config.yaml (the
# profiles map them: profiles/slurm*/config.yaml, tests/test_resources.py)
GPU_RULES = {rule for rule, row in yaml.safe_load((REPO / "config" / "config.yaml").read_text())["resources"].items()
             if row["gpu"] is True}

SUBMITTED_RE = re.compile(
    r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)"
)
LOG_RULE_RE = re.compile(r"/slurm_logs/rule_([A-Za-z0-9_]+)/")

# no `--workflow-profile`/`--configfile` from the caller's environment
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE_")}


# --------------------------------------------------------------------------- helpers
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed daemon stays a zombie until PID 1 reaps it
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _recorded_pids() -> dict[str, int]:
    pids = {}
    for name in DAEMONS:
        f = STATE / "pids" / f"{name}.pid"
        if f.is_file() and f.read_text().strip().isdigit():
            pids[name] = int(f.read_text())
    return pids


def _snakemake_env(tmp: Path) -> tuple[dict, Path]:
    """PATH: a logging `sbatch` wrapper first, then this interpreter's bin (snakemake, tsmlip)."""
    real_sbatch = shutil.which("sbatch")
    assert real_sbatch, "sbatch not on PATH"
    shim_dir = tmp / "shim"
    shim_dir.mkdir(exist_ok=True)
    calls = tmp / "sbatch_calls"
    calls.mkdir(exist_ok=True)
    shim = shim_dir / "sbatch"
    shim.write_text(
        "#!/bin/sh\n"
        "# test wrapper: record the plugin's sbatch arguments (one file per call: the plugin\n"
        "# submits from two threads at once; a unique name, since a long run reuses PIDs), then\n"
        "# submit with the real sbatch\n"
        f"f=$(mktemp '{calls}'/call.XXXXXXXX) || exit 1\n"
        "printf '%s\\n' \"$*\" > \"$f\"\n"
        f"exec '{real_sbatch}' \"$@\"\n"
    )
    shim.chmod(0o755)
    env = dict(CLEAN_ENV)
    env["PATH"] = os.pathsep.join([str(shim_dir), str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env, calls


def _run_snakemake(args: list[str], cwd: Path, env: dict, timeout: int) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", *args]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    proc.wall_s = time.monotonic() - t0  # type: ignore[attr-defined]
    (cwd / "snakemake.out").write_text(proc.stdout + proc.stderr)
    return proc


def _tail(text: str, n: int = 60) -> str:
    return "\n".join(text.splitlines()[-n:])


def _scontrol_job(jobid: str) -> dict[str, str]:
    out = subprocess.run(
        ["scontrol", "show", "job", "--oneliner", jobid], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, f"scontrol show job {jobid}: {out.stderr}"
    fields = {}
    for tok in out.stdout.split():
        if "=" in tok:
            k, v = tok.split("=", 1)
            fields.setdefault(k, v)
    return fields


def _check_slurm_evidence(log: str, calls_dir: Path, gpu_rules=GPU_RULES) -> dict[str, list[str]]:
    """Every job went through sbatch; GPU rules with --gpus=1, CPU rules without a GPU.
    Returns {rule: [slurm job ids]}."""
    submitted = SUBMITTED_RE.findall(log)
    assert submitted, "no job was submitted to SLURM:\n" + _tail(log)
    by_rule: dict[str, list[str]] = {}
    for _smk_id, slurm_id, logfile in submitted:
        m = LOG_RULE_RE.search(logfile)
        assert m, logfile
        by_rule.setdefault(m.group(1), []).append(slurm_id)
        assert Path(logfile).is_file(), f"SLURM log {logfile} missing (slurm-keep-successful-logs)"

    # the sbatch command lines the plugin ran
    calls = [f.read_text().replace("\n", " ") for f in sorted(calls_dir.glob("call.*"))]
    assert len(calls) == len(submitted), (len(calls), len(submitted))
    for call in calls:
        m = LOG_RULE_RE.search(call)
        assert m, call
        rule = m.group(1)
        head = call.split("--wrap", 1)[0]  # sbatch options only, not the wrapped command
        if rule in gpu_rules:
            assert " --gpus=1" in head, f"GPU rule {rule} submitted without --gpus=1: {head}"
        else:
            assert "--gpus" not in head and "--gres" not in head, f"CPU rule {rule} asked for a GPU: {head}"

    # SLURM's own record of every job
    for rule, ids in by_rule.items():
        for jid in ids:
            job = _scontrol_job(jid)
            assert job.get("JobState") == "COMPLETED", (rule, jid, job.get("JobState"))
            assert job.get("ExitCode") == "0:0", (rule, jid, job.get("ExitCode"))
            assert job.get("Comment", "").startswith(f"rule_{rule}"), (rule, jid, job.get("Comment"))
            tres = job.get("TresPerJob", "")
            if rule in gpu_rules:
                assert re.fullmatch(r"gres[:/]gpu[:=]1", tres), (rule, jid, tres)
            else:
                assert "gpu" not in tres, (rule, jid, tres)
    return by_rule


# --------------------------------------------------------------------------- the cluster
@pytest.fixture(scope="module")
def slurm_cluster():
    """A running one-node cluster: reused if one from the same state dir is up, else
    started here and stopped (exactly the recorded PIDs) at teardown."""
    if os.name != "posix" or os.geteuid() != 0:
        pytest.skip("needs root: installs munge/slurm with apt-get and runs slurmctld/slurmd")
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        pytest.skip("no apt-get to install Debian's slurmctld/slurmd/munge (and none installed)")
    before = {n: p for n, p in _recorded_pids().items() if _alive(p)}
    t0 = time.monotonic()
    proc = subprocess.run(
        ["bash", str(SLURM_SCRIPTS / "start_cluster.sh")],
        capture_output=True, text=True, timeout=900, env=dict(CLEAN_ENV, TSMLIP_SLURM_STATE=str(STATE)),
    )
    if proc.returncode == 2:
        reason = [ln for ln in proc.stderr.splitlines() if "SKIP:" in ln]
        pytest.skip(reason[-1].split("SKIP:", 1)[1].strip() if reason else proc.stderr.strip())
    assert proc.returncode == 0, f"start_cluster.sh failed:\n{proc.stdout}\n{proc.stderr}"
    print(f"cluster ready in {time.monotonic() - t0:.1f}s: {proc.stderr.strip().splitlines()[-2:]}")
    started = {n: p for n, p in _recorded_pids().items() if _alive(p) and before.get(n) != p}
    try:
        yield started
    finally:
        if started:
            subprocess.run(
                ["bash", str(SLURM_SCRIPTS / "stop_cluster.sh")],
                timeout=120, env=dict(CLEAN_ENV, TSMLIP_SLURM_STATE=str(STATE)),
            )
            left = {n: p for n, p in started.items() if _alive(p)}
            for name, pid in left.items():  # the script failed: end them here, by PID
                os.kill(pid, 9)
            assert not left, f"stop_cluster.sh left daemons running: {left}"


# --------------------------------------------------------------------------- tests
TOY_SNAKEFILE = textwrap.dedent(
    r'''
    # one CPU rule, one GPU rule by the profile's set-resources (named like the real one),
    # one GPU rule by its own `resources: gpu=1`; each its own time and memory (the profile sets none)
    rule all:
        input: "results/teacher.txt", "results/declared.txt"

    rule generate_dataset:
        output: "results/data.txt"
        resources: mem_mb=500, runtime=10
        shell: "echo slurm_job=$SLURM_JOB_ID cuda_visible_devices=${{CUDA_VISIBLE_DEVICES:-unset}} > {output}"

    rule train:
        input: "results/data.txt"
        output: "results/teacher.txt"
        threads: 1
        resources: mem_mb=500, runtime=10
        shell:
            "echo slurm_job=$SLURM_JOB_ID cuda_visible_devices=${{CUDA_VISIBLE_DEVICES:-unset}} > {output}; "
            "python -c 'from tsmlip.core.model import resolve_device; print(\"device=\" + str(resolve_device(\"auto\")))' >> {output}"

    rule declared_gpu:
        input: "results/data.txt"
        output: "results/declared.txt"
        resources: gpu=1, mem_mb=500, runtime=10
        shell: "echo slurm_job=$SLURM_JOB_ID cuda_visible_devices=${{CUDA_VISIBLE_DEVICES:-unset}} > {output}"
    '''
)


@pytest.mark.slurm
def test_toy_workflow_on_slurm(slurm_cluster, tmp_path):
    """A toy workflow through the CI profile: sbatch for every job, --gpus=1 for the GPU
    rules, a fake GPU of its own per GPU job (CUDA_VISIBLE_DEVICES), torch on the CPU."""
    (tmp_path / "Snakefile").write_text(TOY_SNAKEFILE)
    env, calls = _snakemake_env(tmp_path)
    proc = _run_snakemake(
        ["--workflow-profile", str(CI_PROFILE), "--snakefile", str(tmp_path / "Snakefile")],
        cwd=tmp_path, env=env, timeout=600,
    )
    log = proc.stdout + proc.stderr
    print(f"toy workflow on SLURM: {proc.wall_s:.1f}s")
    assert proc.returncode == 0, _tail(log)
    by_rule = _check_slurm_evidence(log, calls, gpu_rules=GPU_RULES | {"declared_gpu"})
    assert set(by_rule) == {"generate_dataset", "train", "declared_gpu"}, by_rule

    cpu = (tmp_path / "results" / "data.txt").read_text()
    gpu = (tmp_path / "results" / "teacher.txt").read_text()
    declared = (tmp_path / "results" / "declared.txt").read_text()
    assert f"slurm_job={by_rule['generate_dataset'][0]} " in cpu
    assert "cuda_visible_devices=unset" in cpu
    m_gpu = re.search(rf"slurm_job={by_rule['train'][0]} cuda_visible_devices=(\d)\b", gpu)
    m_decl = re.search(rf"slurm_job={by_rule['declared_gpu'][0]} cuda_visible_devices=(\d)\b", declared)
    assert m_gpu and m_decl, (gpu, declared)  # SLURM gave each GPU job a device
    assert "device=cpu" in gpu  # a fake GPU is no CUDA device: resolve_device("auto") -> CPU
    # two GPU jobs that ran at the same time had different GPUs
    t = {r: _scontrol_job(by_rule[r][0]) for r in ("train", "declared_gpu")}
    overlap = (t["train"]["StartTime"] < t["declared_gpu"]["EndTime"]
               and t["declared_gpu"]["StartTime"] < t["train"]["EndTime"])
    if overlap:
        assert m_gpu.group(1) != m_decl.group(1), (t, gpu, declared)


@pytest.mark.slurm
def test_real_workflow_on_slurm(slurm_cluster, tmp_path):
    """The real workflow, tiny config, through the CI profile, in a scratch directory."""
    snakefile = REPO / "Snakefile"
    if not snakefile.is_file():
        snakefile = REPO / "workflow" / "Snakefile"
    test_cfg = REPO / "config" / "test.yaml"
    if not (snakefile.is_file() and test_cfg.is_file()):
        pytest.skip("the real workflow (Snakefile, config/test.yaml) is not there yet")
    env, calls = _snakemake_env(tmp_path)
    args = [
        "--workflow-profile", str(CI_PROFILE),
        "--snakefile", str(snakefile),
        # config/config.yaml first (the Snakefile's own `configfile:` is relative to the
        # working directory, which is this scratch dir), then the tiny overlay
        "--configfile", str(REPO / "config" / "config.yaml"), str(test_cfg),
        "--config", f"results_dir={tmp_path / 'results'}",
    ]
    proc = _run_snakemake(args, cwd=tmp_path, env=env, timeout=3000)
    log = proc.stdout + proc.stderr
    print(f"real workflow (config/test.yaml) on SLURM: {proc.wall_s:.1f}s")
    assert proc.returncode == 0, _tail(log, 120)
    by_rule = _check_slurm_evidence(log, calls)
    from tsmlip.config import load_config
    from tsmlip.stacks import plan

    # one training job per stack of the fast engine (tsmlip.stacks), the models' files collected locally
    n_stacks = len(plan(load_config(REPO / "config" / "config.yaml", REPO / "config" / "test.yaml")))
    assert n_stacks and len(by_rule.get("train_stack", [])) == n_stacks, sorted(by_rule)
    assert "collect_model" not in by_rule, sorted(by_rule)
    assert GPU_RULES & set(by_rule), sorted(by_rule)

    # every output exists: a second plan finds nothing to do
    plan = _run_snakemake(["-n", *args], cwd=tmp_path, env=env, timeout=300)
    assert plan.returncode == 0, _tail(plan.stdout + plan.stderr)
    assert "Nothing to be done" in plan.stdout + plan.stderr, _tail(plan.stdout + plan.stderr)
    assert any((tmp_path / "results").rglob("model.pt"))


# --------------------------------------------------------------------------- faults on the cluster
# A training job of the real workflow (tiny config), cancelled or requeued by SLURM between two
# checkpoints. The overlay makes the teacher's training long enough to catch mid-way (120 epochs of
# ~0.1 s) and checkpoints every 3 epochs, so the "at most checkpoint_every epochs lost" bound is not
# trivially 1. Only the teacher's metrics.json is asked for (generate_dataset, split, train):
# the rest of the DAG proves nothing more here.
#: one job per model (the per-model rule `train`) so that a fault hits one training; the fast engine's stacks resume
#: from the same kind of checkpoints (tests/test_fast_engine.py: test_killed_stack_resumes_from_checkpoints)
FAULT_OVERLAY = {"training": {"max_epochs": 120, "checkpoint_every": 3, "engine": "hippynn"}}
EPOCH_RE = re.compile(r"\] epoch\s+(\d+)\s+lr ")
RESUMED_RE = re.compile(r"resuming from checkpoint at epoch (\d+)")
SHELL_RE = re.compile(r"^Shell command: (tsmlip train --config-json .* --model-id (\S+) .*)$", re.M)
#: metrics.json keys that may differ between an interrupted and an uninterrupted run (the content hash covers the timings)
NOT_COMPARED = {"wall_time_s", "teacher_labels", "_provenance.output_content"}
#: curve.csv columns that may differ (timings)
CURVE_TIMINGS = {"epoch_time_s", "wall_time_s"}
#: the tolerance of the comparison with an uninterrupted run (measured difference: 0, bit-identical)
REL_TOL, ABS_TOL = 1e-6, 1e-9
_REFERENCE: dict[tuple, tuple[dict, list[dict]]] = {}  # uninterrupted runs, shared by the fault tests


def _fault_setup(tmp: Path) -> tuple[list[str], str, Path]:
    """snakemake arguments for the teacher of config/test.yaml + FAULT_OVERLAY in `tmp`; its model id and
    results dir."""
    import json

    from tsmlip.config import load_config
    from tsmlip.model_ids import teacher_ids

    test_cfg = REPO / "config" / "test.yaml"
    overlay = tmp / "fault_overlay.yaml"
    overlay.write_text(json.dumps(FAULT_OVERLAY) + "\n")  # JSON is YAML
    teacher = str(teacher_ids(load_config(REPO / "config" / "config.yaml", test_cfg, overlay))[0])
    results = tmp / "results"
    args = [
        "--workflow-profile", str(CI_PROFILE),
        "--snakefile", str(REPO / "Snakefile"),
        "--configfile", str(REPO / "config" / "config.yaml"), str(test_cfg), str(overlay),
        "--config", f"results_dir={results}",
        "--", str(results / "models" / teacher / "metrics.json"),
    ]
    return args, teacher, results


def _start_snakemake(args: list[str], cwd: Path, env: dict, name: str) -> tuple[subprocess.Popen, Path]:
    out = cwd / name
    fh = open(out, "w")
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", *args], cwd=cwd, env=env,
                            stdout=fh, stderr=subprocess.STDOUT, text=True)
    fh.close()  # the child has its own copy
    return proc, out


def _job_state(jobid: str) -> str:
    out = subprocess.run(["squeue", "-h", "-t", "all", "-j", jobid, "-o", "%T %r"],
                         capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


def _wait(pred, timeout: float, what: str, proc: subprocess.Popen | None = None, out: Path | None = None,
          every: float = 0.05):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        value = pred()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(every)
    text = out.read_text() if out is not None and out.exists() else ""
    raise AssertionError(f"timed out or snakemake exited waiting for {what}:\n{_tail(text, 80)}")


def _train_job_between_checkpoints(proc, out: Path, ckpt: Path, model_log: Path, teacher: str,
                                   every: int, past: int) -> tuple[str, int]:
    """The SLURM job id of the teacher's training once it has written a checkpoint and then finished
    `past` (< every) more epochs, i.e. in the middle between two checkpoints (and the last logged epoch)."""
    def submitted():
        for _smk, jid, logfile in SUBMITTED_RE.findall(out.read_text()):
            if "/rule_train/" in logfile:
                return jid
        return None

    def between():
        epochs = _epochs(model_log.read_text()) if ckpt.exists() else []  # written by rename: whole
        return epochs[-1] if epochs and epochs[-1] % every == past else None

    jobid = _wait(submitted, 900, "the teacher's train submission", proc, out, every=0.5)
    epoch = _wait(between, 900, f"{teacher} {past} epoch(s) past a checkpoint", proc, out, every=0.01)
    return jobid, epoch


def _epochs(log_text: str) -> list[int]:
    return [int(e) for e in EPOCH_RE.findall(log_text)]


def _train_command(snakemake_out: str, teacher: str) -> str:
    cmds = [m.group(1) for m in SHELL_RE.finditer(snakemake_out) if m.group(2) == teacher]
    assert cmds, "no `tsmlip train` shell command for the teacher in the snakemake output"
    return cmds[0]


def _uninterrupted(train_cmd: str, tmp: Path, env: dict) -> tuple[dict, list[dict]]:
    """metrics.json and curve.csv of the same model trained in one go with `tsmlip train` (the rule's own
    command, other output and checkpoint dirs): the run the interrupted one must reproduce."""
    import csv
    import hashlib
    import json
    import shlex

    argv = shlex.split(train_cmd.split(" > ", 1)[0])
    opts = dict(zip(argv[2::2], argv[3::2]))
    data = tuple(hashlib.sha256(Path(opts[k]).read_bytes()).hexdigest() if k in opts else None
                 for k in ("--dataset", "--split", "--labels"))
    key = (opts["--model-id"], opts["--config-json"], data)  # the inputs' contents, not their paths
    if key not in _REFERENCE:
        ref = tmp / "uninterrupted"
        opts["--out-dir"], opts["--checkpoint-dir"] = str(ref / "model"), str(ref / "checkpoint")
        cmd = [shutil.which("tsmlip", path=env["PATH"]) or "tsmlip", "train"]
        for k, v in opts.items():
            cmd += [k, v]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, _tail(proc.stdout + proc.stderr)
        print(f"uninterrupted reference run (tsmlip train): {time.monotonic() - t0:.1f}s")
        with open(ref / "model" / "curve.csv") as fh:
            _REFERENCE[key] = (json.loads((ref / "model" / "metrics.json").read_text()), list(csv.DictReader(fh)))
    return _REFERENCE[key]


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _close(a, b) -> tuple[bool, float]:
    """Equal strings/ints/None, or floats within REL_TOL/ABS_TOL (NaN == NaN); and |a - b|."""
    import math

    if isinstance(a, str) or isinstance(b, str) or a is None or b is None or isinstance(a, list):
        return a == b, 0.0
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b), 0.0
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL), abs(a - b)


def _compare_with_uninterrupted(results: Path, teacher: str, reference: tuple[dict, list[dict]]) -> float:
    """metrics.json and curve.csv (timings aside) of the interrupted run equal the uninterrupted run's within
    REL_TOL/ABS_TOL; returns the largest absolute difference found."""
    import csv
    import json

    ref_metrics, ref_curve = reference
    got = _flat(json.loads((results / "models" / teacher / "metrics.json").read_text()))
    want = _flat(ref_metrics)
    assert set(got) == set(want), set(got) ^ set(want)
    worst = 0.0
    for k in sorted(set(want) - NOT_COMPARED):
        ok, diff = _close(got[k], want[k])
        assert ok, f"metrics.json {k}: resumed {got[k]!r}, uninterrupted {want[k]!r}"
        worst = max(worst, diff)
    with open(results / "models" / teacher / "curve.csv") as fh:
        curve = list(csv.DictReader(fh))
    assert [r["epoch"] for r in curve] == [r["epoch"] for r in ref_curve]
    for row, ref in zip(curve, ref_curve):
        for col in set(ref) - CURVE_TIMINGS:
            ok, diff = _close(row[col], ref[col])
            assert ok, f"curve.csv epoch {row['epoch']} {col}: resumed {row[col]}, uninterrupted {ref[col]}"
            worst = max(worst, diff)
    return worst


def _check_resumed(log_text: str, reached: int, every: int, max_epochs: int) -> int:
    """The rerun resumed from the last checkpoint before `reached` and went on from there."""
    resumed = [int(k) for k in RESUMED_RE.findall(log_text)]
    assert len(resumed) == 1, "the rerun did not resume from the checkpoint:\n" + _tail(log_text)
    k = resumed[0]
    assert k % every == 0 and k <= reached, (k, reached, every)
    assert reached - k <= every, f"lost {reached - k} epochs (> checkpoint_every={every})"
    run = _epochs(log_text)  # nothing run twice, nothing skipped (patience may end it before max_epochs)
    assert run and run == list(range(k + 1, run[-1] + 1)) and run[-1] <= max_epochs, _tail(log_text)
    return k


@pytest.mark.slurm
def test_scancel_mid_training_resumes_from_checkpoint(slurm_cluster, tmp_path):
    """`scancel` of the teacher's training job one epoch past a checkpoint: Snakemake reports the job
    CANCELLED and stops with an error (the CI profile has no `retries`); rerunning the same command
    resubmits the job, which resumes from the checkpoint, loses at most `checkpoint_every` epochs and
    ends with the metrics.json and curve.csv of an uninterrupted `tsmlip train` of the same model and
    seed. The comparison allows REL_TOL/ABS_TOL but the measured difference is 0: on one CPU thread a
    resumed run is bit-identical (model, optimizer, scheduler, patience state, the torch and data-order
    RNG states are all in the checkpoint); only the timings (wall_time_s, curve timings) differ."""
    t_test = time.monotonic()
    every, max_epochs = FAULT_OVERLAY["training"]["checkpoint_every"], FAULT_OVERLAY["training"]["max_epochs"]
    env, _ = _snakemake_env(tmp_path)
    args, teacher, results = _fault_setup(tmp_path)
    ckpt = results / "checkpoints" / teacher / "checkpoint.pt"
    model_log = results / "logs" / "train" / f"{teacher}.log"  # the rule's log: `tsmlip train` output

    proc, out = _start_snakemake(args, tmp_path, env, "snakemake_cancelled.out")
    try:
        jobid, seen = _train_job_between_checkpoints(proc, out, ckpt, model_log, teacher, every, past=1)
        subprocess.run(["scancel", jobid], check=True, timeout=30)
        t_cancel = time.monotonic()
        assert proc.wait(timeout=600) != 0, _tail(out.read_text())
    finally:
        if proc.poll() is None:
            proc.kill()
    first = out.read_text()
    assert f"SLURM-job '{jobid}' failed, SLURM status is: 'CANCELLED'" in first, _tail(first)
    _wait(lambda: _job_state(jobid).startswith("CANCELLED"), 120, f"job {jobid} to end")
    assert not (results / "models" / teacher / "metrics.json").exists()
    reached = max(_epochs(model_log.read_text()))  # the last epoch the cancelled job finished
    assert reached < max_epochs, "training ended before it was cancelled"

    rerun = _run_snakemake(args, cwd=tmp_path, env=env, timeout=900)
    log = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, _tail(log, 120)
    second = [j for _s, j, f in SUBMITTED_RE.findall(log) if "/rule_train/" in f]
    assert len(second) == 1 and second[0] != jobid, second
    assert _scontrol_job(second[0])["JobState"] == "COMPLETED"
    k = _check_resumed(model_log.read_text(), reached, every, max_epochs)
    worst = _compare_with_uninterrupted(results, teacher, _uninterrupted(_train_command(first, teacher), tmp_path, env))
    print(f"scancel: sent after epoch {seen} was logged, job {jobid} cancelled after epoch {reached}, "
          f"rerun (job {second[0]}, {rerun.wall_s:.0f}s) resumed at epoch {k}: {reached - k} epoch(s) lost "
          f"(checkpoint_every={every}); largest metric difference to an uninterrupted run {worst:.3g}; "
          f"{time.monotonic() - t_cancel:.0f}s from scancel to the end; test {time.monotonic() - t_test:.0f}s")


@pytest.mark.slurm
def test_requeue_mid_training_resumes_from_checkpoint(slurm_cluster, tmp_path):
    """`scontrol requeue` of the teacher's training job two epochs past a checkpoint. SLURM kills the job
    and puts it back in the queue under the same job id (Restarts=1); the plugin reads PENDING/RUNNING as
    "still active", so the running Snakemake just keeps waiting -- no error, no resubmission, no
    `slurm-requeue: true` needed (that option only adds `sbatch --requeue`, for clusters whose
    JobRequeue=0; `scontrol requeue` works on any batch job not submitted with --no-requeue). The job
    runs again from the top, `tsmlip train` resumes from the checkpoint (at most `checkpoint_every`
    epochs lost) and the model equals an uninterrupted run, as after scancel.

    SLURM holds a requeued job back for about two minutes (Reason=BeginTime; 122 s measured on the CI
    cluster) before it may start again; the test reads the killed job's log in that window (the rerun
    overwrites it, and the SLURM log too: open-mode truncate) and then releases the job with
    `scontrol update StartTime=now` to save those two minutes of CI time."""
    t_test = time.monotonic()
    every, max_epochs = FAULT_OVERLAY["training"]["checkpoint_every"], FAULT_OVERLAY["training"]["max_epochs"]
    env, _ = _snakemake_env(tmp_path)
    args, teacher, results = _fault_setup(tmp_path)
    ckpt = results / "checkpoints" / teacher / "checkpoint.pt"
    model_log = results / "logs" / "train" / f"{teacher}.log"  # the rule's log: `tsmlip train` output

    proc, out = _start_snakemake(args, tmp_path, env, "snakemake_requeued.out")
    try:
        jobid, seen = _train_job_between_checkpoints(proc, out, ckpt, model_log, teacher, every, past=2)
        subprocess.run(["scontrol", "requeue", jobid], check=True, timeout=30)
        t_requeue = time.monotonic()
        state = _wait(lambda: (s := _job_state(jobid)).startswith("PENDING") and s, 120,
                      f"job {jobid} back in the queue", proc, out)
        # the requeue hold (Reason=BeginTime) can show a moment after the job is back in the queue (seen: "None")
        assert state in ("PENDING BeginTime", "PENDING None"), state
        assert "resuming" not in model_log.read_text(), "the requeued job started before its log was read"
        reached = max(_epochs(model_log.read_text()))  # the last epoch the killed run finished
        assert reached < max_epochs, "training ended before it was requeued"
        assert not (results / "models" / teacher / "metrics.json").exists()
        held = _scontrol_job(jobid)
        subprocess.run(["scontrol", "update", f"JobId={jobid}", "StartTime=now"], check=True, timeout=30)
        rc = proc.wait(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = out.read_text()
    assert rc == 0, (_tail(log, 120) + "\n--- the rule's log (tsmlip train) ---\n"
                     + (_tail(model_log.read_text(), 60) if model_log.exists() else "(missing)"))
    submitted = [j for _s, j, f in SUBMITTED_RE.findall(log) if "/rule_train/" in f]
    assert submitted == [jobid], submitted  # Snakemake did not notice: the same job finished
    job = _scontrol_job(jobid)
    assert job["JobState"] == "COMPLETED" and job["Restarts"] == "1", job
    k = _check_resumed(model_log.read_text(), reached, every, max_epochs)
    worst = _compare_with_uninterrupted(results, teacher, _uninterrupted(_train_command(log, teacher), tmp_path, env))
    print(f"requeue: sent after epoch {seen} was logged, job {jobid} requeued after epoch {reached} "
          f"(held until {held.get('StartTime')}, released), resumed at epoch {k}: {reached - k} epoch(s) lost "
          f"(checkpoint_every={every}); largest metric difference to an uninterrupted run {worst:.3g}; "
          f"{time.monotonic() - t_requeue:.0f}s from requeue to the end; test {time.monotonic() - t_test:.0f}s")


def _plan(profile: Path, extra_env: dict | None = None, configfile: str = "config/test.yaml") -> str:
    env = dict(CLEAN_ENV, **(extra_env or {}))
    for k in [k for k in env if k.startswith("TSMLIP_SLURM_")]:
        if not extra_env or k not in extra_env:
            del env[k]
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--workflow-profile", str(profile),
         "--configfile", configfile],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, _tail(out)
    return out


def _resources_by_rule(plan: str) -> dict[str, str]:
    res = {}
    for m in re.finditer(r"^(?:local)?rule (\w+):\n(?:.*\n)*?\s+resources: (.*)$", plan, re.M):
        res.setdefault(m.group(1), m.group(2))
    return res


def _local_gpus() -> int:
    """GPUs NVML sees here (0 without a driver), as workflow/rules/common.smk counts them."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return pynvml.nvmlDeviceGetCount()
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        return 0


def test_profiles_plan():
    """No cluster needed: the profiles parse and plan the workflow (snakemake -n), the GPU
    rules ask for gpu=1 and the site variables reach the resources."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    if not (REPO / "config" / "test.yaml").is_file() or not (
        (REPO / "Snakefile").is_file() or (REPO / "workflow" / "Snakefile").is_file()
    ):
        pytest.skip("the real workflow is not there yet")
    from tsmlip.config import load_config, rule_resources

    cfg = load_config(REPO / "config" / "config.yaml", REPO / "config" / "test.yaml")
    assert {"train", "train_stack", "md_timing", "synthesize"} <= GPU_RULES
    for profile in (SITE_PROFILE, CI_PROFILE, DEFAULT_PROFILE):
        res = _resources_by_rule(_plan(profile))
        assert res, profile
        for rule, line in res.items():  # time and memory: the rule's row of the table, whatever the profile
            if rule in cfg["resources"]:
                row = rule_resources(cfg, rule)
                assert f"mem_mb={row.mem_mb}," in line and re.search(rf"\bruntime={row.runtime_min}\b", line), \
                    (profile.name, rule, line)
        for rule, line in res.items():
            if rule in GPU_RULES:
                # the cluster profiles always ask for a GPU; on a workstation the rules ask for one only
                # where there is one (common.smk: GPU_JOB), so a CPU-only machine does not stall on gpu=1
                want = "gpu=1" if profile != DEFAULT_PROFILE or _local_gpus() else "gpu=0"
                assert want in line, (profile.name, rule, line)
            elif profile != DEFAULT_PROFILE:
                assert "gpu=" not in line, (profile.name, rule, line)

    site = _resources_by_rule(
        _plan(SITE_PROFILE, {"TSMLIP_SLURM_ACCOUNT": "acct1", "TSMLIP_SLURM_PARTITION": "cpuq",
                             "TSMLIP_SLURM_GPU_PARTITION": "gpuq", "TSMLIP_SLURM_GPU_MODEL": "a100"})
    )
    assert "train_stack" in site and "rdf_md_stack" in site and "split" in site, sorted(site)
    for rule, line in site.items():
        assert "slurm_account=acct1" in line, (rule, line)
        if rule in GPU_RULES:
            assert "slurm_partition=gpuq" in line and "gpu_model=a100" in line, (rule, line)
        else:
            assert "slurm_partition=cpuq" in line and "gpu_model" not in line, (rule, line)
