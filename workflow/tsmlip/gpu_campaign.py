"""The paper's GPU cost figures (Figs 2 and 5) in one call of at most 8 minutes on one GPU.

Sections, each with its own time budget (seconds, ``--budget SECTION=S``; the GPU defaults sum to
:data:`GPU_TOTAL_S`), in this order:

- ``data``: EMT aluminum configurations generated here (:func:`tsmlip.data.emt.generate`, shortened runs);
- ``train``: five models trained a few seconds each with the project's training step
  (:func:`tsmlip.train.train_step`, the teacher's ground-truth loss; accuracy does not matter here, cost
  depends only on the architecture), or loaded (``--model ROLE=model.pt``): the paper's teacher (128 / 40 / 4,
  config/paper.yaml ``teacher``), two paper-network students (the smallest of config/paper.yaml's sweep and
  its base), the default config's teacher and its smallest student (config/config.yaml ``teacher``, ``sweep.base``);
- ``train_throughput``: ms per training step at batch 8 and 64 of the paper's smallest student and teacher;
- ``md_timing``: time per MD step per atom (:func:`tsmlip.md.timing.time_md`: warm-up excluded, median of
  repeated blocks, energy drift) at the paper's size (config/paper.yaml ``md.timing.n_atoms``: 48,000) and at
  4,000 atoms, with both engines (``ase``: ASE + HippynnCalculator as in the paper; ``torch``);
- ``max_atoms``: the most atoms per GPU (:func:`tsmlip.md.probe.probe_max_atoms`, growing then bisecting) with
  hippynn's GPU kernels on (``auto``: its pick, e.g. triton) and off (``pytorch``), on the whole card and
  under the paper's card size (config/config.yaml ``paper_reference.md_cost.gpu_memory_GB``, enforced with
  ``torch.cuda.set_per_process_memory_fraction``); memory per atom as budget / max atoms and as the slope.

Every measurement has its own time limit (the smaller of its default and what its section has left): at
``SOFT_FRACTION`` of it the measurement stops where it can and keeps what it has (fewer MD blocks, a
probe's lower bound), at the limit an alarm ends it (``status: timed_out``). The JSON
(``<out>/gpu_campaign.json``) is rewritten atomically after every measurement and stays ``"partial": true``
until every measurement finished ``ok``; the markdown table (``<out>/gpu_campaign.md``) is written at the end
(and when the run is interrupted). Progress lines go to stdout. Memory: torch's default caching allocator
(``cudaMalloc``, no managed / unified memory) with the per-process fraction at most 1, so nothing is ever
requested beyond the card.

It needs only torch, numpy, scipy, hippynn and ase (no PyYAML, snakemake, vesin, pandas or matplotlib):
without PyYAML the settings come from a JSON snapshot of config/config.yaml and config/paper.yaml that the
prepare step writes (``--write-config-snapshot``). Prepare here, run on the GPU machine (docs/md.md, "GPU
campaign")::

    make gpu-wheels      # pip download --no-deps hippynn ase -> gpu_wheels/ + gpu_wheels/campaign_config.json
    python3 -m pip install --no-deps --target /tmp/site gpu_wheels/*.whl && \\
        PYTHONPATH=/tmp/site:workflow python3 scripts/gpu_campaign.py --out $OUT/gpu_campaign

``--smoke``: tiny models and systems on the CPU (well under a minute; ``tests/test_gpu_campaign.py``): every
section and field, MD and the probe for two of the roles (:data:`SMOKE_ROLES`), ``"smoke": true``.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import signal
import statistics
import sys
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASE_CONFIG = ROOT / "config" / "config.yaml"
PAPER_CONFIG = ROOT / "config" / "paper.yaml"  # an overlay on BASE_CONFIG
#: the JSON snapshot of both configs, for machines without PyYAML (written by ``--write-config-snapshot``)
DEFAULT_SNAPSHOT = ROOT / "gpu_wheels" / "campaign_config.json"

SECTIONS = ("data", "train", "train_throughput", "md_timing", "max_atoms")
#: GPU time budgets per section (s); their sum, with ~20 s of imports and start-up, stays under 8 minutes
GPU_BUDGET_S = {"data": 30.0, "train": 50.0, "train_throughput": 25.0, "md_timing": 185.0, "max_atoms": 160.0}
GPU_TOTAL_S = sum(GPU_BUDGET_S.values())
#: CPU smoke budgets (s): caps far above what the tiny sizes need (~40 s in all on one free core), so that a
#: loaded machine finishes every measurement too, only later
SMOKE_BUDGET_S = {"data": 60.0, "train": 120.0, "train_throughput": 60.0, "md_timing": 150.0, "max_atoms": 150.0}
#: the smoke run's limit per measurement (s)
SMOKE_LIMIT_S = 60.0
#: a measurement stops where it can (keeping what it has) at this fraction of its limit; the alarm at 1.0
SOFT_FRACTION = 0.8
#: a measurement with less time than this left in its section is skipped
MIN_LIMIT_S = 0.5

#: the models: role -> (which config, where its architecture comes from)
ROLES = ("paper_teacher", "paper_student_small", "paper_student_base", "default_teacher", "default_student")
TEACHERS = {"paper_teacher": None, "paper_student_small": "paper_teacher", "paper_student_base": "paper_teacher",
            "default_teacher": None, "default_student": "default_teacher"}  # role -> its teacher (ratios)
THROUGHPUT_ROLES = ("paper_student_small", "paper_teacher")
#: the smoke run's MD and probe roles (every role is trained; the table's other rows stay "-")
SMOKE_ROLES = ("paper_teacher", "paper_student_small")
SMALL_SIZE = 4000  # atoms: the second MD size (the first is the paper's, config/paper.yaml md.timing.n_atoms)
GB = 10 ** 9
MB = 1 << 20


class TimeLimit(BaseException):
    """A measurement's hard time limit (a BaseException: no ``except Exception`` inside swallows it)."""


# ------------------------------------------------------------------------------------------- settings
def write_config_snapshot(path: str | Path) -> dict:
    """Write the validated config/config.yaml and its config/paper.yaml overlay as one JSON file
    (``{"default": ..., "paper": ...}``), for running where PyYAML is not installed."""
    from .config import load_config
    from .io_utils import atomic_write_json

    snap = {"default": load_config(BASE_CONFIG), "paper": load_config(BASE_CONFIG, PAPER_CONFIG),
            "sources": [str(BASE_CONFIG.relative_to(ROOT)), str(PAPER_CONFIG.relative_to(ROOT))]}
    atomic_write_json(path, snap)
    return snap


def load_configs(snapshot: str | Path | None = None) -> tuple[dict, dict, str]:
    """(default config, paper config, where they came from): the YAML files when PyYAML and jsonschema
    are importable and no ``snapshot`` is named, else the JSON snapshot (:func:`write_config_snapshot`)."""
    if snapshot is None:
        try:
            from .config import load_config

            return load_config(BASE_CONFIG), load_config(BASE_CONFIG, PAPER_CONFIG), "config/*.yaml"
        except ImportError as exc:
            snapshot = DEFAULT_SNAPSHOT
            if not snapshot.exists():
                raise SystemExit(f"gpu_campaign: {exc.name} is not installed and there is no config snapshot at "
                                 f"{snapshot}: run `make gpu-wheels` (or --write-config-snapshot) where it is")
    snap = json.loads(Path(snapshot).read_text())
    return snap["default"], snap["paper"], str(snapshot)


def model_plan(default_cfg: dict, paper_cfg: dict, smoke: bool) -> dict:
    """role -> {"arch", "network"}: the paper's network (7.5 A) for the paper's models, the default's (6.0 A)
    for the default config's. Smoke: tiny architectures, same roles and networks."""
    from .config import Arch, teacher_arch

    sw = paper_cfg["sweep"]
    archs = {
        "paper_teacher": teacher_arch(paper_cfg),
        "paper_student_small": Arch(min(sw["width"]), min(sw["n_sensitivities"]), min(sw["n_atom_layers"])),
        "paper_student_base": Arch.from_dict(sw["base"]),
        "default_teacher": teacher_arch(default_cfg),
        "default_student": Arch.from_dict(default_cfg["sweep"]["base"]),
    }
    if smoke:
        archs = {"paper_teacher": Arch(8, 4, 2), "paper_student_small": Arch(4, 2, 1),
                 "paper_student_base": Arch(6, 4, 1), "default_teacher": Arch(6, 4, 2),
                 "default_student": Arch(4, 2, 1)}
    return {role: {"arch": archs[role],
                   "network": (paper_cfg if role.startswith("paper") else default_cfg)["network"]}
            for role in ROLES}


def settings(default_cfg: dict, paper_cfg: dict, smoke: bool, args) -> dict:
    """Sizes, steps and per-measurement limits of the run (GPU or smoke), with the command line's overrides."""
    big = int(paper_cfg["md"]["timing"]["n_atoms"])
    s = {
        "md_sizes": [big, SMALL_SIZE],
        "md_steps": 10, "md_warmup": 3, "md_repeats": 3,
        "md_limit_s": {"ase": {big: 60.0, SMALL_SIZE: 15.0}, "torch": {big: 25.0, SMALL_SIZE: 12.0}},
        "n_configs": 90, "train_s": 6.0, "train_reserve_s": 8.0, "throughput_batches": [8, 64], "throughput_steps": 20,
        "probe": {"start_atoms": 16000, "growth_factor": 2.0, "resolution": 0.15, "max_atoms_cap": 20_000_000},
        "probe_limit_s": 15.0, "throughput_limit_s": 15.0, "cap_GB": float(default_cfg["paper_reference"]["md_cost"]["gpu_memory_GB"]),
        "fake_oom_above": None, "roles": list(ROLES),
    }
    if smoke:
        s.update(md_sizes=[64, 32], md_steps=2, md_warmup=1, md_repeats=2,
                 md_limit_s={e: {64: SMOKE_LIMIT_S, 32: SMOKE_LIMIT_S} for e in ("ase", "torch")},
                 n_configs=10, train_s=0.2, train_reserve_s=5.0, throughput_batches=[2, 4], throughput_steps=2,
                 probe={"start_atoms": 32, "growth_factor": 2.0, "resolution": 1.0, "max_atoms_cap": 4096},
                 probe_limit_s=SMOKE_LIMIT_S, throughput_limit_s=SMOKE_LIMIT_S, fake_oom_above=200,
                 roles=list(SMOKE_ROLES))
    for key in ("md_steps", "md_warmup", "md_repeats", "n_configs", "train_s", "probe_limit_s"):
        if getattr(args, key, None) is not None:
            s[key] = getattr(args, key)
    if getattr(args, "md_sizes", None):
        s["md_sizes"] = list(args.md_sizes)
    return s


def emt_settings(default_cfg: dict, n_configs: int, smoke: bool) -> dict:
    """The default config's EMT generator settings, shortened (a few MD steps per trajectory: the
    configurations only need to be aluminum-like)."""
    from .config import deep_merge

    short = {"n_configs": int(n_configs), "equilibration_steps": 5 if smoke else 10,
             "steps_between_snapshots": 3 if smoke else 5, "snapshots_per_trajectory": 5 if smoke else 10,
             "liquid": {"melt_steps": 5 if smoke else 20}}
    if smoke:
        short["supercells"] = [[2, 2, 2]]
        short["liquid"]["supercells"] = [[2, 2, 2]]
    return deep_merge(default_cfg["data"]["emt"], short)


def md_settings(default_cfg: dict, s: dict, n_atoms: int, kernels: str = "auto") -> dict:
    """The default ``md:`` section for one measurement: the torch engine's pair search is ``cell_list`` on both
    device types (no vesin-torch needed), timing steps of the campaign."""
    from .config import deep_merge

    return deep_merge(default_cfg["md"], {
        "kernels": kernels, "pair_finder": {"cpu": "cell_list", "cuda": "cell_list"},
        "timing": {"n_atoms": int(n_atoms), "steps": int(s["md_steps"]), "warmup_steps": int(s["md_warmup"]),
                   "repeats": int(s["md_repeats"]), "torch_threads": 1},
        "probe": {"engine": "torch", **s["probe"]}})


# ------------------------------------------------------------------------------------------ the runner
@contextlib.contextmanager
def hard_limit(seconds: float):
    """Raise :class:`TimeLimit` in this (main) thread after ``seconds`` (SIGALRM); a no-op elsewhere."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def on_alarm(signum, frame):
        raise TimeLimit(f"time limit of {seconds:.1f} s reached")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(float(seconds), 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class Campaign:
    """The results and the clock: sections with budgets, measurements with limits, atomic JSON after each."""

    def __init__(self, out_dir: str | Path, budgets: dict, header: dict, total_s: float | None = None):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.json_path = self.out_dir / "gpu_campaign.json"
        self.md_path = self.out_dir / "gpu_campaign.md"
        self.t0 = time.perf_counter()
        self.budgets = dict(budgets)
        self.total_s = total_s
        self.section_end = None
        self.section_name = None
        self.doc = {"partial": True, "finished": False, **header, "budgets_s": self.budgets,
                    "total_limit_s": total_s, "sections": {name: {"budget_s": self.budgets[name], "seconds": None,
                                                                  "records": []} for name in SECTIONS}}
        self.write()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def say(self, msg: str) -> None:
        print(f"[gpu-campaign {self.elapsed():6.1f} s] {msg}", flush=True)

    @contextlib.contextmanager
    def section(self, name: str):
        self.section_name, start = name, time.perf_counter()
        self.section_end = start + float(self.budgets[name])
        if self.total_s is not None:
            self.section_end = min(self.section_end, self.t0 + float(self.total_s))
        self.say(f"section {name}: budget {self.budgets[name]:.0f} s")
        try:
            yield
        finally:
            self.doc["sections"][name]["seconds"] = time.perf_counter() - start
            self.write()

    def measure(self, key: dict, fn, limit_s: float, empty: dict) -> dict:
        """Run ``fn(soft_deadline)`` (a dict of results) within ``limit_s`` and what the section has left;
        append ``{**key, **empty, **result, status, limit_s, seconds}`` to the section and write the JSON.
        ``empty`` names every field with None, so a skipped or failed measurement has them all too."""
        import torch

        left = self.section_end - time.perf_counter()
        limit = min(float(limit_s), left)
        rec = {**key, **empty, "status": None, "limit_s": round(max(limit, 0.0), 3), "seconds": 0.0, "error": None}
        label = " ".join(f"{k}={v}" for k, v in key.items())
        if limit < MIN_LIMIT_S:
            rec.update(status="skipped", error=f"section time limit ({left:.1f} s left)")
        else:
            self.say(f"{self.section_name}: {label} (limit {limit:.0f} s)")
            t0 = time.perf_counter()
            try:
                with hard_limit(limit):
                    out = fn(t0 + SOFT_FRACTION * limit)
                rec.update(out)
                rec["status"] = "timed_out" if out.get("timed_out") else "ok"
            except TimeLimit as exc:
                rec.update(status="timed_out", error=str(exc))
            except (torch.cuda.OutOfMemoryError, MemoryError) as exc:
                rec.update(status="out_of_memory", error=f"{type(exc).__name__}: {str(exc)[:300]}")
            except Exception as exc:  # one failed measurement must not end the campaign
                rec.update(status="error", error=f"{type(exc).__name__}: {str(exc)[:300]}",
                           traceback=traceback.format_exc()[-3000:])
            finally:
                gc.collect()  # tensors of an interrupted step, before the next measurement
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            rec["seconds"] = round(time.perf_counter() - t0, 3)
        self.say(f"{self.section_name}: {label} -> {rec['status']} ({rec['seconds']:.1f} s)"
                 + (f": {rec['error']}" if rec["error"] else ""))
        self.doc["sections"][self.section_name]["records"].append(rec)
        self.write()
        return rec

    def write(self) -> None:
        from .io_utils import atomic_write_json

        self.doc["elapsed_s"] = round(self.elapsed(), 3)
        atomic_write_json(self.json_path, _finite(self.doc))

    def finish(self) -> None:
        recs = [r for sec in self.doc["sections"].values() for r in sec["records"]]
        self.doc["finished"] = True
        self.doc["partial"] = not recs or any(r["status"] != "ok" for r in recs)
        self.doc["status_counts"] = {s: sum(r["status"] == s for r in recs) for s in sorted({r["status"] for r in recs})}
        self.write()


def _finite(obj):
    """``obj`` with non-finite floats as None (the JSON refuses NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


# -------------------------------------------------------------------------------------------- sections
def device_facts(device) -> dict:
    """The device and software: name, memory, driver (NVML, else nvidia-smi, else /proc), torch, hippynn and
    ase versions, the kernels hippynn picks with ``auto``, the allocator."""
    import torch

    from .md.engines import set_kernels
    from .md.hardware import hardware_info

    info = hardware_info(device)
    gpu = info.get("gpu", {})
    facts = {
        "device_type": device.type, "device_name": info["device_name"],
        "total_memory_bytes": gpu.get("total_memory_bytes"), "compute_capability": gpu.get("compute_capability"),
        "driver_version": gpu.get("driver_version") or (_driver_version() if device.type == "cuda" else None),
        "torch": info["torch"], "torch_cuda": torch.version.cuda, "hippynn": info["hippynn"], "ase": info["ase"],
        "numpy": info["numpy"], "python": info["python"], "triton": _version("triton"),
        "kernels_on": set_kernels("auto", device), "kernels_off": set_kernels("pytorch", device),
        "allocator": (torch.cuda.get_allocator_backend() if device.type == "cuda" else None),
        "PYTORCH_CUDA_ALLOC_CONF": os.environ.get("PYTORCH_CUDA_ALLOC_CONF"),
        "cpu": info["cpu"]["model"], "hardware": info,
    }
    return facts


def _version(name: str):
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _driver_version():
    import subprocess

    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return Path("/proc/driver/nvidia/version").read_text().splitlines()[0]
    except OSError:
        return None


def make_data(camp: Campaign, default_cfg: dict, s: dict, smoke: bool, state: dict) -> None:
    def run(soft):
        from .data.emt import generate, to_arrays
        from .data.split import make_split

        configs, summary = generate(emt_settings(default_cfg, s["n_configs"], smoke), progress=False)
        arrays = to_arrays(configs)
        state["arrays"] = arrays
        state["split"] = make_split(len(arrays["E"]), 0.1, 0.1, seed=0)
        return {"n_configs": len(configs), "n_atoms_per_config": sorted({int(n) for n in (arrays["Z"] != 0).sum(1)}),
                "n_train": int(len(state["split"]["train"]))}

    camp.measure({"what": "emt_data"}, run, camp.budgets["data"],
                 {"n_configs": None, "n_atoms_per_config": None, "n_train": None})


TRAIN_EMPTY = {"arch": None, "n_weights": None, "network_cutoff_A": None, "source": None, "train_steps": None,
               "train_s": None, "last_loss": None, "model_path": None}


def assemble(default_cfg: dict, spec: dict, state: dict, device):
    """The project's training set-up (:func:`tsmlip.train._assemble`) for one role: teacher loss, seed 0."""
    from .config import ModelId, deep_merge
    from .train import _assemble, _Data

    cfg = deep_merge(default_cfg, {"network": spec["network"]})
    data = _Data(state["arrays"], state["split"], None, False)
    return _assemble(ModelId("teacher", spec["arch"], 0), cfg, data, device), cfg


def train_models(camp: Campaign, default_cfg: dict, plan: dict, s: dict, given: dict, state: dict, device) -> None:
    """Train (a few seconds each) or load every role's model; ``state["models"][role]`` = its model.pt."""
    import torch

    from .model import build_model, count_weights, read_model_payload, save_model

    state["models"], state["runs"] = {}, {}
    model_dir = camp.out_dir / "models"
    for i, role in enumerate(ROLES):
        spec = plan[role]

        def run(soft, role=role, spec=spec):
            path = model_dir / f"{role}.pt"
            if role in given:
                payload = read_model_payload(given[role])
                state["models"][role] = Path(given[role])
                return {"arch": "w{width}-s{n_sensitivities}-l{n_atom_layers}".format(**payload["arch"]),
                        "n_weights": payload.get("n_weights"),
                        "network_cutoff_A": payload["network_cfg"]["dist_hard_max"], "source": "loaded",
                        "model_path": str(given[role])}
            if "arrays" not in state:  # no data: random weights (cost does not depend on them)
                graph = build_model(spec["arch"], spec["network"], seed=0)
                save_model(graph, path, campaign_role=role, trained=False)
                state["models"][role] = path
                return {"arch": spec["arch"].tag, "n_weights": count_weights(graph),
                        "network_cutoff_A": spec["network"]["dist_hard_max"], "source": "random (no data)",
                        "model_path": str(path)}
            run_, cfg = assemble(default_cfg, spec, state, device)
            opt = torch.optim.Adam([p for p in run_.model.parameters() if p.requires_grad],
                                   lr=cfg["training"]["learning_rate"])
            steps, loss, t0 = 0, None, time.perf_counter()
            end = min(soft, t0 + float(s["train_s"]))
            from .train import train_step

            run_.model.train()
            while time.perf_counter() < end or steps == 0:
                for batch in run_.batches["train"].batches(cfg["training"]["batch_size"], shuffle=True):
                    loss, _ = train_step(run_, opt, batch, run_.schedule(1))
                    steps += 1
                    if time.perf_counter() >= end:
                        break
            save_model(run_.graph, path, campaign_role=role, trained=True, train_steps=steps)
            state["models"][role] = path
            if role in THROUGHPUT_ROLES:
                state["runs"][role] = (run_, cfg)
            return {"arch": spec["arch"].tag, "n_weights": run_.n_weights,
                    "network_cutoff_A": spec["network"]["dist_hard_max"], "source": "trained",
                    "train_steps": steps, "train_s": time.perf_counter() - t0,
                    "last_loss": None if loss is None else float(loss), "model_path": str(path)}

        # what the section has left, less a reserve for each model still to come (the first model also pays
        # for the imports and kernel compilation)
        left = camp.section_end - time.perf_counter()
        limit = max(left / (len(ROLES) - i), left - (len(ROLES) - i - 1) * s["train_reserve_s"])
        rec = camp.measure({"role": role}, run, limit, TRAIN_EMPTY)
        if role not in state["models"]:  # training failed or ran out of time: random weights, so MD can go on
            path = model_dir / f"{role}.pt"
            graph = build_model(spec["arch"], spec["network"], seed=0)
            save_model(graph, path, campaign_role=role, trained=False)
            state["models"][role] = path
            rec.update(arch=spec["arch"].tag, n_weights=count_weights(graph), source="random (training stopped)",
                       network_cutoff_A=spec["network"]["dist_hard_max"], model_path=str(path))
            camp.write()


THROUGHPUT_EMPTY = {"arch": None, "ms_per_step": None, "ms_per_step_all": None, "configs_per_s": None,
                    "steps_timed": None}


def train_throughput(camp: Campaign, default_cfg: dict, plan: dict, s: dict, state: dict, device) -> None:
    """ms per training step (forward, loss, backward, Adam) at each batch size; median of single steps after
    two warm-up steps."""
    import torch

    from .train import train_step

    for role in THROUGHPUT_ROLES:
        for bs in s["throughput_batches"]:
            def run(soft, role=role, bs=int(bs)):
                if role not in state["runs"]:
                    state["runs"][role] = assemble(default_cfg, plan[role], state, device)
                run_, cfg = state["runs"][role]
                opt = torch.optim.Adam([p for p in run_.model.parameters() if p.requires_grad], lr=1e-4)
                run_.model.train()
                times, n = [], int(s["throughput_steps"]) + 2
                while len(times) < n and time.perf_counter() < soft:
                    for batch in run_.batches["train"].batches(bs, shuffle=True):
                        if len(batch[0]) < bs:  # the last, short batch of an epoch
                            continue
                        _sync(device)
                        t0 = time.perf_counter()
                        train_step(run_, opt, batch, run_.schedule(1))
                        _sync(device)
                        times.append(time.perf_counter() - t0)
                        if len(times) >= n or time.perf_counter() >= soft:
                            break
                    if not times:
                        raise ValueError(f"the training split has fewer than {bs} configurations")
                timed = times[2:] or times
                ms = 1e3 * statistics.median(timed)
                return {"arch": plan[role]["arch"].tag, "ms_per_step": ms, "ms_per_step_all": [1e3 * t for t in timed],
                        "configs_per_s": bs / ms * 1e3, "steps_timed": len(timed),
                        "timed_out": len(times) < n}

            camp.measure({"role": role, "batch_size": int(bs)}, run, s["throughput_limit_s"], THROUGHPUT_EMPTY)
    state["runs"].clear()


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


MD_FIELDS = ("us_per_atom_step", "us_per_atom_step_all", "steps_per_s", "ns_per_day",
             "energy_drift_eV_per_atom_per_ps", "stable", "repeats", "repeats_done", "n_steps", "warmup_steps",
             "timestep_fs", "prime_s", "setup_s", "wall_s", "hippynn_kernels", "pair_finder", "pair_rebuilds",
             "supercell", "vacancies", "timed_out")


#: the first pair measured at the paper's size (its headline ratio), before any other size
HEADLINE_ROLES = ("paper_teacher", "paper_student_small")


def md_order(sizes: list[int], roles=ROLES) -> list[tuple]:
    """(role, n_atoms, engine) in priority order: the paper's teacher and smallest student at the first (the
    paper's) size, then every model at the other sizes, then the other models at the first size."""
    big, rest = sizes[0], sizes[1:]
    first = [r for r in roles if r in HEADLINE_ROLES]
    order = [(r, big) for r in first] + [(r, n) for n in rest for r in roles]
    order += [(r, big) for r in roles if r not in HEADLINE_ROLES]
    return [(r, n, e) for r, n in order for e in ("ase", "torch")]


def md_timing(camp: Campaign, default_cfg: dict, s: dict, state: dict, device) -> None:
    from .md.timing import time_md

    for role, n, engine in md_order(s["md_sizes"], s["roles"]):
        def run(soft, role=role, n=n, engine=engine):
            rec = time_md(state["models"][role], engine, md_settings(default_cfg, s, n), device, model_id=role,
                          deadline=soft)
            return {k: rec.get(k) for k in MD_FIELDS}

        limit = s["md_limit_s"][engine].get(n, max(s["md_limit_s"][engine].values()))
        camp.measure({"role": role, "n_atoms": int(n), "engine": engine}, run, limit, dict.fromkeys(MD_FIELDS))


PROBE_FIELDS = ("max_atoms", "memory_budget_bytes", "budget_kind", "memory_per_atom_bytes",
                "memory_per_atom_slope_bytes", "memory_intercept_bytes", "first_failure_atoms", "capped",
                "timed_out", "hippynn_kernels", "start_atoms", "n_sizes", "sizes")


def probe_order(device, cap_GB: float) -> list[tuple]:
    """(kernels, cap in bytes or None = whole device) in priority order: the paper's card size first (kernels
    on, then off), then the whole card."""
    return [("auto", cap_GB * GB), ("pytorch", cap_GB * GB), ("auto", None), ("pytorch", None)]


def max_atoms(camp: Campaign, default_cfg: dict, s: dict, state: dict, device) -> None:
    """The probe for every role x kernels x budget. A start size from the same model and kernels under the
    other budget when known (scaled by the budgets), else ``probe.start_atoms``."""
    import torch

    from .md.probe import InProcessTrial, probe_max_atoms

    found: dict = {}
    for kernels, cap in probe_order(device, s["cap_GB"]):
        for role in s["roles"]:
            def run(soft, role=role, kernels=kernels, cap=cap):
                md = md_settings(default_cfg, s, s["md_sizes"][-1], kernels=kernels)
                if device.type == "cuda":
                    torch.cuda.set_per_process_memory_fraction(1.0, device)  # undo an earlier cap
                    total = torch.cuda.get_device_properties(device).total_memory
                    md["probe"]["gpu_memory_budget_MB"] = None if cap is None or cap >= total else cap / MB
                    budget = total if md["probe"]["gpu_memory_budget_MB"] is None else cap
                else:  # smoke: the cap halves a nominal CPU budget (nothing is measured in process)
                    md["probe"]["cpu_memory_budget_MB"] = 64 if cap is None else 32
                    budget = md["probe"]["cpu_memory_budget_MB"] * MB
                prev = found.get((role, kernels))
                if prev:
                    md["probe"]["start_atoms"] = max(int(s["probe"]["start_atoms"]) // 4,
                                                     int(0.8 * prev[0] * budget / prev[1]))
                rec = probe_max_atoms(state["models"][role], md, device, model_id=role,
                                      fake_oom_above=s["fake_oom_above"], deadline=soft,
                                      trial_class=None if device.type == "cuda" else InProcessTrial)
                if rec["max_atoms"] and not rec["timed_out"]:
                    found[(role, kernels)] = (rec["max_atoms"], rec["memory_budget_bytes"])
                out = {k: rec.get(k) for k in PROBE_FIELDS}
                out.update(start_atoms=md["probe"]["start_atoms"], n_sizes=len(rec["sizes"]),
                           sizes=[{k: r.get(k) for k in ("n_atoms", "ok", "peak_bytes", "seconds")} for r in rec["sizes"]])
                return out

            key = {"role": role, "kernels": kernels, "cap_GB": None if cap is None else cap / GB}
            camp.measure(key, run, s["probe_limit_s"], dict.fromkeys(PROBE_FIELDS))
    if device.type == "cuda":
        torch.cuda.set_per_process_memory_fraction(1.0, device)


# ---------------------------------------------------------------------------------------------- tables
def _get(doc: dict, section: str, **key):
    for r in doc["sections"][section]["records"]:
        if all(r.get(k) == v for k, v in key.items()):
            return r
    return None


def _val(rec, field):
    return None if rec is None or rec.get("status") not in ("ok", "timed_out") else rec.get(field)


def _fmt(x, spec=".3g") -> str:
    if x is None:
        return "-"
    return format(x, spec) if isinstance(x, float) else f"{x:,}" if isinstance(x, int) else str(x)


def _ratio(a, b) -> str:
    return f"{a / b:.2f}" if a is not None and b not in (None, 0) else "-"


def markdown(doc: dict, paper_ref: dict) -> str:
    """The README's rows: Figs 2/5 per model (teacher vs students, ratios), kernels on/off, and the ratio to
    the paper's A6000 figures where config/config.yaml ``paper_reference.md_cost`` gives them."""
    dev = doc["device"] or {}
    ref = paper_ref.get("md_cost", {})
    figs = ref.get("figures") or {}
    big = doc["settings"]["md_sizes"][0]
    sizes = doc["settings"]["md_sizes"]
    cap = doc["settings"]["cap_GB"]
    lines = [f"## GPU campaign: {dev.get('device_name')} ({'smoke run, CPU: not a measurement of the paper' if doc['smoke'] else dev.get('device_type')})",
             "",
             f"torch {dev.get('torch')} (CUDA {dev.get('torch_cuda')}), hippynn {dev.get('hippynn')}, ase {dev.get('ase')}, "
             f"driver {dev.get('driver_version')}; kernels on = `{dev.get('kernels_on')}`, off = `{dev.get('kernels_off')}`; "
             f"{'partial' if doc['partial'] else 'complete'} run, {doc.get('elapsed_s', 0):.0f} s.",
             "",
             f"### MD time per step per atom (us; NVE, {doc['settings']['md_repeats']} blocks of "
             f"{doc['settings']['md_steps']} steps after {doc['settings']['md_warmup']}, median; kernels on)",
             ""]
    head = ["model", "arch", "weights"] + [f"{e} {n:,}" for n in sizes for e in ("ase", "torch")]
    head += [f"teacher / model (ase {big:,})", f"ase / torch {big:,}", "drift (eV/atom/ps, ase)",
             f"paper A6000 (ase {big:,})", "A6000 / this"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for role in ROLES:
        tr = _get(doc, "train", role=role)
        cells = [role, _val(tr, "arch") or (tr or {}).get("arch"), _fmt((tr or {}).get("n_weights"))]
        for n in sizes:
            for e in ("ase", "torch"):
                rec = _get(doc, "md_timing", role=role, n_atoms=n, engine=e)
                v = _val(rec, "us_per_atom_step")
                cells.append(_fmt(v) + ("!" if rec and rec.get("stable") is False else ""))
        mine = _val(_get(doc, "md_timing", role=role, n_atoms=big, engine="ase"), "us_per_atom_step")
        teacher = TEACHERS[role]
        t_us = _val(_get(doc, "md_timing", role=teacher, n_atoms=big, engine="ase"), "us_per_atom_step") if teacher else None
        torch_us = _val(_get(doc, "md_timing", role=role, n_atoms=big, engine="torch"), "us_per_atom_step")
        drift = _val(_get(doc, "md_timing", role=role, n_atoms=big, engine="ase"), "energy_drift_eV_per_atom_per_ps")
        paper_us = (figs.get(role) or {}).get("us_per_atom_step")
        cells += [_ratio(t_us, mine) if teacher else "1", _ratio(mine, torch_us), _fmt(drift), _fmt(paper_us),
                  _ratio(paper_us, mine)]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += ["", f"### Most atoms per GPU and memory per atom (torch engine, one MD step; KiB/atom = budget / max "
              f"atoms, slope = fitted peak memory per atom; cap = the paper's {cap:g} GB card)", ""]
    head = ["model"]
    for label in (f"on, {cap:g} GB", f"off, {cap:g} GB", "on, card", "off, card"):
        head += [f"max atoms ({label})", f"KiB/atom ({label})", f"slope KiB/atom ({label})"]
    head += [f"on / off ({cap:g} GB)", f"model / teacher ({cap:g} GB, on)", f"paper A6000 max atoms", "this / A6000"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for role in ROLES:
        cells = [role]
        got = {}
        for kernels, c in (("auto", cap), ("pytorch", cap), ("auto", None), ("pytorch", None)):
            rec = _get(doc, "max_atoms", role=role, kernels=kernels, cap_GB=c)
            m = _val(rec, "max_atoms")
            got[(kernels, c)] = m
            per = _val(rec, "memory_per_atom_bytes")
            slope = _val(rec, "memory_per_atom_slope_bytes")
            mark = ">=" if rec and rec.get("timed_out") else ""
            cells += [mark + _fmt(m), _fmt(per / 1024 if per else None), _fmt(slope / 1024 if slope else None)]
        teacher = TEACHERS[role]
        t_max = _val(_get(doc, "max_atoms", role=teacher, kernels="auto", cap_GB=cap), "max_atoms") if teacher else None
        paper_max = (figs.get(role) or {}).get("max_atoms")
        cells += [_ratio(got[("auto", cap)], got[("pytorch", cap)]),
                  _ratio(got[("auto", cap)], t_max) if teacher else "1", _fmt(paper_max),
                  _ratio(got[("auto", cap)], paper_max)]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += ["", "### Training throughput (ms per step: forward, loss, backward, Adam; median)", "",
              "| model | arch | batch | ms/step | configurations/s |", "|---|---|---:|---:|---:|"]
    for r in doc["sections"]["train_throughput"]["records"]:
        lines.append(f"| {r['role']} | {r.get('arch') or '-'} | {r['batch_size']} | {_fmt(_val(r, 'ms_per_step'))} | "
                     f"{_fmt(_val(r, 'configs_per_s'))} |")
    lines += ["", "`!`: energy drift above md.timing.max_drift_eV_per_atom_per_ps (briefly trained weights); `>=`: the "
              "probe's time limit came first (a lower bound); `-`: not measured (see the JSON's status). The paper "
              "columns stay `-` while config/config.yaml `paper_reference.md_cost.figures` holds no number "
              "(the paper gives them only as plots)."]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ main
def parse_budgets(items, smoke: bool) -> dict:
    budgets = dict(SMOKE_BUDGET_S if smoke else GPU_BUDGET_S)
    for item in items or []:
        name, _, value = item.partition("=")
        if name not in budgets or not value:
            raise SystemExit(f"--budget {item!r}: expected SECTION=SECONDS with SECTION one of {', '.join(SECTIONS)}")
        budgets[name] = float(value)
    return budgets


def parse_models(items) -> dict:
    out = {}
    for item in items or []:
        role, _, path = item.partition("=")
        if role not in ROLES or not path:
            raise SystemExit(f"--model {item!r}: expected ROLE=model.pt with ROLE one of {', '.join(ROLES)}")
        out[role] = path
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gpu_campaign", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", help="output folder (gpu_campaign.json, gpu_campaign.md, models/)")
    p.add_argument("--smoke", action="store_true", help="tiny models and systems on the CPU (seconds)")
    p.add_argument("--device", help="cuda (default when present), cuda:1, cpu")
    p.add_argument("--budget", action="append", metavar="SECTION=S",
                   help=f"a section's time budget in s (GPU defaults: "
                        f"{', '.join(f'{k}={v:g}' for k, v in GPU_BUDGET_S.items())}; sum {GPU_TOTAL_S:g})")
    p.add_argument("--total-s", type=float, help="overall limit in s (default: the sum of the budgets)")
    p.add_argument("--model", action="append", metavar="ROLE=PATH",
                   help=f"use this model.pt for a role instead of training one ({', '.join(ROLES)})")
    p.add_argument("--md-sizes", type=int, nargs="+", help="MD sizes (atoms), the paper's first (default 48000 4000)")
    p.add_argument("--md-steps", type=int, help="timed steps per block (default 10)")
    p.add_argument("--md-warmup", type=int, help="untimed warm-up steps (default 3)")
    p.add_argument("--md-repeats", type=int, help="timed blocks, median reported (default 3)")
    p.add_argument("--n-configs", type=int, help="EMT configurations generated (default 90)")
    p.add_argument("--train-s", type=float, help="training seconds per model (default 6)")
    p.add_argument("--probe-limit-s", type=float, help="time limit of one max-atoms probe in s (default 15)")
    p.add_argument("--config-snapshot", help="settings from this JSON (default: config/*.yaml, or "
                                             "gpu_wheels/campaign_config.json without PyYAML)")
    p.add_argument("--write-config-snapshot", metavar="PATH", help="write the settings snapshot and exit")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.write_config_snapshot:
        write_config_snapshot(args.write_config_snapshot)
        print(f"config snapshot -> {args.write_config_snapshot}")
        return 0
    if not args.out:
        raise SystemExit("gpu_campaign: --out is required")
    t_start = time.perf_counter()
    import torch

    from .md import common
    from .model import resolve_device

    common.QUIET = True
    default_cfg, paper_cfg, source = load_configs(args.config_snapshot)
    device = resolve_device(args.device or ("cpu" if args.smoke else "auto"))
    if device.type == "cpu":
        torch.set_num_threads(1)
    budgets = parse_budgets(args.budget, args.smoke)
    given = parse_models(args.model)
    plan = model_plan(default_cfg, paper_cfg, args.smoke)
    s = settings(default_cfg, paper_cfg, args.smoke, args)
    header = {"smoke": bool(args.smoke), "device_type": device.type, "config_source": source,
              "command": " ".join(sys.argv if argv is None else ["gpu_campaign", *argv]),
              "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "import_s": round(time.perf_counter() - t_start, 3),
              "settings": {**s, "md_limit_s": {e: {str(n): v for n, v in d.items()} for e, d in s["md_limit_s"].items()}},
              "models": {r: {"arch": p["arch"].tag, "network_cutoff_A": p["network"]["dist_hard_max"],
                             "teacher": TEACHERS[r]} for r, p in plan.items()},
              "paper_reference": default_cfg["paper_reference"].get("md_cost"), "device": None}
    camp = Campaign(args.out, budgets, header, total_s=args.total_s or sum(budgets.values()))
    camp.say(f"device {device}; budgets {budgets} (sum {sum(budgets.values()):.0f} s); out {camp.json_path}")
    try:
        camp.doc["device"] = device_facts(device)
    except Exception as exc:  # the measurements still stand without the device's description
        camp.doc["device"] = {k: None for k in ("device_name", "driver_version", "torch", "hippynn", "ase",
                                                "kernels_on", "kernels_off")}
        camp.doc["device"].update(device_type=device.type, error=f"{type(exc).__name__}: {exc}",
                                  torch=torch.__version__)
    camp.say(f"{camp.doc['device']['device_name']}: kernels on = {camp.doc['device']['kernels_on']}")
    camp.write()
    # a SIGTERM (e.g. an outer `timeout`) ends the run through the finally below, which writes the table
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    state: dict = {}
    try:
        with camp.section("data"):
            make_data(camp, default_cfg, s, args.smoke, state)
        with camp.section("train"):
            train_models(camp, default_cfg, plan, s, given, state, device)
        with camp.section("train_throughput"):
            if "arrays" in state:
                train_throughput(camp, default_cfg, plan, s, state, device)
        with camp.section("md_timing"):
            md_timing(camp, default_cfg, s, state, device)
        with camp.section("max_atoms"):
            max_atoms(camp, default_cfg, s, state, device)
        camp.finish()
    finally:
        from .io_utils import atomic_write_text

        atomic_write_text(camp.md_path, markdown(camp.doc, default_cfg["paper_reference"]))
        camp.say(f"{'partial' if camp.doc['partial'] else 'complete'}: {camp.json_path}, {camp.md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
