"""The liquids of many models in one process (``tsmlip rdf-md-stack``): every model its own liquid system, all
advanced together, and every MD step's forces of all systems ONE :meth:`tsmlip.core.hipnn_stack.StackedHipnn.forward`.

Each system is exactly the liquid of ``tsmlip rdf-md`` (:func:`tsmlip.rdf.liquid.run_liquid_md`): the same start
(:func:`tsmlip.core.md.system.liquid_system` from ``rdf.seed``), the same stages, samples and checks
(:class:`tsmlip.rdf.liquid.LiquidMonitor`) and the same outputs (:func:`tsmlip.rdf.liquid.write_liquid_outputs`).
What differs is the engine:

* **pairs**: a Verlet list per system (vesin's cell list, :func:`tsmlip.core.md.pairs.vesin_pairs`, with cut-off
  ``dist_hard_max + skin_A``), rebuilt for a system when one of its atoms moved more than ``skin_A / 2`` since
  its last build; the pair geometry (distance and unit vector r_ij = (R_j + shift - R_i) / d_ij of the pairs
  within ``dist_hard_max``) is recomputed at every step from the float64 positions and handed to the model in
  float32, as the calculator computes it;
* **forces**: :class:`StackedHipnn` on a :class:`tsmlip.core.hipnn_stack.SlotBatch` of one slot per system; the
  pair-level chain rule is written out, so positions carry no autograd graph;
* **integrator**: :class:`StackedLangevin`, ASE's ``Langevin`` (Vanden-Eijnden & Ciccotti's Eq. 23, ASE's
  coefficients) with ASE's ``FixCom`` handling, vectorised over systems in float64 torch. Each system draws its
  noise from its own numpy generator in ASE's order (xi then eta, (N, 3) each per step), seeded as
  ``rdf-md`` seeds it, so a system follows the trajectory of the ASE run of its model up to float32 rounding
  of the forces (and then, as any MD, drifts away from it chaotically).

A system that blows up (non-finite positions or forces, temperature above ``blowup_temperature_K``) is marked
unstable with the frames it kept and leaves the stack; the others go on. ``md_wall_time_s`` of each model is
the stack's wall time up to that model's last step divided by the number of models the stack started with
(its share of the job); ``engine`` is ``stack``.
"""
from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from ..core.md.stacked_forces import StackedForces, StackError, load_stack
from .gr import check_cutoff
from .liquid import LiquidBlowup, LiquidMonitor, liquid_stages, write_liquid_outputs

#: ``engine`` of the records written by the stacked liquid
ENGINE = "stack"
#: ``pair_finder`` of those records
PAIR_FINDER = "vesin (per-system Verlet list)"


class StackedLangevin:
    """ASE's ``ase.md.langevin.Langevin`` step (ASE >= 3.23: ``c1 .. c5``, Eq. 23 of Vanden-Eijnden & Ciccotti)
    for ``n_systems`` systems of the same atoms at once, with ASE's ``FixCom`` constraint when ``fix_com`` (new
    positions shifted back to the old centre of mass, net momentum removed after the step; forces raw, as
    ``get_forces(md=True)`` leaves them). Positions (A), velocities (ASE units) and forces (eV/A) are float64
    tensors (n_systems, n_atoms, 3); ``masses`` (n_atoms,) amu; ``rngs`` one numpy generator per system."""

    def __init__(self, masses, timestep_fs: float, friction_per_fs: float, temperature_K: float, rngs: list,
                 fix_com: bool = True, device="cpu"):
        from ase import units

        self.m = torch.as_tensor(np.asarray(masses, dtype=np.float64), device=device).reshape(1, -1, 1)
        self.dt = float(timestep_fs) * units.fs
        self.fr = float(friction_per_fs) / units.fs
        self.rngs = list(rngs)
        self.fix_com = bool(fix_com)
        self.set_temperature(temperature_K)

    def set_temperature(self, temperature_K: float) -> None:
        """ASE's ``updatevars``: the coefficients at ``temperature_K`` (K)."""
        from ase import units

        from ..core.md.common import langevin_coefficients

        kT = units.kB * float(temperature_K)
        self.c1, self.c2, self.c3, self.c4, self.c5 = langevin_coefficients(self.dt, self.fr, kT, self.m)

    def keep(self, rows: list[int]) -> None:
        self.rngs = [self.rngs[k] for k in rows]

    def _noise(self, shape):
        xi, eta = [], []
        for rng in self.rngs:  # ASE draws xi then eta from the system's generator
            xi.append(rng.standard_normal(size=shape))
            eta.append(rng.standard_normal(size=shape))
        as_t = lambda a: torch.as_tensor(np.stack(a), dtype=torch.float64, device=self.m.device)  # noqa: E731
        return as_t(xi), as_t(eta)

    def _centre(self, R):
        return (self.m * R).sum(1, keepdim=True) / self.m.sum()

    def step(self, R, V, F, force_fn):
        """One step from positions ``R``, velocities ``V`` and forces ``F`` at ``R``; ``force_fn(R_new)`` gives
        the forces at the new positions. Returns (R_new, V_new, F_new, whatever else ``force_fn`` returned)."""
        xi, eta = self._noise(tuple(R.shape[1:]))
        rnd_pos = self.c5 * eta
        rnd_vel = self.c3 * xi - self.c4 * eta
        V = V + (self.c1 * F / self.m - self.c2 * V + rnd_vel)
        new = R + self.dt * V + rnd_pos
        if self.fix_com:  # FixCom.adjust_positions
            new = new + (self._centre(R) - self._centre(new))
        V = (new - R - rnd_pos) / self.dt
        F, extra = force_fn(new)
        V = V + (self.c1 * F / self.m - self.c2 * V + rnd_vel)
        if self.fix_com:  # set_momenta(v m) with FixCom.adjust_momenta
            p = V * self.m
            V = (p - self.m * (p.sum(1, keepdim=True) / self.m.sum())) / self.m
        return new, V, F, extra


# --------------------------------------------------------------------------------------------- forces
class _SystemView:
    """One system of the stack, with the engine interface :class:`LiquidMonitor` reads."""

    def __init__(self, stack: "LiquidStack", system: int):
        self.stack, self.system = stack, system

    @property
    def _row(self) -> int:
        return self.stack.row_of[self.system]

    @property
    def nsteps(self) -> int:
        return self.stack.nsteps

    def positions(self) -> np.ndarray:
        return self.stack.np_R[self._row].copy()

    def forces(self) -> np.ndarray:
        return self.stack.np_F[self._row].copy()

    def temperature(self) -> float:
        return float(self.stack.temps[self._row])

    def potential_energy(self) -> float:
        return float(self.stack.np_E[self._row])

    def snapshot(self):
        from ase import Atoms

        return Atoms(numbers=self.stack.numbers, positions=self.positions(), cell=self.stack.cell, pbc=True)


class LiquidStack:
    """The liquids of the models of ``model`` (a :class:`StackedHipnn`; ``species`` its species), one system each,
    with the resolved ``rdf:`` settings ``s``, on ``device``."""

    def __init__(self, model, species, s: dict, device="cpu", log=None, labels=None):
        from ase import units

        from ..core.md.system import liquid_system

        self.s, self.device = s, torch.device(device)
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.stages = liquid_stages(s)
        M = model.n_models
        self.labels = list(labels) if labels is not None else [f"system {k}" for k in range(M)]
        rngs, systems = [], []
        for _ in range(M):  # each system as rdf-md starts it: same seed, same generator use
            rng = np.random.default_rng(int(s["seed"]))
            systems.append(liquid_system(s, self.stages[0][1], rng))
            rngs.append(rng)
        atoms = systems[0]
        check_cutoff(atoms.cell, s["r_max_A"])
        self.numbers, self.cell = atoms.get_atomic_numbers(), np.array(atoms.cell)
        self.n_atoms = len(atoms)
        self.dof = 3 * self.n_atoms - 3  # FixCom
        self.R = torch.as_tensor(np.stack([a.get_positions() for a in systems]), device=self.device)
        self.V = torch.as_tensor(np.stack([a.get_velocities() for a in systems]), device=self.device)
        self.masses = atoms.get_masses()
        self.kB = units.kB
        self.integrator = StackedLangevin(self.masses, s["timestep_fs"], s["friction_per_fs"], self.stages[0][1],
                                          rngs, fix_com=True, device=self.device)
        self.forces = StackedForces(model, species, self.numbers, self.cell, float(s["skin_A"]))
        self.forces.pairs.cell = self.forces.pairs.cell.to(self.device)
        self.F, self.E = self.forces(self.R)
        self.nsteps = 0
        self.alive = list(range(M))  # systems still in the stack, in row order
        self.row_of = {k: k for k in range(M)}
        self.stopped_at: dict[int, float] = {}
        self._refresh()

    def _refresh(self) -> None:
        """numpy views of the state for the per-system checks (one transfer per step)."""
        m = torch.as_tensor(self.masses, device=self.device).reshape(1, -1, 1)
        ekin = 0.5 * (m * self.V.square()).sum((1, 2))
        self.temps = (2.0 * ekin / (self.dof * self.kB)).cpu().numpy()
        self.np_R, self.np_F, self.np_E = self.R.cpu().numpy(), self.F.cpu().numpy(), self.E.cpu().numpy()

    def _drop(self, systems: list[int]) -> None:
        rows = [self.row_of[k] for k in self.alive if k not in systems]
        self.alive = [k for k in self.alive if k not in systems]
        self.row_of = {k: r for r, k in enumerate(self.alive)}
        if not rows:
            return
        idx = torch.as_tensor(rows, device=self.device)
        self.R, self.V, self.F, self.E = (t.index_select(0, idx) for t in (self.R, self.V, self.F, self.E))
        self.integrator.keep(rows)
        self.forces.keep(rows)
        self._refresh()

    def step(self) -> None:
        self.R, self.V, self.F, self.E = self.integrator.step(self.R, self.V, self.F, self.forces)
        self.nsteps += 1
        self._refresh()

    def run(self) -> list:
        """Every stage for every system; returns one :class:`tsmlip.rdf.liquid.LiquidRun` per model (in the
        stack's order)."""
        M = len(self.alive)
        views = [_SystemView(self, k) for k in range(M)]
        monitors = [LiquidMonitor(self.s, self.n_atoms, self.log, label=f"rdf-md {lab}") for lab in self.labels]
        steps_done = [0] * M
        t0 = time.perf_counter()
        for mon in monitors:
            mon.t0 = t0
        for name, temp_K, n_steps in self.stages:
            for k in self.alive:
                monitors[k].start_stage(name, temp_K, n_steps, views[k])
            self.integrator.set_temperature(temp_K)
            for _ in range(n_steps):
                if not self.alive:
                    break
                self.step()
                failed = []
                for k in self.alive:
                    try:
                        broken = self.forces.pairs.broken.get(self.row_of[k])
                        if broken:
                            raise LiquidBlowup(f"{broken} at step {self.nsteps}")
                        monitors[k].observe(views[k])
                    except LiquidBlowup as exc:
                        monitors[k].fail(exc)
                        failed.append(k)
                for k in failed:
                    steps_done[k] = self.nsteps
                    self.stopped_at[k] = time.perf_counter() - t0
                if failed:
                    self._drop(failed)
            for k in self.alive:
                monitors[k].end_stage(views[k])
        wall = time.perf_counter() - t0
        for k in self.alive:
            steps_done[k] = self.nsteps
        return [mon.result(self.cell, steps_done[k], self.stopped_at.get(k, wall) / M, ENGINE)
                for k, mon in enumerate(monitors)]


def run_liquid_stack(model_paths: list, s: dict, device="cpu", log=None, labels=None) -> list:
    """The liquid of every model file (one architecture) as ``rdf-md`` runs it, all in one stack; one
    :class:`tsmlip.rdf.liquid.LiquidRun` per model."""
    model, payload = load_stack(model_paths, device)
    return LiquidStack(model, payload["species"], s, device=device, log=log, labels=labels).run()


def main(argv: list[str] | None = None) -> int:
    """``tsmlip rdf-md-stack``: the liquids of many models of one architecture in one process (every step one
    stacked force call) -> each model's g(r) CSV + run JSON, as ``tsmlip rdf-md`` writes them, under
    ``<out-root>/<model id>/``."""
    from ..cli import step_parser
    from ..core.elements import ElementError, model_species
    from ..core.model import check_model_id, device_description, resolve_device

    p = step_parser("rdf-md-stack", main.__doc__ + "\n\nThe rdf: section (its experiment: part, engine, kernels and "
                    "pair_finder are not read), on rdf.device.")
    p.add_argument("--models", nargs="+", required=True, help="model.pt of each model (one architecture)")
    p.add_argument("--model-ids", nargs="+", required=True, help="each model's id, in the order of --models")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: rdf.torch_threads)")
    p.add_argument("--out-root", required=True, help="outputs under <out-root>/<model id>/{rdf.csv,rdf_md.json}")
    a = p.parse_args(argv)
    if len(a.models) != len(a.model_ids):
        p.error(f"{len(a.models)} --models but {len(a.model_ids)} --model-ids")
    if len(set(a.model_ids)) != len(a.model_ids):
        p.error("--model-ids repeat an id")
    s0 = a.config_json["rdf"]
    try:
        settings = []
        for path, mid in zip(a.models, a.model_ids):
            from .liquid import resolve_liquid

            check_model_id(path, mid)  # the file is the model of the id its g(r) is recorded as
            settings.append(resolve_liquid(s0, model_species(path), trained_on=f"the model {path}"))
        if any(st != settings[0] for st in settings):
            raise StackError("the models resolve to different liquids (element or density): stack them apart")
        s = settings[0]
        torch.set_num_threads(int(a.threads or s["torch_threads"]))
        dev = resolve_device(s["device"])
        model, payload = load_stack(a.models, dev)
    except (ElementError, StackError) as e:
        print(f"tsmlip rdf-md-stack: error: {e}", file=sys.stderr, flush=True)
        return 2
    if s["supercell"] != s["supercell_configured"]:
        print(f"[rdf-md-stack] supercell {s['supercell_configured']} -> {s['supercell']}: r_max_A = {s['r_max_A']} A "
              f"must stay below half the cell height", file=sys.stderr, flush=True)
    device = f"{device_description(dev)}, stack of {len(a.models)} models"
    print(f"[rdf-md-stack] {len(a.models)} models on {device}", file=sys.stderr, flush=True)
    warnings.filterwarnings("ignore", message="Provided distances are underneath sensitivity range")
    t0 = time.perf_counter()
    stack = LiquidStack(model, payload["species"], s, device=dev, labels=a.model_ids)
    runs = stack.run()
    wall = time.perf_counter() - t0
    from ..provenance import record

    for path, mid, run in zip(a.models, a.model_ids, runs):
        out = Path(a.out_root, mid)
        out.mkdir(parents=True, exist_ok=True)
        # each liquid's record names its own model (the settings and code are the stack's)
        write_liquid_outputs(run, s, mid, device, out / "rdf.csv", out / "rdf_md.json", pair_finder=PAIR_FINDER,
                             provenance=record("rdf-md-stack", a.config_json, {"model": path}))
    print(f"[rdf-md-stack] done: {len(runs)} liquids in {wall:.1f}s ({wall / len(runs):.1f}s per model), "
          f"{sum(r.stable for r in runs)} stable, {stack.forces.pairs.rebuilds} neighbour-list builds",
          file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
