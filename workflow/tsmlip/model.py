"""HIPNN models built from the configuration; saving and loading trained weights.

The graph is hippynn's: species/positions/cell inputs -> ``HipnnVec`` (tensor sensitivity, l_max=1,
periodic) -> ``HEnergyNode`` (total energy, per-atom energies, hierarchicality) -> forces as minus the
gradient of the energy with respect to positions. Energies are in eV, distances in Angstrom.

A saved model (``model.pt``) holds the architecture, the network and energy-head state dicts and some
provenance; :func:`load_model` rebuilds the graph from the architecture, so files never pickle graph
objects and load on any device.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import __version__
from .config import Arch

#: database names of the arrays every model reads or predicts
DB_SPECIES, DB_POSITIONS, DB_CELL = "Z", "R", "cell"
DB_ENERGY, DB_FORCES, DB_ATOM_ENERGIES = "E", "F", "atom_E"
DB_ENERGY_PER_ATOM = "E_per_atom"
ALUMINUM = 13


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
    extra: dict = field(default_factory=dict)

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
        "cusp_reg": network_cfg.get("cusp_reg", 1e-6),
    }


def build_model(arch: Arch, network_cfg: dict, seed: int | None = None, species=(ALUMINUM,)) -> ModelGraph:
    """Build the hippynn graph of one HIPNN model.

    With ``seed`` given, the weights are initialised from ``torch.manual_seed(seed)`` right before the
    network is built, so a student, its control(s) and any other model of the same architecture and
    seed start from identical weights.
    """
    from hippynn.graphs import inputs, networks, physics, targets

    if network_cfg.get("l_max", 1) != 1:
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


def _to_cpu(obj):
    """Detached CPU copies of every tensor in a (nested) state dict."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return type(obj)((k, _to_cpu(v)) for k, v in obj.items())
    return obj


def save_model(graph: ModelGraph, path: str | Path, **meta) -> None:
    """Write the trained weights and everything needed to rebuild the model (atomic write)."""
    path = Path(path)
    payload = {
        "format": "tsmlip-model/1",
        "arch": {"width": graph.arch.width, "n_sensitivities": graph.arch.n_sensitivities,
                 "n_atom_layers": graph.arch.n_atom_layers},
        "network_cfg": graph.network_cfg,
        "species": [int(z) for z in graph.network.torch_module.species_set.tolist() if int(z) != 0],
        "network_state": _to_cpu(graph.network.torch_module.state_dict()),
        "henergy_state": _to_cpu(graph.henergy.torch_module.state_dict()),
        "energy_unit": "eV",
        "length_unit": "Angstrom",
        "n_weights": count_weights(graph),
        "tsmlip_version": __version__,
        "meta": meta,
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_model(path: str | Path, device: str | torch.device | None = "cpu") -> ModelGraph:
    """Rebuild a saved model's graph and load its weights (modules moved to ``device``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no trained model at {path}")
    payload = torch.load(path, map_location="cpu", weights_only=False)
    if payload.get("format") != "tsmlip-model/1":
        raise ValueError(f"{path} is not a tsmlip model file")
    graph = build_model(Arch.from_dict(payload["arch"]), payload["network_cfg"], species=payload["species"])
    graph.network.torch_module.load_state_dict(payload["network_state"])
    graph.henergy.torch_module.load_state_dict(payload["henergy_state"])
    graph.extra["meta"] = payload.get("meta", {})
    graph.extra["path"] = str(path)
    if device is not None:
        graph.network.torch_module.to(device)
        graph.henergy.torch_module.to(device)
    return graph


def resolve_device(spec: str | None = "auto") -> torch.device:
    """``auto`` -> CUDA when torch sees a GPU, else CPU (a SLURM job given a GPU that torch cannot use
    falls back to the CPU)."""
    if spec in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {spec!r} requested but torch sees no CUDA device")
    return dev


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    import platform
    return f"cpu:{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"
