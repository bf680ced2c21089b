"""The measurement runner: sections with time budgets, measurements with a soft deadline and a hard alarm, the
JSON rewritten atomically after each measurement."""
from __future__ import annotations

import contextlib
import gc
import math
import signal
import threading
import time
import traceback
from pathlib import Path

from .plan import SECTIONS

#: a measurement stops where it can (keeping what it has) at this fraction of its limit; the alarm at 1.0
SOFT_FRACTION = 0.8
#: a measurement with less time than this left in its section is skipped
MIN_LIMIT_S = 0.5


class TimeLimit(BaseException):
    """A measurement's hard time limit (a BaseException: no ``except Exception`` inside swallows it)."""



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
        from tsmlip.io_utils import atomic_write_json

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
