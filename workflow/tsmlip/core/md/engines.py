"""The MD engines of every MD in the workflow (timing, the memory probe and the RDF liquid): the same
trained model driven by two engines, each with two integrators; and, for the timing, the deployed model
(:mod:`.deployed`) in LAMMPS (``lammps``) and TorchSim (``torchsim``).

- ``ase``: ASE's integrators with :func:`tsmlip.core.calculator.load_calculator` (hippynn's
  ``HippynnCalculator``: ASE neighbour list on the CPU, positions and forces copied between numpy and the
  model's device every step), or with any ASE calculator (the reference potential). This is how the paper
  timed its models.
- ``torch``: hippynn's own MD driver (``hippynn.molecular_dynamics.md``: ``MolecularDynamics``);
  positions, velocities, forces and the pair search (see :mod:`.pairs`) stay on the model's device. The
  cell and species live in a separate ``Variable`` with a ``NullUpdater`` so the positions are not wrapped
  back into the cell (wrapping would invalidate the Verlet skin every time an atom crosses a face).

Integrators: NVE velocity Verlet (``thermostat=None``), or NVT Langevin (a :class:`Langevin` thermostat):
ASE's ``Langevin`` (Vanden-Eijnden & Ciccotti's quasi-symplectic scheme) on the ``ase`` engine, and
:class:`LangevinUpdater`, the same scheme with the same random numbers (numpy ``rng``) and the same centre
of mass handling (``FixCom``) in torch, on the ``torch`` engine: in float64 both follow one trajectory.

Both take an ``ase.Atoms`` (positions in Angstrom, ASE velocities) and expose the same small interface:
``run(n_steps, callback)`` (``callback()`` after every step), ``nsteps``, ``positions()`` (Angstrom,
unwrapped), ``velocities()`` (Angstrom/fs), ``energies()`` (potential and kinetic energy, eV),
``potential_energy()``, ``forces()`` (eV/Angstrom), ``temperature()`` (K, constrained degrees of freedom
removed), ``set_temperature(K)`` (Langevin), ``snapshot()`` (an ``ase.Atoms`` frame) and ``synchronize()``.

hippynn's message-passing kernels are chosen per device by :func:`set_kernels` (``md.kernels``,
``rdf.kernels``); :func:`kernel_implementation` names the active one for the output JSON.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .common import TorchSystem, langevin_coefficients

ENGINES = ("ase", "torch", "lammps", "torchsim")
#: the deployed models (:mod:`.deployed`): optional packages and the LAMMPS plugin (docs/deploy.md)
DEPLOYED_ENGINES = ("lammps", "torchsim")
#: ``md.kernels`` / ``rdf.kernels`` values (besides hippynn's implementation names)
KERNEL_CHOICES = ("auto", "pytorch", "sparse", "numba", "cupy", "triton")


@dataclass
class Langevin:
    """NVT Langevin settings: target ``temperature_K``, ``friction_per_fs``, the numpy random generator
    ``rng`` (drawn from in ASE's order: xi then eta, (N, 3) standard normals each per step) and ``fix_com``
    (hold the centre of mass, as ASE's ``FixCom`` constraint; the atoms passed to the engine then carry
    that constraint)."""

    temperature_K: float
    friction_per_fs: float
    rng: object
    fix_com: bool = True


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
    """ASE ``VelocityVerlet`` or ``Langevin`` + ``HippynnCalculator`` (the paper's set-up), or any ASE
    calculator ``calc`` (then ``model_path`` is unused)."""

    name = "ase"

    def __init__(self, model_path: str | Path | None, atoms, device: torch.device, timestep_fs: float,
                 skin_A: float = 1.0, dtype: torch.dtype | None = torch.float32,
                 thermostat: Langevin | None = None, calc=None):
        from ase import units

        self.device = torch.device(device)
        self.atoms = atoms.copy()  # positions, momenta and constraints, bit for bit
        if calc is None:
            from ..calculator import load_calculator

            calc = load_calculator(model_path, device=str(self.device), skin=skin_A)
            if dtype is not None:
                calc.to(dtype)
        self.atoms.calc = calc
        if thermostat is None:
            from ase.md.verlet import VelocityVerlet

            self.dyn = VelocityVerlet(self.atoms, timestep=timestep_fs * units.fs)
        else:
            from ase.constraints import FixCom
            from ase.md.langevin import Langevin as AseLangevin

            if thermostat.fix_com and not any(isinstance(c, FixCom) for c in self.atoms.constraints):
                self.atoms.set_constraint(list(self.atoms.constraints) + [FixCom()])
            self.dyn = AseLangevin(self.atoms, timestep=timestep_fs * units.fs,
                                   temperature_K=thermostat.temperature_K,
                                   friction=thermostat.friction_per_fs / units.fs, fixcm=False,
                                   rng=thermostat.rng)
        self.atoms.get_forces()  # energy + forces at t = 0 (builds the neighbour list)

    @property
    def nsteps(self) -> int:
        return int(self.dyn.nsteps)

    def run(self, n_steps: int, callback=None) -> None:
        if callback is None:
            self.dyn.run(int(n_steps))
            return
        last = [self.dyn.nsteps]

        def observer():  # ASE also calls observers before the first step of a fresh integrator
            if self.dyn.nsteps != last[0]:
                last[0] = self.dyn.nsteps
                callback()

        self.dyn.attach(observer, interval=1)
        try:
            self.dyn.run(int(n_steps))
        finally:
            self.dyn.observers = [o for o in self.dyn.observers if o[0] is not observer]

    def set_temperature(self, temperature_K: float) -> None:
        self.dyn.set_temperature(temperature_K=temperature_K)

    def positions(self) -> np.ndarray:
        return self.atoms.get_positions()

    def velocities(self) -> np.ndarray:
        from ase import units

        return self.atoms.get_velocities() * units.fs

    def forces(self) -> np.ndarray:
        return self.atoms.get_forces()

    def potential_energy(self) -> float:
        return float(self.atoms.get_potential_energy())

    def temperature(self) -> float:
        return float(self.atoms.get_temperature())

    def energies(self) -> tuple[float, float]:
        return float(self.atoms.get_potential_energy()), float(self.atoms.get_kinetic_energy())

    def snapshot(self):
        frame = self.atoms.copy()
        frame.calc = None
        frame.set_constraint()
        return frame

    def synchronize(self) -> None:
        pass  # every ASE step copies forces back to numpy


def _langevin_updater_class():
    from hippynn.molecular_dynamics.md import VariableUpdater

    class LangevinUpdater(VariableUpdater):
        """ASE's ``Langevin`` step (Vanden-Eijnden & Ciccotti, Eq. 23; ASE >= 3.23) in torch for hippynn's MD
        driver, with the centre of mass held as ASE's ``FixCom`` holds it (positions shifted back to the old
        centre, net momentum removed; forces left raw). ``velocity`` in the Variable is Angstrom/fs (as
        hippynn's ``VelocityVerlet``), the step ``dt`` fs; internally ASE units. The random numbers come
        from the numpy ``rng`` in ASE's order, so both engines draw the same noise."""

        required_variable_data = ["position", "velocity", "mass", "force"]

        def __init__(self, force_db_name: str, energy_db_name: str, thermostat: Langevin, timestep_fs: float):
            from ase import units

            self.force_key, self.energy_key = force_db_name, energy_db_name
            self.rng, self.fix_com = thermostat.rng, bool(thermostat.fix_com)
            self.dt = timestep_fs * units.fs  # ASE time
            self.fr = thermostat.friction_per_fs / units.fs
            self.last_energy = None
            self._kT = None
            self.set_temperature(thermostat.temperature_K)

        def set_temperature(self, temperature_K: float) -> None:
            from ase import units

            self._kT = units.kB * float(temperature_K)
            self._coefficients = None  # recomputed with the masses at the next step

        def _coeffs(self, m):
            if self._coefficients is None:
                self._coefficients = langevin_coefficients(self.dt, self.fr, self._kT, m)
            return self._coefficients

        @torch.no_grad()
        def pre_step(self, dt: float):
            from ase import units

            d = self.variable.data
            m = d["mass"][0].unsqueeze(-1)  # (N, 1) amu
            c1, c2, c3, c4, c5 = self._coeffs(m)
            n = m.shape[0]
            xi = torch.as_tensor(self.rng.standard_normal(size=(n, 3)), dtype=m.dtype, device=m.device)
            eta = torch.as_tensor(self.rng.standard_normal(size=(n, 3)), dtype=m.dtype, device=m.device)
            self._rnd_pos = c5 * eta
            self._rnd_vel = c3 * xi - c4 * eta
            v = d["velocity"][0] / units.fs  # ASE velocity
            v = v + (c1 * d["force"][0] / m - c2 * v + self._rnd_vel)
            x = d["position"][0]
            new = x + self.dt * v + self._rnd_pos
            if self.fix_com:
                mass = m.squeeze(-1)
                new = new + (mass @ x - mass @ new) / mass.sum()
            self._v = (new - x - self._rnd_pos) / self.dt
            d["position"] = new.unsqueeze(0)

        @torch.no_grad()
        def post_step(self, dt: float, model_outputs: dict):
            from ase import units

            d = self.variable.data
            m = d["mass"][0].unsqueeze(-1)
            c1, c2, *_ = self._coeffs(m)
            force = model_outputs[self.force_key].to(m.device).detach().reshape(-1, 3).to(m.dtype)
            v = self._v + (c1 * force / m - c2 * self._v + self._rnd_vel)
            if self.fix_com:
                p = v * m
                v = (p - m * (p.sum(0) / m.sum())) / m
            d["force"] = force.unsqueeze(0)
            d["velocity"] = (v * units.fs).unsqueeze(0)
            d["acceleration"] = torch.zeros_like(d["velocity"])
            self.last_energy = model_outputs[self.energy_key].detach()

    return LangevinUpdater


class TorchEngine(TorchSystem):
    """hippynn's ``MolecularDynamics`` driver with a device-side pair finder and Verlet skin."""

    name = "torch"

    def __init__(self, model_path: str | Path, atoms, device: torch.device, timestep_fs: float,
                 skin_A: float = 1.0, dtype: torch.dtype | None = torch.float32, pair_finder: str = "cell_list",
                 thermostat: Langevin | None = None):
        from ase import units
        from hippynn.graphs import Predictor, find_unique_relative, replace_node
        from hippynn.graphs.nodes.tags import PairIndexer
        from hippynn.molecular_dynamics.md import MolecularDynamics, NullUpdater, Variable, VelocityVerlet

        from ..model import load_model
        from .pairs import pair_finder_class

        dtype = dtype or torch.float32
        self.device = torch.device(device)
        self.timestep_fs = float(timestep_fs)
        self.pair_finder = pair_finder
        self.thermostat = thermostat
        self._nsteps = 0
        self._numbers = atoms.get_atomic_numbers()
        self._ase_cell = np.asarray(atoms.cell)
        # degrees of freedom for the temperature: ASE removes 3 for a FixCom constraint
        self._dof = 3 * len(atoms) - (3 if thermostat is not None and thermostat.fix_com else 0)
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
        if thermostat is None:
            self._updater = VelocityVerlet(force_db_name=self._force_key)
        else:
            self._updater = _langevin_updater_class()(self._force_key, self._energy_key, thermostat, timestep_fs)
        self.atoms_var = Variable(
            "atoms", {"position": pos, "velocity": vel, "acceleration": torch.zeros_like(pos), "mass": mass,
                      "species": species, "force": torch.zeros_like(pos)},
            model_input_map={graph.species.db_name: "species", graph.positions.db_name: "position"},
            updater=self._updater)
        self.cell_var = Variable("cell", {"cell": cell}, model_input_map={graph.cell.db_name: "cell"},
                                 updater=NullUpdater())
        self.md = MolecularDynamics([self.atoms_var, self.cell_var], model=self.predictor, device=self.device,
                                    dtype=dtype)
        # energy + forces at t = 0 -> the first half kick (ASE's integrators do the same)
        out = self._evaluate()
        data = self.atoms_var.data
        data["force"] = out[self._force_key].detach()
        data["acceleration"] = data["force"] / data["mass"].unsqueeze(-1) * units.fs ** 2  # Angstrom/fs^2
        self._last_energy = out[self._energy_key].detach()

    def _evaluate(self) -> dict:
        data = self.atoms_var.data
        return self.predictor(**{self.graph.species.db_name: data["species"],
                                 self.graph.positions.db_name: data["position"],
                                 self.graph.cell.db_name: self.cell_var.data["cell"]})

    @property
    def nsteps(self) -> int:
        return self._nsteps

    def run(self, n_steps: int, callback=None) -> None:
        with _quiet_hippynn_progress():
            if callback is None:
                self.md.run(self.timestep_fs, int(n_steps))
                self._nsteps += int(n_steps)
                self._last_energy = None
                return
            for _ in range(int(n_steps)):
                self.md.run(self.timestep_fs, 1)
                self._nsteps += 1
                self._last_energy = None
                callback()

    def set_temperature(self, temperature_K: float) -> None:
        if self.thermostat is None:
            raise ValueError("an NVE engine has no temperature to set")
        self._updater.set_temperature(temperature_K)

    def positions(self) -> np.ndarray:
        return self.atoms_var.data["position"][0].detach().cpu().double().numpy()

    def velocities(self) -> np.ndarray:
        return self.atoms_var.data["velocity"][0].detach().cpu().double().numpy()

    def forces(self) -> np.ndarray:
        return self.atoms_var.data["force"][0].detach().cpu().double().numpy()

    def potential_energy(self) -> float:
        energy = self._last_energy
        if energy is None and self.thermostat is not None:
            energy = self._updater.last_energy  # the model's output of the last step
        if energy is None:
            energy = self._evaluate()[self._energy_key]
        return float(energy.reshape(-1)[0])

    def kinetic_energy(self) -> float:
        from ase import units

        data = self.atoms_var.data
        v = data["velocity"][0].double() / units.fs
        return float(0.5 * (data["mass"][0].double().unsqueeze(-1) * v * v).sum())

    def temperature(self) -> float:
        from ase import units

        return 2.0 * self.kinetic_energy() / (self._dof * units.kB)

    def pair_stats(self) -> dict:
        """How often the Verlet list was rebuilt (hippynn's PairMemory counters)."""
        mod = self._pairs.torch_module
        return {"pair_rebuilds": int(mod.recalculations), "pair_reuses": int(mod.reuses)}


#: sizes (atoms) of the throw-away runs of :func:`prime_engine`
PRIME_ATOMS = (32, 108)


def prime_engine(name: str, model_path: str | Path, system, device, timestep_fs: float, skin_A: float,
                 pair_finder: str = "cell_list", dtype: torch.dtype = torch.float32) -> None:
    """One step on two small systems of ``system`` (a :class:`tsmlip.core.md.system.CrystalSystem`) of different
    sizes, so that lazy imports, kernel compilation (hippynn's CPU fall-back kernels are ``torch.compile``'d) and the
    recompilation for dynamic shapes happen here and not inside a timed or memory-measured step."""
    for n in PRIME_ATOMS:
        eng = make_engine(name, model_path, system.atoms(n), device, timestep_fs, skin_A=skin_A,
                          pair_finder=pair_finder, dtype=dtype)
        eng.run(1)
        eng.synchronize()
        del eng


def kernel_implementation() -> str | None:
    """hippynn's active message-passing kernels (triton, cupy, numba, pytorch, ...)."""
    from hippynn import custom_kernels

    active = custom_kernels.CUSTOM_KERNELS_ACTIVE
    return None if active is None else str(active)


def set_kernels(setting: str | None, device) -> str:
    """Activate hippynn's message-passing kernels for MD on ``device``; returns the active implementation.

    ``auto`` (or None): plain pytorch on the CPU (there the dense kernels are the fastest: default teacher,
    2,048 atoms, one force call: pytorch 74 ms, numba 740 ms, sparse 630 ms), hippynn's own recommendation
    on CUDA (triton, else numba, else cupy, else pytorch), whose custom kernels never materialise the
    pairs x sensitivities x features tensor, i.e. the memory per atom of the probe. Any other value is an
    implementation name passed to ``hippynn.custom_kernels.set_custom_kernels`` (an error if unavailable).
    The models read the active kernels at every call, so this also applies to models already loaded."""
    import warnings

    from hippynn import custom_kernels

    setting = "auto" if setting in (None, "") else str(setting).lower()
    if setting not in KERNEL_CHOICES:
        raise ValueError(f"unknown hippynn kernels {setting!r}; one of {', '.join(KERNEL_CHOICES)}")
    if setting == "auto":
        setting = "pytorch" if torch.device(device).type != "cuda" else "auto"
    with warnings.catch_warnings():  # "auto" without triton/numba/cupy warns and falls back to pytorch
        warnings.simplefilter("ignore")
        return str(custom_kernels.set_custom_kernels(setting))


def make_engine(name: str, model_path: str | Path | None, atoms, device, timestep_fs: float, skin_A: float = 1.0,
                pair_finder: str = "cell_list", dtype: torch.dtype | None = torch.float32,
                thermostat: Langevin | None = None, calc=None):
    """Engine ``name`` (:data:`ENGINES`) for ``model_path`` started from ``atoms`` (t = 0 forces done):
    NVE velocity Verlet, or Langevin with ``thermostat`` (``ase``, ``torch``, ``lammps``). ``calc``: an ASE
    calculator instead of the model (``ase`` engine only, e.g. the reference potential). ``dtype`` None keeps
    the model's (float32). ``lammps`` / ``torchsim`` raise :class:`.deployed.EngineUnavailable` where their
    packages or plugin are missing."""
    if name == "ase":
        return AseEngine(model_path, atoms, device, timestep_fs, skin_A=skin_A, dtype=dtype, thermostat=thermostat,
                         calc=calc)
    if name == "torch":
        if calc is not None:
            raise ValueError("the torch engine runs a hippynn model, not an ASE calculator; use engine ase")
        return TorchEngine(model_path, atoms, device, timestep_fs, skin_A=skin_A, dtype=dtype,
                           pair_finder=pair_finder, thermostat=thermostat)
    if name in DEPLOYED_ENGINES:
        if calc is not None:
            raise ValueError(f"the {name} engine runs a tsmlip model, not an ASE calculator; use engine ase")
        from .deployed import LammpsEngine, TorchSimEngine

        cls = LammpsEngine if name == "lammps" else TorchSimEngine
        return cls(model_path, atoms, device, timestep_fs, skin_A=skin_A, dtype=dtype, thermostat=thermostat)
    raise ValueError(f"unknown MD engine {name!r}; one of {', '.join(ENGINES)}")
