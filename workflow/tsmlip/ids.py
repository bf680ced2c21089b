"""Model identities and the configuration's error: the base every layer imports (it imports only the standard
library and :mod:`tsmlip.kinds`).

A model is named by an id that reads as a path, ``<kind>/w<width>-s<n_sens>-l<n_layers>/seed<seed>``,
e.g. ``student/w16-s4-l1/seed1``; every per-model output lives under ``<results>/models/<id>/``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .kinds import KINDS

__all__ = ["Arch", "ConfigError", "ModelId"]

_ARCH_RE = re.compile(r"^w(\d+)-s(\d+)-l(\d+)$")


class ConfigError(ValueError):
    """A configuration that cannot be run; the message names the key."""


@dataclass(frozen=True, order=True)
class Arch:
    width: int
    n_sensitivities: int
    n_atom_layers: int

    @property
    def tag(self) -> str:
        return f"w{self.width}-s{self.n_sensitivities}-l{self.n_atom_layers}"

    @classmethod
    def parse(cls, tag: str) -> "Arch":
        m = _ARCH_RE.match(tag)
        if not m:
            raise ConfigError(f"architecture tag {tag!r} is not of the form w<width>-s<n_sens>-l<n_layers>")
        return cls(*(int(g) for g in m.groups()))

    @classmethod
    def from_dict(cls, d: dict) -> "Arch":
        return cls(int(d["width"]), int(d["n_sensitivities"]), int(d["n_atom_layers"]))


@dataclass(frozen=True, order=True)
class ModelId:
    kind: str
    arch: Arch
    seed: int

    @property
    def path(self) -> str:
        return f"{self.kind}/{self.arch.tag}/seed{self.seed}"

    def __str__(self) -> str:
        return self.path

    @classmethod
    def parse(cls, s: str) -> "ModelId":
        parts = str(s).strip("/").split("/")
        if len(parts) != 3 or not parts[2].startswith("seed"):
            raise ConfigError(f"model id {s!r} is not of the form <kind>/w..-s..-l../seed<N>")
        if parts[0] not in KINDS:
            raise ConfigError(f"model id {s!r}: unknown kind {parts[0]!r} (one of {', '.join(KINDS)})")
        return cls(parts[0], Arch.parse(parts[1]), int(parts[2][4:]))
