"""One run per results folder: a lock file in the results folder itself (``<results>/.tsmlip-run.lock``).

Snakemake's own lock lives in the checkout's ``.snakemake/``, so two checkouts (or a copied checkout) pointed at one
results folder would both train, the second resuming the first's live checkpoints. The workflow takes this lock when
its jobs start (the Snakefile's ``onstart``) and gives it back when they end (``onsuccess`` / ``onerror``).

The lock file holds the holder's host, process id, start time and checkout. A second run is refused with one message
naming them, unless the holder is gone: on the same host a process id that no longer runs (a run killed with
SIGKILL, a crashed machine's reboot) is a stale lock, taken over with a note. A lock of another host cannot be
checked from here; the message says so and names the file to delete once that run is over.
"""
from __future__ import annotations

import errno
import json
import os
import socket
import time
from pathlib import Path

LOCK_NAME = ".tsmlip-run.lock"


class RunLockError(RuntimeError):
    """The results folder is in use by another run (one line naming it)."""


def lock_path(results_dir) -> Path:
    return Path(results_dir) / LOCK_NAME


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user: alive
        return True
    return True


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def acquire(results_dir, pid: int | None = None, checkout: str | None = None) -> Path:
    """Take the lock of ``results_dir`` for process ``pid`` (this one by default); :class:`RunLockError` when a
    live run holds it. Taking it again for the same host and pid is a no-op."""
    path = lock_path(results_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {"host": socket.gethostname(), "pid": int(pid or os.getpid()), "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
          "checkout": str(checkout or os.getcwd())}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            held = _read(path)
            if held is None:  # being written this instant, or garbage: look again, then treat as stale
                time.sleep(0.2)
                held = _read(path)
            if held and (held.get("host"), held.get("pid")) == (me["host"], me["pid"]):
                return path
            if held and held.get("host") != me["host"]:
                raise RunLockError(
                    f"{path}: the results folder is in use by a run on host {held.get('host')} (pid {held.get('pid')}, "
                    f"started {held.get('started')}, checkout {held.get('checkout')}); one run per results folder. "
                    f"If that run is over, delete {path}")
            if held and _alive(int(held.get("pid", -1))):
                raise RunLockError(
                    f"{path}: the results folder is in use by a running workflow (pid {held['pid']}, started "
                    f"{held.get('started')}, checkout {held.get('checkout')}); one run per results folder: wait for "
                    f"it, or stop it")
            # stale: its holder is gone (same host, pid not running) or the file is garbage
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(me))
        return path
    raise RunLockError(f"{path}: could not take the results folder's lock (another run keeps taking it)")


def release(results_dir, pid: int | None = None) -> None:
    """Give the lock back if this host and ``pid`` hold it (a lock of anyone else stays)."""
    path = lock_path(results_dir)
    held = _read(path)
    if held and (held.get("host"), held.get("pid")) == (socket.gethostname(), int(pid or os.getpid())):
        try:
            os.unlink(path)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise
