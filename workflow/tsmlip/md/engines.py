"""Two NVE velocity-Verlet MD engines driving the same trained model.

- ``ase``: ASE's ``VelocityVerlet`` with :func:`tsmlip.calculator.load_calculator` (hippynn's
  ``HippynnCalculator``: ASE neighbour list on the CPU, positions and forces copied between numpy and the
  model's device every step). This is how the paper timed its models.
- ``torch``: hippynn's own MD driver (``hippynn.molecular_dynamics.md``: ``MolecularDynamics`` with a
  ``VelocityVerlet`` updater); positions, velocities, forces and the pair search (see :mod:`.pairs`) stay on
  the model's device. The cell and species live in a separate ``Variable`` with a ``NullUpdater`` so the
  positions are not wrapped back into the cell (wrapping would invalidate the Verlet skin every time an
  atom crosses a face).

Both take an ``ase.Atoms`` (positions in Angstrom, ASE velocities) and expose the same small interface:
``run(n_steps)``, ``positions()`` (Angstrom, unwrapped), ``velocities()`` (Angstrom/fs), ``energies()``
(potential and kinetic energy, eV) and ``synchronize()``.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch

ENGINES = ("ase", "torch")


@contextlib.contextmanager
def _quiet_hippynn_progress():
    """hippynn's MD driver wraps its step loop in a tqdm bar; keep logs clean while timing."""
    from hippynn import settings

    old = settings.PROGRESS
    settings.PROGRESS = None
    try:
        yield
    finally:
        settings.PROGRESS = old


class AseEngine:
    """ASE ``VelocityVerlet`` + ``HippynnCalculator`` (the paper's set-up)."""

    name = "ase"

    def __init__(self, model_path: str | Path, atoms, device: torch.device, timestep_fs: float,
                 skin_A: float = 1.0, dtype: torch.dtype = torch.float32):
        from ase import units
        from ase.md.verlet import VelocityVerlet

        from ..calculator import load_calculator

        self.device = torch.device(device)
        self.atoms = atoms.copy()
        self.atoms.set_velocities(atoms.get_velocities())
        calc = load_calculator(model_path, device=str(self.device), skin=skin_A)
        calc.to(dtype)
        self.atoms.calc = calc
        self.dyn = VelocityVerlet(self.atoms, timestep=timestep_fs * units.fs)
        self.atoms.get_forces()  # energy + forces at t = 0 (builds the neighbour list)

    def run(self, n_steps: int) -> None:
        self.dyn.run(int(n_steps))

    def positions(self) -> np.ndarray:
        return self.atoms.get_positions()

    def velocities(self) -> np.ndarray:
        from ase import units

        return self.atoms.get_velocities() * units.fs

    def energies(self) -> tuple[float, float]:
        return float(self.atoms.get_potential_energy()), float(self.atoms.get_kinetic_energy())

    def synchronize(self) -> None:
        pass  # every ASE step copies forces back to numpy


class TorchEngine:
    """hippynn's ``MolecularDynamics`` driver with a device-side pair finder and Verlet skin."""

    name = "torch"

    def __init__(self, model_path: str | Path, atoms, device: torch.device, timestep_fs: float,
                 skin_A: float = 1.0, dtype: torch.dtype = torch.float32, pair_finder: str = "cell_list"):
        from ase import units
        from hippynn.graphs import Predictor, find_unique_relative, replace_node
        from hippynn.graphs.nodes.tags import PairIndexer
        from hippynn.molecular_dynamics.md import MolecularDynamics, NullUpdater, Variable, VelocityVerlet

        from ..model import load_model
        from .pairs import pair_finder_class

        self.device = torch.device(device)
        self.timestep_fs = float(timestep_fs)
        self.pair_finder = pair_finder
        graph = load_model(model_path, device="cpu")
        old = find_unique_relative(graph.energy, PairIndexer)
        new = pair_finder_class(pair_finder)(
            "MDPairs", (graph.positions, graph.species, graph.cell), dist_hard_max=old.dist_hard_max, skin=skin_A)
        replace_node(old, new, disconnect_old=True)
        self.graph, self._pairs = graph, new
        self.predictor = Predictor([graph.species, graph.positions, graph.cell], [graph.energy, graph.forces],
                                   return_device=None)
        self._energy_key, self._force_key = graph.energy.db_name, graph.forces.db_name

        pos = torch.as_tensor(atoms.get_positions()).unsqueeze(0)
        vel = torch.as_tensor(atoms.get_velocities() * units.fs).unsqueeze(0)  # Angstrom/fs
        mass = torch.as_tensor(atoms.get_masses()).unsqueeze(0)  # amu
        species = torch.as_tensor(atoms.get_atomic_numbers(), dtype=torch.int64).unsqueeze(0)
        cell = torch.as_tensor(np.asarray(atoms.cell)).unsqueeze(0)
        self.atoms_var = Variable(
            "atoms", {"position": pos, "velocity": vel, "acceleration": torch.zeros_like(pos), "mass": mass,
                      "species": species},
            model_input_map={graph.species.db_name: "species", graph.positions.db_name: "position"},
            updater=VelocityVerlet(force_db_name=self._force_key))
        self.cell_var = Variable("cell", {"cell": cell}, model_input_map={graph.cell.db_name: "cell"},
                                 updater=NullUpdater())
        self.md = MolecularDynamics([self.atoms_var, self.cell_var], model=self.predictor, device=self.device,
                                    dtype=dtype)
        # energy + forces at t = 0 -> the first half kick (ASE's VelocityVerlet does the same)
        out = self._evaluate()
        data = self.atoms_var.data
        data["force"] = out[self._force_key]
        data["acceleration"] = data["force"] / data["mass"].unsqueeze(-1) * units.fs ** 2  # Angstrom/fs^2

    def _evaluate(self) -> dict:
        data = self.atoms_var.data
        return self.predictor(**{self.graph.species.db_name: data["species"],
                                 self.graph.positions.db_name: data["position"],
                                 self.graph.cell.db_name: self.cell_var.data["cell"]})

    def run(self, n_steps: int) -> None:
        with _quiet_hippynn_progress():
            self.md.run(self.timestep_fs, int(n_steps))

    def positions(self) -> np.ndarray:
        return self.atoms_var.data["position"][0].detach().cpu().double().numpy()

    def velocities(self) -> np.ndarray:
        return self.atoms_var.data["velocity"][0].detach().cpu().double().numpy()

    def energies(self) -> tuple[float, float]:
        from ase import units

        epot = float(self._evaluate()[self._energy_key].reshape(-1)[0])
        data = self.atoms_var.data
        v = data["velocity"][0].double() / units.fs
        ekin = float(0.5 * (data["mass"][0].double().unsqueeze(-1) * v * v).sum())
        return epot, ekin

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def pair_stats(self) -> dict:
        """How often the Verlet list was rebuilt (hippynn's PairMemory counters)."""
        mod = self._pairs.torch_module
        return {"pair_rebuilds": int(mod.recalculations), "pair_reuses": int(mod.reuses)}


#: sizes (atoms) of the throw-away runs of :func:`prime_engine`
PRIME_ATOMS = (32, 108)


def prime_engine(name: str, model_path: str | Path, md_cfg: dict, device, pair_finder: str = "cell_list",
                 dtype: torch.dtype = torch.float32) -> None:
    """One step on two small systems of different sizes, so that lazy imports, kernel compilation (hippynn's
    CPU fall-back kernels are ``torch.compile``'d) and the recompilation for dynamic shapes happen here and
    not inside a timed or memory-measured step."""
    from .system import md_system

    for n in PRIME_ATOMS:
        eng = make_engine(name, model_path, md_system(n, md_cfg), device, md_cfg["timing"]["timestep_fs"],
                          skin_A=md_cfg["skin_A"], pair_finder=pair_finder, dtype=dtype)
        eng.run(1)
        eng.synchronize()
        del eng


def kernel_implementation() -> str | None:
    """hippynn's active message-passing kernels (triton, cupy, numba, pytorch, ...)."""
    from hippynn import custom_kernels

    active = custom_kernels.CUSTOM_KERNELS_ACTIVE
    return None if active is None else str(active)


def make_engine(name: str, model_path: str | Path, atoms, device, timestep_fs: float, skin_A: float = 1.0,
                pair_finder: str = "cell_list", dtype: torch.dtype = torch.float32):
    """Engine ``name`` (``ase`` or ``torch``) for ``model_path`` started from ``atoms`` (t = 0 forces done)."""
    if name == "ase":
        return AseEngine(model_path, atoms, device, timestep_fs, skin_A=skin_A, dtype=dtype)
    if name == "torch":
        return TorchEngine(model_path, atoms, device, timestep_fs, skin_A=skin_A, dtype=dtype,
                           pair_finder=pair_finder)
    raise ValueError(f"unknown MD engine {name!r}; one of {', '.join(ENGINES)}")
