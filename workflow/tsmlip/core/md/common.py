"""Shared plumbing of the MD commands: the ``md:`` config section, the device, JSON output."""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import torch

from ...io_utils import atomic_write_json

#: set to an atom count to make every force evaluation above it fail as out-of-memory (tests, dry runs)
FAKE_OOM_ENV = "TSMLIP_MD_FAKE_OOM_ATOMS"


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


def langevin_coefficients(dt: float, friction: float, kT: float, masses: torch.Tensor) -> tuple:
    """ASE's ``Langevin`` coefficients (c1, c2, c3, c4, c5) (ASE >= 3.23: Eq. 23 of Vanden-Eijnden & Ciccotti) for
    the time step ``dt`` and ``friction`` in ASE units, ``kT`` (eV) and ``masses`` (amu, any shape): c1 and c2 are
    numbers, c3 .. c5 tensors of the masses' shape and dtype (computed in float64)."""
    sigma = torch.sqrt(2.0 * kT * friction / masses.double()).to(masses.dtype)
    c5 = dt ** 1.5 * sigma / (2.0 * math.sqrt(3.0))
    return (dt / 2.0 - dt * dt * friction / 8.0, dt * friction / 2.0 - dt * dt * friction * friction / 8.0,
            math.sqrt(dt) * sigma / 2.0 - dt ** 1.5 * friction * sigma / 8.0, friction / 2.0 * c5, c5)


#: set True to silence :func:`log` (e.g. a benchmark printing its own table)
QUIET = False


def log(msg: str) -> None:
    """A progress line on stderr (the rule's log)."""
    if not QUIET:
        print(msg, file=sys.stderr, flush=True)


class TorchSystem:
    """What the torch-held MD engines (``torch``, ``torchsim``) share: energies, an ASE snapshot of the system
    (``_numbers``, ``_ase_cell`` and ``positions()`` of the engine) and a device barrier for timings."""

    def energies(self) -> tuple[float, float]:
        return self.potential_energy(), self.kinetic_energy()

    def snapshot(self):
        from ase import Atoms

        return Atoms(numbers=self._numbers, positions=self.positions(), cell=self._ase_cell, pbc=True)

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
