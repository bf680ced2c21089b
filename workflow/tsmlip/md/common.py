"""Shared plumbing of the MD commands: the ``md:`` config section, the device, JSON output."""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import torch

from ..io_utils import atomic_write_json

#: set to an atom count to make every force evaluation above it fail as out-of-memory (tests, dry runs)
FAKE_OOM_ENV = "TSMLIP_MD_FAKE_OOM_ATOMS"


def md_config(config_json: str | None = None, config_files: list[str] | None = None) -> dict:
    """The ``md:`` section the caller passes: the config files named in ``config_files`` (the first the base,
    e.g. config/config.yaml, the others overlays), then ``config_json`` (a JSON object of md keys; the rule
    passes the whole section) merged on top. Nothing is read that the caller did not name."""
    from ..config import deep_merge, load_config

    if not config_files and not config_json:
        raise ValueError("no md settings: pass the md: section as --config-json (as the workflow's rules do) "
                         "or name the config files with --config config/config.yaml [overlay.yaml ...]")
    md = load_config(*config_files)["md"] if config_files else {}
    if config_json:
        md = deep_merge(md, json.loads(config_json))
    return md


def add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config-json", help="JSON object of `md:` keys (merged over the --config files, if any)")
    parser.add_argument("--config", nargs="*", default=[], metavar="YAML",
                        help="config files: the base (config/config.yaml), then overlays (e.g. config/test.yaml)")
    parser.add_argument("--device", help="override md.device (auto, cpu, cuda, cuda:1)")


def setup_device(md_cfg: dict, override: str | None = None) -> torch.device:
    """The MD device; on the CPU the torch thread count is fixed to ``md.timing.torch_threads``."""
    from ..model import resolve_device

    device = resolve_device(override or md_cfg.get("device", "auto"))
    if device.type == "cpu":
        torch.set_num_threads(int(md_cfg["timing"]["torch_threads"]))
    return device


def fake_oom_atoms(explicit: int | None = None) -> int | None:
    """Atom count above which force evaluations are made to fail (argument, else the environment)."""
    if explicit is not None:
        return int(explicit)
    value = os.environ.get(FAKE_OOM_ENV, "").strip()
    return int(value) if value else None


def out_of_memory_error(device: torch.device, n_atoms: int, limit: int) -> Exception:
    """The error a real OOM would raise on ``device`` (for the injected OOM)."""
    msg = f"injected out-of-memory: {n_atoms} atoms > {limit} ({FAKE_OOM_ENV})"
    if device.type == "cuda":
        return torch.cuda.OutOfMemoryError(msg)
    return MemoryError(msg)


def finite_or_none(x):
    return float(x) if x is not None and math.isfinite(float(x)) else None


def write_json(path: str | Path, payload: dict) -> None:
    """Atomic JSON write (:func:`tsmlip.io_utils.atomic_write_json`): a killed job leaves no partial file.
    NaN/inf are refused: store them as null (:func:`finite_or_none`)."""
    atomic_write_json(path, payload, indent=1)


#: set True to silence :func:`log` (e.g. a benchmark printing its own table)
QUIET = False


def log(msg: str) -> None:
    """A progress line on stderr (the rule's log)."""
    if not QUIET:
        print(msg, file=sys.stderr, flush=True)
