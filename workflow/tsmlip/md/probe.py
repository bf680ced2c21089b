"""The most atoms whose MD step fits in a device's memory, and memory per atom (paper Figs 2B and 5B).

The crystal supercell of :mod:`tsmlip.core.md.system` (the model's element) grows geometrically from
``md.probe.start_atoms`` (factor ``growth_factor``) until one MD step (energy + forces at t = 0, then one
velocity-Verlet step, with engine ``md.probe.engine``) runs out of memory; the largest size that fitted and the
smallest that failed are then bisected until they differ by ``resolution`` (a fraction of the fitting size when below
1, else atoms).

- CUDA: every size runs in this process; ``torch.cuda.OutOfMemoryError`` is caught, the cache emptied, and
  the search goes on. The budget is the whole device, or ``gpu_memory_budget_MB`` enforced through
  ``torch.cuda.set_per_process_memory_fraction`` (e.g. to emulate a smaller GPU). Per size:
  ``torch.cuda.max_memory_allocated`` (``peak_bytes``) and NVML's memory in use on the device. The ``ase``
  engine builds its neighbour list on the host (about 2 kB per pair, ~0.35 MB per atom at a 7.5 A
  cut-off): a size whose list would not fit in the host's available memory counts as failed
  (``host_limited: true`` in the output) instead of the process being killed.
- CPU: a fresh single-threaded process is spawned once and primed (imports, kernel compilation); every
  size then runs in a child forked from it. The child's peak resident memory above its own baseline (the
  kernel's high-water mark is reset first) must stay within ``cpu_memory_budget_MB``, else the size counts
  as out of memory; a ``MemoryError`` or a child killed for growing far beyond the budget does too.
  (Forking the calling process instead could hang: GNU OpenMP does not survive a fork once it ran threads.)

Memory per atom is reported both as the paper does it (budget / max atoms) and as the least-squares slope
of peak memory against atoms over the sizes that fitted. Sizes above ``TSMLIP_MD_FAKE_OOM_ATOMS`` (or the
``fake_oom_above`` argument) fail as out of memory, to test all this without filling a device.

``tsmlip max-atoms --config-json '{"md": {...}}' --model models/<id>/model.pt --out models/<id>/max_atoms.json``
"""
from __future__ import annotations

import gc
import json
import math
import os
import resource
import signal
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..core.elements import ElementError
from ..records import MaxAtoms
from ..core.md.common import FAKE_OOM_ENV, fake_oom_atoms, log, out_of_memory_error, setup_device, write_json
from ..core.md.engines import PRIME_ATOMS, kernel_implementation, make_engine, prime_engine, set_kernels
from ..core.md.hardware import device_memory_bytes, device_name, hardware_info, host_memory_available, nvml_memory_used
from ..core.md.system import CrystalSystem, crystal_system

MB = 1 << 20
#: a CPU child whose resident memory exceeds its parent's (the worker's) by this many budgets is killed
KILL_BUDGETS = 2.0
POLL_S = 0.02


def md_step(model_path, n_atoms: int, system: CrystalSystem, md_cfg: dict, device: torch.device,
            fake_oom_above: int | None = None):
    """Build ``n_atoms`` atoms of ``system`` and do one MD step (energy + forces, one Verlet step) on ``device``
    with the probe's engine (``md_cfg``: the ``md:`` section)."""
    if fake_oom_above is not None and n_atoms > fake_oom_above:
        raise out_of_memory_error(device, n_atoms, fake_oom_above)
    eng = make_engine(md_cfg["probe"]["engine"], model_path, system.atoms(n_atoms), device,
                      md_cfg["timing"]["timestep_fs"], skin_A=md_cfg["skin_A"],
                      pair_finder=md_cfg["pair_finder"][device.type])
    eng.run(1)
    eng.synchronize()
    return eng


def _prime(model_path, system: CrystalSystem, md_cfg: dict, device: torch.device) -> None:
    prime_engine(md_cfg["probe"]["engine"], model_path, system, device, md_cfg["timing"]["timestep_fs"],
                 md_cfg["skin_A"], md_cfg["pair_finder"][device.type])


# ----------------------------------------------------------------------------------------------- CUDA
#: host memory of ASE's neighbour list (``NewPrimitiveNeighborList``) at its peak, per pair (measured)
ASE_NL_BYTES_PER_PAIR = 2000
#: fraction of the host's available memory an ASE neighbour list may be expected to take
HOST_FRACTION = 0.8


def ase_host_bytes(n_atoms: int, model_path, system: CrystalSystem, skin_A: float) -> float:
    """Rough peak host memory of the ``ase`` engine's neighbour list for ``n_atoms`` atoms of the crystal
    (bytes).

    HippynnCalculator asks ASE for pairs within cut-off + 2 skins.
    """
    from ..core.elements import unit_cell
    from ..core.model import read_model_payload

    radius = read_model_payload(model_path)["network_cfg"]["dist_hard_max"] + 2 * skin_A
    unit = unit_cell(asdict(system.crystal))
    density = len(unit) / unit.get_volume()
    return n_atoms * density * 4.0 / 3.0 * math.pi * radius ** 3 * ASE_NL_BYTES_PER_PAIR


class CudaTrial:
    """One size on a CUDA device, in this process."""

    def __init__(self, model_path, system, md_cfg, device, fake_oom_above=None):
        self.model_path, self.system, self.md_cfg, self.device = model_path, system, md_cfg, device
        self.fake = fake_oom_above
        total = device_memory_bytes(device)
        cap = md_cfg["probe"].get("gpu_memory_budget_MB")
        self.budget = int(min(total, cap * MB)) if cap else total
        if self.budget < total:
            torch.cuda.set_per_process_memory_fraction(self.budget / total, device)
        _prime(model_path, system, md_cfg, device)

    def __call__(self, n_atoms: int) -> dict:
        dev = self.device
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
        t0 = time.perf_counter()
        row = {"n_atoms": int(n_atoms), "ok": False, "peak_bytes": None, "nvml_used_bytes": None}
        if self.md_cfg["probe"]["engine"] == "ase":
            need = ase_host_bytes(n_atoms, self.model_path, self.system, self.md_cfg["skin_A"])
            avail = host_memory_available()
            if avail is not None and need > HOST_FRACTION * avail:  # do not let the kernel's OOM killer end the whole probe
                row.update(reason=f"host memory: ASE neighbour list needs ~{need / 2**30:.1f} GiB, "
                                  f"{avail / 2**30:.1f} GiB available", host_limited=True,
                           seconds=time.perf_counter() - t0)
                return row
        eng = None
        try:
            eng = md_step(self.model_path, n_atoms, self.system, self.md_cfg, dev, self.fake)
            row.update(ok=True, peak_bytes=int(torch.cuda.max_memory_allocated(dev)),
                       reserved_bytes=int(torch.cuda.max_memory_reserved(dev)),
                       nvml_used_bytes=nvml_memory_used(dev))
        except (torch.cuda.OutOfMemoryError, MemoryError) as exc:  # device, or host (neighbour lists)
            row.update(reason=_short(exc), peak_bytes=int(torch.cuda.max_memory_allocated(dev)),
                       nvml_used_bytes=nvml_memory_used(dev))
        finally:
            del eng
            gc.collect()
            torch.cuda.empty_cache()
        row["seconds"] = time.perf_counter() - t0
        return row


class InProcessTrial:
    """One size in this process on any device, without a memory measurement (``peak_bytes`` None): out of
    memory only by a real ``MemoryError`` / CUDA OOM or the injected limit (``fake_oom_above``). For dry runs
    of code around the probe (the GPU campaign's CPU smoke mode); :class:`CudaTrial` and :class:`CpuTrial`
    measure."""

    def __init__(self, model_path, system, md_cfg, device, fake_oom_above=None):
        self.model_path, self.system, self.md_cfg, self.device = model_path, system, md_cfg, device
        self.fake = fake_oom_above
        self.budget = int(md_cfg["probe"]["cpu_memory_budget_MB"] * MB)
        _prime(model_path, system, md_cfg, device)

    def __call__(self, n_atoms: int) -> dict:
        t0 = time.perf_counter()
        row = {"n_atoms": int(n_atoms), "ok": False, "peak_bytes": None, "nvml_used_bytes": None}
        try:
            md_step(self.model_path, n_atoms, self.system, self.md_cfg, self.device, self.fake)
            row["ok"] = True
        except (torch.cuda.OutOfMemoryError, MemoryError) as exc:
            row["reason"] = _short(exc)
        row["seconds"] = time.perf_counter() - t0
        return row


# ------------------------------------------------------------------------------------------------ CPU
def _rss_bytes() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _reset_peak_rss() -> bool:
    """Reset the kernel's resident-memory high-water mark (Linux >= 4.0); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes(hwm_reset: bool) -> int:
    if hwm_reset:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _measure(model_path, n_atoms: int, system: CrystalSystem, md_cfg: dict, fake_oom_above) -> dict:
    """In a forked child: a small step (a fork does not copy the parent's page tables of shared libraries, so
    the child faults their code in again), baseline RSS, one MD step, peak RSS increase (``peak_bytes``)."""
    md_step(model_path, PRIME_ATOMS[0], system, md_cfg, torch.device("cpu"))
    gc.collect()
    hwm_reset = _reset_peak_rss()
    rss0 = _rss_bytes()
    row = {"baseline_rss_bytes": rss0, "hwm_reset": hwm_reset}
    try:
        md_step(model_path, n_atoms, system, md_cfg, torch.device("cpu"), fake_oom_above)
        row["ok"] = True
    except (MemoryError, RuntimeError) as exc:
        if not isinstance(exc, MemoryError) and "can't allocate memory" not in str(exc):  # torch's CPU OOM
            raise
        row.update(ok=False, reason=_short(exc))
    row["peak_bytes"] = max(0, _peak_rss_bytes(hwm_reset) - rss0)
    return row


def _fork_measure(model_path, n_atoms: int, system: CrystalSystem, md_cfg: dict, fake_oom_above,
                  kill_above: int) -> dict:
    """Run :func:`_measure` in a forked child; kill it if its RSS passes ``kill_above`` bytes."""
    import psutil

    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(rfd)
        try:
            result = _measure(model_path, n_atoms, system, md_cfg, fake_oom_above)
        except BaseException:
            result = {"error": traceback.format_exc()[-20000:]}  # stays below the pipe's buffer
        with os.fdopen(wfd, "w") as fh:
            fh.write(json.dumps(result))
        os._exit(0)
    os.close(wfd)
    killed = False
    child = psutil.Process(pid)
    with os.fdopen(rfd) as fh:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            try:
                if not killed and child.memory_info().rss > kill_above:
                    os.kill(pid, signal.SIGKILL)
                    killed = True
            except psutil.NoSuchProcess:
                pass
            time.sleep(POLL_S)
        text = fh.read()
    if text:
        return json.loads(text)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:  # by us or the kernel's OOM killer
        return {"ok": False, "reason": "killed: resident memory far above the budget" if killed
                else "killed (SIGKILL, e.g. the kernel's OOM killer)"}
    return {"error": f"child died without a result (wait status {status})"}


_MARK = "TSMLIP-PROBE "


def worker_main() -> None:
    """The probe worker: a fresh single-threaded process (it never ran a multi-threaded OpenMP region, so
    forking it is safe) that primes the model once, then forks one child per size read from stdin.

    Protocol (JSON lines): stdin first ``{"model_path", "system", "md_cfg", "fake_oom_above", "budget"}`` (``system``:
    :meth:`CrystalSystem.to_json`), then one
    atom count per line (EOF ends); stdout ``TSMLIP-PROBE {...}`` lines (``{"ready": true}``, then one
    result per size, or ``{"error": traceback}``).
    """
    def reply(obj):
        sys.stdout.write(_MARK + json.dumps(obj) + "\n")
        sys.stdout.flush()

    try:
        torch.set_num_threads(1)
        job = json.loads(sys.stdin.readline())
        model_path, md_cfg, fake, budget = (job[k] for k in ("model_path", "md_cfg", "fake_oom_above", "budget"))
        system = CrystalSystem.from_json(job["system"])
        set_kernels(md_cfg["kernels"], "cpu")
        _prime(model_path, system, md_cfg, torch.device("cpu"))
        gc.collect()
        reply({"ready": True})
        for line in sys.stdin:
            if not line.strip():
                continue
            kill_above = int(_rss_bytes() + KILL_BUDGETS * budget + 256 * MB)
            reply(_fork_measure(model_path, int(line), system, md_cfg, fake, kill_above))
    except BaseException:
        reply({"error": traceback.format_exc()})


class CpuTrial:
    """Each size in a child forked from a fresh, primed, single-threaded worker process (:func:`worker_main`);
    out of memory = peak RSS increase above the budget (or a ``MemoryError``, or killed)."""

    def __init__(self, model_path, system, md_cfg, device, fake_oom_above=None):
        import subprocess

        if not hasattr(os, "fork"):
            raise RuntimeError("the CPU memory probe needs os.fork (Linux or macOS)")
        self.budget = int(md_cfg["probe"]["cpu_memory_budget_MB"] * MB)
        env = dict(os.environ)
        pkg_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from tsmlip.md.probe import worker_main; worker_main()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self._send({"model_path": str(model_path), "system": system.to_json(), "md_cfg": md_cfg,
                    "fake_oom_above": fake_oom_above, "budget": self.budget})
        self._receive("start-up")

    def _send(self, obj) -> None:
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def _receive(self, what: str) -> dict:
        for line in self.proc.stdout:
            if line.startswith(_MARK):
                msg = json.loads(line[len(_MARK):])
                if "error" in msg:
                    raise RuntimeError(f"probe worker failed during {what}:\n{msg['error']}")
                return msg
        raise RuntimeError(f"probe worker died during {what} (exit code {self.proc.wait()})")

    def __call__(self, n_atoms: int) -> dict:
        t0 = time.perf_counter()
        self._send(int(n_atoms))
        row = {"n_atoms": int(n_atoms), "ok": False, "peak_bytes": None, "nvml_used_bytes": None}
        row.update(self._receive(f"the {n_atoms}-atom step"))
        if row["ok"] and row["peak_bytes"] > self.budget:
            row.update(ok=False, reason=f"peak RSS increase {row['peak_bytes'] / MB:.1f} MB > budget "
                                        f"{self.budget / MB:.1f} MB")
        row["seconds"] = time.perf_counter() - t0
        return row

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except Exception:
                self.proc.kill()
                self.proc.wait()


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


# ------------------------------------------------------------------------------------------- search
def _close_enough(lo: int, hi: int, resolution: float) -> bool:
    tol = resolution * lo if resolution < 1 else resolution
    return hi - lo <= max(1.0, tol)


def search_max_atoms(trial, start: int, growth: float, resolution: float, cap: int, progress=log,
                     deadline: float | None = None) -> dict:
    """Geometric growth from ``start`` until ``trial(n)["ok"]`` is False (or ``cap``), then bisection.

    ``deadline`` (a ``time.perf_counter()`` value): no new size is tried after it; the search then stops with
    what it has (``timed_out: true``; ``max_atoms`` is the largest size that fitted so far, a lower bound).

    :return: ``{"max_atoms", "first_failure_atoms" (None if never failed), "capped", "timed_out", "sizes"}``
    """
    sizes: list[dict] = []

    def late() -> bool:
        return deadline is not None and time.perf_counter() >= deadline

    def attempt(n):
        row = trial(int(n))
        sizes.append(row)
        mem = f"{row['peak_bytes'] / MB:.1f} MB" if row.get("peak_bytes") is not None else "-"
        progress(f"[max-atoms] {n:>9d} atoms: {'ok  ' if row['ok'] else 'FAIL'} peak {mem} "
                 f"({row.get('seconds', 0):.1f} s){'  ' + row['reason'] if row.get('reason') else ''}")
        return row["ok"]

    lo, hi, n = 0, None, min(int(start), int(cap))
    timed_out = False
    while True:
        if late():
            timed_out = True
            break
        if attempt(n):
            lo = n
            if n >= cap:
                break
            n = min(int(cap), max(n + 1, int(math.ceil(n * growth))))
        else:
            hi = n
            break
    while not timed_out and hi is not None and not _close_enough(lo, hi, resolution):
        if late():
            timed_out = True
            break
        mid = (lo + hi) // 2
        if attempt(mid):
            lo = mid
        else:
            hi = mid
    if timed_out:
        progress(f"[max-atoms] time limit reached after {len(sizes)} sizes: max atoms >= {lo}")
    return {"max_atoms": lo, "first_failure_atoms": hi, "capped": hi is None and not timed_out,
            "timed_out": timed_out, "sizes": sizes}


def memory_slope(sizes: list[dict]) -> tuple[float | None, float | None]:
    """Least-squares slope (bytes/atom) and intercept (bytes) of peak memory over the sizes that fitted."""
    pts = [(r["n_atoms"], r["peak_bytes"]) for r in sizes if r["ok"] and r.get("peak_bytes") is not None]
    if len({n for n, _ in pts}) < 2:
        return None, None
    n, b = np.array(pts, dtype=float).T
    slope, intercept = np.polyfit(n, b, 1)
    return float(slope), float(intercept)


def probe_max_atoms(model_path, md_cfg: dict, device: torch.device, model_id: str | None = None,
                    fake_oom_above: int | None = None, deadline: float | None = None, trial_class=None) -> dict:
    """Run the probe; returns the ``max_atoms.json`` record. The element is checked against the model's
    species before any MD (:func:`tsmlip.core.md.system.crystal_system`). ``deadline``: see
    :func:`search_max_atoms` (the record's ``timed_out``). ``trial_class``: how one size is tried (default
    :class:`CudaTrial` on CUDA, :class:`CpuTrial` on the CPU; :class:`InProcessTrial` for dry runs)."""
    from ..core.elements import model_species

    system = crystal_system(md_cfg, model_species(model_path), trained_on=f"the model {model_path}")
    pc = md_cfg["probe"]
    fake = fake_oom_atoms(fake_oom_above)
    set_kernels(md_cfg["kernels"], device)
    trial_class = trial_class or (CudaTrial if device.type == "cuda" else CpuTrial)
    trial = trial_class(model_path, system, md_cfg, device, fake)
    log(f"[max-atoms] {model_id or model_path}: engine={pc['engine']} device={device} kernels={kernel_implementation()} "
        f"budget {trial.budget / MB:.0f} MB" + (f", injected OOM above {fake} atoms" if fake else ""))
    t0 = time.perf_counter()
    try:
        found = search_max_atoms(trial, pc["start_atoms"], pc["growth_factor"], pc["resolution"],
                                 pc["max_atoms_cap"], deadline=deadline)
    finally:
        if hasattr(trial, "close"):
            trial.close()
    slope, intercept = memory_slope(found["sizes"])
    max_atoms = found["max_atoms"]
    return MaxAtoms(
        model_id=model_id,
        device=device.type,
        device_name=device_name(device),
        engine=pc["engine"],
        element=system.crystal.element,
        crystal_structure=system.crystal.crystal_structure,
        lattice_constant_A=system.crystal.lattice_constant_A,
        max_atoms=max_atoms,
        memory_budget_bytes=trial.budget,
        budget_kind=("none (dry run)" if trial_class is InProcessTrial
                     else "cpu_peak_rss_increase" if device.type == "cpu"
                     else "gpu_fraction" if pc.get("gpu_memory_budget_MB") else "gpu_total"),
        memory_per_atom_bytes=trial.budget / max_atoms if max_atoms else None,
        memory_per_atom_slope_bytes=slope,
        memory_intercept_bytes=intercept,
        first_failure_atoms=found["first_failure_atoms"],
        host_limited=any(r.get("host_limited") for r in found["sizes"]),
        capped=found["capped"],
        timed_out=found["timed_out"],
        max_atoms_cap=int(pc["max_atoms_cap"]),
        resolution=pc["resolution"],
        fake_oom_above=fake,
        sizes=found["sizes"],
        hippynn_kernels=kernel_implementation(),
        hippynn_kernels_setting=md_cfg["kernels"],
        wall_s=time.perf_counter() - t0,
        model_path=str(model_path),
        hardware=hardware_info(device),
    ).to_json()


def main(argv: list[str] | None = None) -> int:
    from ..cli import step_parser

    p = step_parser("max-atoms", __doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="model.pt of a trained model")
    p.add_argument("--out", required=True, help="output JSON (max_atoms.json)")
    p.add_argument("--model-id", help="model id recorded in the output")
    p.add_argument("--fake-oom-above", type=int, help=f"sizes above this fail as out of memory ({FAKE_OOM_ENV})")
    args = p.parse_args(argv)
    md = args.config_json["md"]
    device = setup_device(md)
    from ..core.model import check_model_id

    # a file that is not a model, or not the model of the id: one clear error here, not from the CPU worker
    check_model_id(args.model, args.model_id)
    try:
        record = probe_max_atoms(args.model, md, device, args.model_id, fake_oom_above=args.fake_oom_above)
    except ElementError as e:
        log(f"tsmlip max-atoms: error: {e}")
        return 2
    from ..provenance import json_with, record as provenance_record

    write_json(args.out, json_with(record, provenance_record("max-atoms", args.config_json, {"model": args.model})))
    per_atom = record["memory_per_atom_bytes"]
    log(f"[max-atoms] max {record['max_atoms']} atoms, {per_atom / 1024 if per_atom else float('nan'):.1f} KiB/atom "
        f"(budget / max), slope {(record['memory_per_atom_slope_bytes'] or float('nan')) / 1024:.1f} KiB/atom "
        f"-> {args.out}")
    return 0
