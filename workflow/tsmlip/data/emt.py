"""The embedded dataset: periodic aluminum cells labelled with ASE's EMT potential.

An ANI-Al-like set generated here: fcc supercells with atoms removed at random (so atom counts vary),
isotropically strained (+-strain) and slightly sheared, snapshots from Langevin MD at temperatures from
room temperature to well above melting, spaced ``steps_between_snapshots`` apart. Stored per
configuration: energy, forces, cell, species, and EMT's own per-atom energies (analysis only).
Deterministic for a given seed.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from .dataset import pad_configurations, save_dataset, validate_arrays, versions


def _initial_structure(rng: np.random.Generator, emt_cfg: dict):
    from ase.build import bulk

    reps = emt_cfg["supercells"][rng.integers(len(emt_cfg["supercells"]))]
    atoms = bulk("Al", "fcc", a=emt_cfg["lattice_constant_A"], cubic=True).repeat(tuple(reps))
    n = len(atoms)
    n_remove = int(rng.integers(0, int(emt_cfg["max_vacancy_fraction"] * n) + 1))
    if n_remove:
        del atoms[sorted(rng.choice(n, size=n_remove, replace=False).tolist())]
    strain = rng.uniform(-emt_cfg["strain"], emt_cfg["strain"])
    shear = rng.uniform(-emt_cfg["shear"], emt_cfg["shear"], size=3)
    deform = np.eye(3) * (1.0 + strain)
    deform[0, 1] = deform[1, 0] = shear[0]
    deform[0, 2] = deform[2, 0] = shear[1]
    deform[1, 2] = deform[2, 1] = shear[2]
    atoms.set_cell(atoms.cell.array @ deform, scale_atoms=True)
    return atoms


def generate(emt_cfg: dict, progress=True) -> tuple[list[dict], dict]:
    """Run the EMT trajectories; returns per-configuration dicts and a summary."""
    from ase import units
    from ase.calculators.emt import EMT
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    rng = np.random.default_rng(emt_cfg["seed"])
    n_target = emt_cfg["n_configs"]
    per_traj = emt_cfg["snapshots_per_trajectory"]
    temps = emt_cfg["temperatures_K"]
    configs: list[dict] = []
    t0 = time.time()
    traj = 0
    while len(configs) < n_target:
        atoms = _initial_structure(rng, emt_cfg)
        T = float(temps[traj % len(temps)])
        atoms.calc = EMT()
        MaxwellBoltzmannDistribution(atoms, temperature_K=T, rng=rng)
        Stationary(atoms)
        dyn = Langevin(atoms, emt_cfg["timestep_fs"] * units.fs, temperature_K=T,
                       friction=emt_cfg["friction_per_fs"] / units.fs, rng=rng)
        dyn.run(emt_cfg["equilibration_steps"])
        for _ in range(per_traj):
            if len(configs) >= n_target:
                break
            dyn.run(emt_cfg["steps_between_snapshots"])
            configs.append({
                "Z": atoms.numbers.copy(), "R": atoms.positions.copy(), "cell": atoms.cell.array.copy(),
                "E": float(atoms.get_potential_energy()), "F": atoms.get_forces().copy(),
                "ref_atom_E": atoms.get_potential_energies().copy(), "T_K": T,
            })
        traj += 1
        if progress:
            done = len(configs)
            el = time.time() - t0
            print(f"[generate] {done}/{n_target} configurations ({100 * done / n_target:.0f}%), "
                  f"trajectory {traj} at {T:.0f} K, {len(atoms)} atoms, {el:.0f} s elapsed, "
                  f"~{el / done * (n_target - done):.0f} s left", file=sys.stderr, flush=True)
    summary = {"n_trajectories": traj, "wall_time_s": time.time() - t0}
    return configs, summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="tsmlip generate-dataset", description=__doc__)
    p.add_argument("--config-json", required=True, help="the data.emt section of the config, as JSON")
    p.add_argument("--min-distance", type=float, default=1.6, help="refuse atoms closer than this (A)")
    p.add_argument("--out", required=True, help="output dataset.npz (provenance.json is written beside)")
    a = p.parse_args(argv)
    emt_cfg = json.loads(a.config_json)
    configs, summary = generate(emt_cfg)
    arrays = pad_configurations(configs)
    validate_arrays(arrays, "generated EMT data", a.min_distance)
    save_dataset(arrays, a.out, {"source": "emt", "generator": "ase.calculators.emt.EMT + Langevin MD",
                                 "seed": emt_cfg["seed"], "settings": emt_cfg, "versions": versions(),
                                 **summary})
    print(f"[generate] wrote {len(configs)} configurations to {a.out}", file=sys.stderr)
    return 0
