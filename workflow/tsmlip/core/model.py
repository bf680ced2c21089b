"""HIPNN models built from the configuration; saving and loading trained weights.

The graph is hippynn's: species/positions/cell inputs -> ``HipnnVec`` (tensor sensitivity, l_max=1,
periodic) -> ``HEnergyNode`` (total energy, per-atom energies, hierarchicality) -> forces as minus the
gradient of the energy with respect to positions. Energies are in eV, distances in Angstrom.

A saved model (``model.pt``) holds the architecture, the network and energy-head state dicts and some
provenance; :func:`load_model` rebuilds the graph from the architecture, so files never pickle graph
objects and load on any device. The payload is tensors and plain Python data only (str, int, float, bool,
None, lists, dicts), so it is read with ``torch.load(..., weights_only=True)``: a shared ``model.pt`` cannot
run code when loaded, and a file that is not a model of this project is refused with a
:class:`ModelFileError` naming it.
"""
from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..ids import Arch
from ..io_utils import atomic_torch_save

__all__ = ["DB_ATOM_ENERGIES", "DB_CELL", "DB_ENERGY", "DB_ENERGY_PER_ATOM", "DB_FORCES", "DB_POSITIONS", "DB_SPECIES",
           "MODEL_FORMAT", "DeviceError", "ModelFileError", "ModelGraph", "build_model", "check_model_id",
           "count_weights", "device_description", "load_model", "read_model_payload", "resolve_device", "save_model",
           "to_cpu"]

#: database names of the arrays every model reads or predicts
DB_SPECIES, DB_POSITIONS, DB_CELL = "Z", "R", "cell"
DB_ENERGY, DB_FORCES, DB_ATOM_ENERGIES = "E", "F", "atom_E"
DB_ENERGY_PER_ATOM = "E_per_atom"
ALUMINUM = 13

#: format marker (and version) of a model file; :func:`load_model` reads exactly this one
MODEL_FORMAT = "tsmlip-model/1"
#: keys every model file must hold
MODEL_KEYS = ("format", "arch", "network_cfg", "species", "network_state", "henergy_state")


class ModelFileError(ValueError):
    """A file that is not a model of this project: unreadable, not loadable with ``weights_only=True``
    (e.g. a pickle that would run code), another format or version, or incomplete. The message names it."""


@dataclass
class ModelGraph:
    """The hippynn nodes of one model (inputs, network, energy head, forces)."""

    arch: Arch
    network_cfg: dict
    species: object
    positions: object
    cell: object
    network: object
    henergy: object
    forces: object
    energy_per_atom: object

    @property
    def energy(self):
        return self.henergy.mol_energy

    @property
    def atom_energies(self):
        return self.henergy.atom_energies

    @property
    def hierarchicality(self):
        return self.henergy.hierarchicality


def network_kwargs(arch: Arch, network_cfg: dict, species=(ALUMINUM,)) -> dict:
    """hippynn ``module_kwargs`` for the network of architecture ``arch``."""
    return {
        "possible_species": [0, *sorted(species)],
        "n_features": arch.width,
        "n_sensitivities": arch.n_sensitivities,
        "n_atom_layers": arch.n_atom_layers,
        "n_interaction_layers": network_cfg["n_interaction_layers"],
        "dist_soft_min": network_cfg["dist_soft_min"],
        "dist_soft_max": network_cfg["dist_soft_max"],
        "dist_hard_max": network_cfg["dist_hard_max"],
        "sensitivity_type": network_cfg["sensitivity_type"],
        "resnet": network_cfg["resnet"],
        "cusp_reg": network_cfg["cusp_reg"],
    }


def build_model(arch: Arch, network_cfg: dict, seed: int | None = None, species=(ALUMINUM,)) -> ModelGraph:
    """Build the hippynn graph of one HIPNN model from the validated ``network:`` config section
    (``network_cfg``: every key set, as config/config.yaml sets them).

    With ``seed`` given, the weights are initialised from ``torch.manual_seed(seed)`` right before the
    network is built, so a student, its control(s) and any other model of the same architecture and
    seed start from identical weights.
    """
    from hippynn.graphs import inputs, networks, physics, targets

    if network_cfg["l_max"] != 1:
        raise ValueError("only l_max = 1 (HipnnVec) is implemented, as in the paper")
    species_node = inputs.SpeciesNode(db_name=DB_SPECIES)
    positions = inputs.PositionsNode(db_name=DB_POSITIONS)
    cell = inputs.CellNode(db_name=DB_CELL)
    if seed is not None:
        torch.manual_seed(int(seed))
    network = networks.HipnnVec(
        "HIPNN", (species_node, positions, cell),
        module_kwargs=network_kwargs(arch, network_cfg, species), periodic=True,
    )
    henergy = targets.HEnergyNode("HEnergy", network)
    henergy.mol_energy.db_name = DB_ENERGY
    henergy.atom_energies.db_name = DB_ATOM_ENERGIES
    # F = -dE/dR. hippynn's GradientNode with sign=-1 returns -grad (checked against finite differences
    # in tests/test_model.py).
    forces = physics.GradientNode("forces", (henergy.mol_energy, positions), sign=-1)
    forces.db_name = DB_FORCES
    energy_per_atom = physics.PerAtom("E_per_atom", henergy.mol_energy)
    energy_per_atom.db_name = DB_ENERGY_PER_ATOM
    return ModelGraph(arch, dict(network_cfg), species_node, positions, cell, network, henergy, forces,
                      energy_per_atom)


def count_weights(graph: ModelGraph) -> int:
    """Number of trainable weights of the network plus its energy head."""
    mods = (graph.network.torch_module, graph.henergy.torch_module)
    return int(sum(p.numel() for m in mods for p in m.parameters() if p.requires_grad))


def to_cpu(obj):
    """Detached CPU copies of every tensor in a (nested) state dict."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return type(obj)((k, to_cpu(v)) for k, v in obj.items())
    return obj


_PLAIN = (str, int, float, bool, type(None))


def plain_data(obj, where: str = "value"):
    """``obj`` as plain Python data (str/int/float/bool/None, lists, dicts with str keys) that
    ``torch.load(..., weights_only=True)`` reads back; numpy scalars and tuples are converted, anything else
    (objects, arrays, tensors) is a ``TypeError`` naming ``where``."""
    if type(obj) in _PLAIN:
        return obj
    if isinstance(obj, np.generic) and type(obj.item()) in _PLAIN:
        return obj.item()
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: key {k!r} is not a string")
            out[k] = plain_data(v, f"{where}.{k}")
        return out
    if isinstance(obj, (list, tuple)):
        return [plain_data(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(f"{where}: {type(obj).__name__} is not plain data (str, int, float, bool, None, list, dict)")


def _state(module) -> dict:
    """A module's state dict as a plain dict of detached CPU tensors (and plain data: hippynn keeps e.g.
    ``{"cusp_reg": ...}`` as a layer's ``_extra_state``)."""
    return {k: v.detach().cpu().clone() if isinstance(v, torch.Tensor) else plain_data(v, f"state dict entry {k}")
            for k, v in module.state_dict().items()}


def save_model(graph: ModelGraph, path: str | Path, **meta) -> None:
    """Write the trained weights and everything needed to rebuild the model (atomic write).

    Only tensors and plain data are written (``meta`` must be plain data: str, int, float, bool, None,
    lists, dicts), so the file loads with ``torch.load(path, weights_only=True)``.
    """
    payload = {
        "format": MODEL_FORMAT,
        "arch": {"width": int(graph.arch.width), "n_sensitivities": int(graph.arch.n_sensitivities),
                 "n_atom_layers": int(graph.arch.n_atom_layers)},
        "network_cfg": plain_data(graph.network_cfg, "network_cfg"),
        "species": [int(z) for z in graph.network.torch_module.species_set.tolist() if int(z) != 0],
        "network_state": _state(graph.network.torch_module),
        "henergy_state": _state(graph.henergy.torch_module),
        "energy_unit": "eV",
        "length_unit": "Angstrom",
        "n_weights": count_weights(graph),
        "tsmlip_version": __version__,
        "meta": plain_data(meta, "meta"),
    }
    atomic_torch_save(payload, path)


def _first_sentence(text: str) -> str:
    text = text.strip().splitlines()[0].strip() if text.strip() else ""
    return text.split(". ")[0].rstrip(".")


def _refusal_reason(exc: BaseException) -> str:
    """What torch's weights-only unpickler refused (its message is long; this is the part that says what)."""
    m = re.search(r"(Unsupported global: [^\n]*|Trying to load unsupported GLOBAL [^\n]*|Unsupported operand [^\n]*)",
                  str(exc))
    return f": {_first_sentence(m.group(1))}" if m else ""


def read_model_payload(path: str | Path) -> dict:
    """The checked contents of a model file, read with ``torch.load(..., weights_only=True)`` (tensors on
    the CPU). :class:`ModelFileError` for anything that is not a model file of this project."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no trained model at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ModelFileError(
            f"{path} is not a tsmlip model file: refused by torch.load(weights_only=True), which reads only "
            f"tensors and plain data (a pickle of other objects could run code when loaded){_refusal_reason(exc)}"
        ) from None
    except OSError:
        raise
    except Exception as exc:  # truncated or not a torch file at all (RuntimeError, EOFError, ...)
        first = _first_sentence(str(exc))
        raise ModelFileError(f"{path} is not a tsmlip model file: unreadable "
                             f"({type(exc).__name__}{': ' + first if first else ''})") from None
    if not isinstance(payload, dict):
        raise ModelFileError(f"{path} is not a tsmlip model file (it holds a {type(payload).__name__})")
    fmt = payload.get("format")
    if fmt != MODEL_FORMAT:
        if isinstance(fmt, str) and fmt.startswith("tsmlip-model/"):
            raise ModelFileError(f"{path}: model file format {fmt!r}, but tsmlip {__version__} reads "
                                 f"{MODEL_FORMAT!r}")
        raise ModelFileError(f"{path} is not a tsmlip model file (no {MODEL_FORMAT!r} format marker)")
    missing = [k for k in MODEL_KEYS if k not in payload]
    if missing:
        raise ModelFileError(f"{path}: incomplete tsmlip model file, missing {', '.join(missing)}")
    for key, kind in (("arch", dict), ("network_cfg", dict), ("species", list), ("network_state", dict),
                      ("henergy_state", dict)):
        if not isinstance(payload[key], kind):
            raise ModelFileError(f"{path}: broken tsmlip model file, {key!r} is a {type(payload[key]).__name__}")
    return payload


def check_model_id(path: str | Path, model_id: str | None = None, kind: str | None = None,
                   payload: dict | None = None) -> dict:
    """The model file's payload, after checking that it is the model the step was given: its architecture
    (``arch``) and, when recorded, its id (``meta.model_id``: kind, architecture, seed) must match ``model_id``
    (a ``<kind>/<arch>/seed<N>`` id, optionally followed by a note such as ``(seed 1201)``; other names are
    not checked), and its kind must be ``kind`` when given. :class:`ModelFileError` naming the file
    otherwise (e.g. a teacher's ``model.pt`` copied into a student's folder)."""
    from ..ids import ConfigError, ModelId

    payload = payload if payload is not None else read_model_payload(path)
    stored_arch = Arch.from_dict(payload["arch"])
    stored_id = (payload.get("meta") or {}).get("model_id")
    expected = None
    if model_id:
        try:
            expected = ModelId.parse(str(model_id).split()[0])
        except ConfigError:
            expected = None
    problems = []
    if expected is not None and stored_arch != expected.arch:
        problems.append(f"its architecture is {stored_arch.tag}, not {expected.arch.tag}")
    if expected is not None and stored_id and str(stored_id) != str(expected):
        problems.append(f"it was trained as {stored_id}")
    if kind is not None and stored_id and str(stored_id).split("/")[0] != kind:
        problems.append(f"it is a {str(stored_id).split('/')[0]} model, not a {kind}")
    if problems:
        raise ModelFileError(f"{path} does not match the model it is read as ({expected or kind}): "
                             f"{'; '.join(problems)}. Put the right file there or retrain it "
                             f"(snakemake --forcerun train)")
    return payload


def load_model(path: str | Path, device: str | torch.device | None = "cpu") -> ModelGraph:
    """Rebuild a saved model's graph and load its weights (modules moved to ``device``).

    The file is read with ``torch.load(..., weights_only=True)`` (:func:`read_model_payload`): loading a
    model someone shared cannot run code. :class:`ModelFileError` for a file that is not a model of this
    project (``FileNotFoundError`` for a missing one).
    """
    path = Path(path)
    payload = read_model_payload(path)
    try:
        graph = build_model(Arch.from_dict(payload["arch"]), payload["network_cfg"], species=payload["species"])
        graph.network.torch_module.load_state_dict(payload["network_state"])
        graph.henergy.torch_module.load_state_dict(payload["henergy_state"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: broken tsmlip model file, its weights do not fit its architecture "
                             f"({type(exc).__name__}: {_first_sentence(str(exc))})") from None
    if device is not None:
        graph.network.torch_module.to(device)
        graph.henergy.torch_module.to(device)
    return graph


class DeviceError(RuntimeError):
    """A device setting that names no device on the machine the step runs on (one message, no traceback)."""


def resolve_device(spec: str | None = "auto") -> torch.device:
    """``auto`` -> CUDA when torch sees a GPU, else CPU (a SLURM job given a GPU that torch cannot use
    falls back to the CPU). :class:`DeviceError` for a device this machine does not have."""
    import platform

    if spec in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except (RuntimeError, ValueError):
        raise DeviceError(f"device {spec!r} is not a device name (auto, cpu, cuda or cuda:<n>)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {spec!r} requested (training.device / md.device / rdf.device) but torch "
                              f"sees no CUDA device on {platform.node()}; use auto or cpu, or run the job on a "
                              f"GPU node")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device {spec!r} requested but {platform.node()} has "
                              f"{torch.cuda.device_count()} CUDA device(s)")
    return dev


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    import platform
    return f"cpu:{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"
