"""Atomic file output: a file is either absent, or complete, never half written.

Every writer here writes to a hidden temporary file in the destination's folder
(``.<name>.<pid>.<random>.tmp``), flushes it to disk, then renames it over the destination with
:func:`os.replace` (atomic on POSIX within one file system). A job killed at any point (SIGKILL, a node
lost, a SLURM time limit) therefore leaves either the previous file or no file at the output path, at
most a stray temporary file beside it; Snakemake sees the output missing and reruns the job. A write that
raises removes its temporary file and leaves the destination as it was; a full disk, or a file where a folder of
the path should be, raises :class:`OutputError` naming the path (one line from the step).
"""
from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import secrets
from pathlib import Path

__all__ = ["OutputError", "atomic_open", "atomic_torch_save", "atomic_write_json", "atomic_write_text",
           "check_free_space", "json_safe", "output_error", "sha256_file"]

#: errors of a full disk or an exhausted quota
_FULL = (errno.ENOSPC, errno.EDQUOT)


class OutputError(RuntimeError):
    """An output that cannot be written (a full disk, a file where a folder should be, no permission); the
    message names the path. The steps report it in one line."""


def _full_disk(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it wraps) is a full disk; torch reports one as a RuntimeError
    ("file write failed") without the errno."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in _FULL:
            return True
        if "No space left on device" in str(exc) or "file write failed" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def output_error(path, exc: BaseException) -> OutputError:
    """The one-line :class:`OutputError` for an ``exc`` raised while writing ``path``."""
    if _full_disk(exc):
        return OutputError(f"cannot write {path}: no space left on device (or the disk quota is used up); free "
                           f"space there and rerun (nothing was left half written)")
    if isinstance(exc, (NotADirectoryError, FileExistsError)):
        return OutputError(f"cannot write {path}: a file stands where a folder of its path should be "
                           f"({exc.filename or exc}); move or remove that file and rerun")
    return OutputError(f"cannot write {path}: {exc.strerror or exc}")


#: planning refuses a results folder on a disk with less free space than this (a full disk): a run writes its
#: lock and provenance stamps there while it is planned, then its results
MIN_FREE_BYTES = 1 << 20


def check_free_space(path: str | Path, what: str, min_bytes: int = MIN_FREE_BYTES) -> None:
    """:class:`OutputError` (one line naming ``what`` and the path) when the disk holding ``path`` (or its nearest
    existing parent) has less than ``min_bytes`` free. A folder this process cannot write (a read-only results
    folder, which a dry run may plan) is not judged."""
    import shutil

    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    if not os.access(p, os.W_OK):
        return
    free = shutil.disk_usage(p).free
    if free < min_bytes:
        raise OutputError(f"{what}: {path} is on a full disk ({free // 1024} KiB free; the run writes its lock and "
                          f"provenance stamps there while it is planned): free space there, or name a folder on "
                          f"another disk")


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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path_for(path)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as e:
        if isinstance(e, PermissionError) or e.errno == errno.EROFS:
            raise
        raise output_error(path, e) from None
    try:
        with open(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if _full_disk(e):
            raise output_error(path, e) from None
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def json_safe(obj):
    """``obj`` as plain JSON values: NaN and infinities become None (null), numpy scalars and arrays plain
    numbers and lists, tuples lists, records (:class:`tsmlip.json_record.Record`) their JSON objects."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k.item() if hasattr(k, "item") else k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    if hasattr(obj, "to_json"):  # a record
        return json_safe(obj.to_json())
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return json_safe(obj.tolist())
    raise TypeError(f"{type(obj).__name__} is not a JSON value: {obj!r}")


def atomic_write_json(path: str | Path, obj, indent: int = 1) -> None:
    """Write ``obj`` as JSON atomically: the one JSON writer of the steps' files. NaN and infinities are written
    as null (a quantity a run could not measure; readers get None), numpy values as plain numbers
    (:func:`json_safe`); anything else that is not JSON raises ``TypeError`` before anything is written."""
    atomic_write_text(path, json.dumps(json_safe(obj), indent=indent, allow_nan=False) + "\n")


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
