"""Atomic file output: a file is either absent, or complete, never half written.

Every writer here writes to a hidden temporary file in the destination's folder
(``.<name>.<pid>.<random>.tmp``), flushes it to disk, then renames it over the destination with
:func:`os.replace` (atomic on POSIX within one file system). A job killed at any point (SIGKILL, a node
lost, a SLURM time limit) therefore leaves either the previous file or no file at the output path, at
most a stray temporary file beside it; Snakemake sees the output missing and reruns the job. A write that
raises removes its temporary file and leaves the destination as it was.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path


def temp_path_for(path: str | Path) -> Path:
    """A fresh temporary name beside ``path`` (hidden, ends in ``.tmp``)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs):
    """``open()`` for writing whose result appears at ``path`` only when the ``with`` block ends without an
    exception. ``mode`` is ``"w"`` or ``"wb"``; ``kwargs`` go to :func:`open` (e.g. ``newline=""``). Parent
    folders are created. The file gets the usual permissions (0666 less the umask)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open: mode must be 'w' or 'wb', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def atomic_write_json(path: str | Path, obj, indent: int = 1) -> None:
    """Write ``obj`` as JSON atomically. NaN and infinities are refused (``ValueError``) before anything is
    written: store them as null (``None``)."""
    atomic_write_text(path, json.dumps(obj, indent=indent, allow_nan=False) + "\n")


def atomic_torch_save(obj, path: str | Path) -> None:
    """``torch.save(obj, path)`` atomically."""
    import torch

    with atomic_open(path, "wb") as fh:
        torch.save(obj, fh)


def sha256_file(path: str | Path) -> str:
    """The sha256 hex digest of a file's bytes (read in 1 MiB chunks)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
