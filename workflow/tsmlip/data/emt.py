"""The embedded dataset: periodic aluminum cells labelled with ASE's EMT potential.

An ANI-Al-like set generated here, built for what the models are later used for (the liquid-Al RDF
melt and the MD cost runs), from four families of configurations (shares set by ``mix``):

* ``crystal``: fcc supercells with atoms removed at random (so atom counts vary), a small isotropic
  strain and shear, Langevin MD snapshots from room temperature to above melting;
* ``strained``: compressed and expanded crystals (isotropic strain over ``strained.strain_range``), hot
  or cold, so the equation of state around the lattice constant is covered;
* ``liquid``: cells scaled to liquid densities (``liquid.density_g_cm3`` range; the RDF state point is
  inside it), melted at ``liquid.melt_temperature_K`` and held at temperatures drawn from
  ``liquid.temperatures_K`` (range) before snapshots are taken;
* ``close_contact``: snapshots of hot liquids or crystals in which one to ``close_contact.max_pairs``
  atoms are pushed towards a neighbour to a distance drawn from ``close_contact.distance_A`` (range),
  below the liquid's closest approach, so the repulsive wall that a hot melt can reach is in the data.

Stored per configuration: energy, forces, cell, species, EMT's own per-atom energies (analysis only),
the MD temperature ``T_K`` and the family ``config_kind`` (index into :data:`FAMILIES`).
Deterministic for a given seed.
"""
from __future__ import annotations

import sys
import time

import numpy as np

from .dataset import pad_configurations, save_dataset, validate_arrays, versions

#: the families of generated configurations, in the order of their index in ``config_kind``
FAMILIES = ("crystal", "strained", "liquid", "close_contact")
ELEMENT = "Al"


def family_counts(n_configs: int, mix: dict) -> dict[str, int]:
    """How many configurations of each family (largest-remainder rounding of ``n_configs * share``)."""
    shares = np.array([float(mix.get(f, 0.0)) for f in FAMILIES])
    if shares.sum() <= 0:
        raise ValueError("data.emt.mix: every share is zero")
    exact = n_configs * shares / shares.sum()
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts))[: n_configs - counts.sum()]:
        counts[i] += 1
    return {f: int(c) for f, c in zip(FAMILIES, counts)}


def _fcc(rng, cfg: dict, reps=None):
    from ase.build import bulk

    reps = reps or cfg["supercells"][rng.integers(len(cfg["supercells"]))]
    return bulk(ELEMENT, "fcc", a=cfg["lattice_constant_A"], cubic=True).repeat(tuple(reps))


def _remove_atoms(atoms, rng, max_fraction: float):
    n = len(atoms)
    n_remove = int(rng.integers(0, int(max_fraction * n) + 1))
    if n_remove:
        del atoms[sorted(rng.choice(n, size=n_remove, replace=False).tolist())]
    return atoms


def _deform(atoms, strain: float, shear: np.ndarray):
    deform = np.eye(3) * (1.0 + strain)
    deform[0, 1] = deform[1, 0] = shear[0]
    deform[0, 2] = deform[2, 0] = shear[1]
    deform[1, 2] = deform[2, 1] = shear[2]
    atoms.set_cell(atoms.cell.array @ deform, scale_atoms=True)
    return atoms


def density_g_cm3(atoms) -> float:
    """Mass density of a periodic cell (g/cm^3)."""
    from ase.units import _amu

    return float(atoms.get_masses().sum() * _amu * 1e3 / (atoms.get_volume() * 1e-24))


def _scale_to_density(atoms, rho_g_cm3: float):
    atoms.set_cell(atoms.cell.array * (density_g_cm3(atoms) / rho_g_cm3) ** (1.0 / 3.0), scale_atoms=True)
    return atoms


def _start(family: str, rng, cfg: dict):
    """Initial structure and the temperatures (melt, hold) of one trajectory of ``family``."""
    if family in ("crystal", "close_contact_crystal"):
        c = cfg["crystal"]
        atoms = _remove_atoms(_fcc(rng, cfg), rng, c["max_vacancy_fraction"])
        _deform(atoms, rng.uniform(-c["strain"], c["strain"]), rng.uniform(-c["shear"], c["shear"], size=3))
        return atoms, None, float(rng.choice(c["temperatures_K"]))
    if family == "strained":
        c = cfg["strained"]
        atoms = _remove_atoms(_fcc(rng, cfg), rng, cfg["crystal"]["max_vacancy_fraction"])
        _deform(atoms, rng.uniform(*c["strain_range"]), rng.uniform(-c["shear"], c["shear"], size=3))
        return atoms, None, float(rng.choice(c["temperatures_K"]))
    # liquid (also the start of liquid close contacts)
    c = cfg["liquid"]
    atoms = _fcc(rng, cfg, reps=c["supercells"][rng.integers(len(c["supercells"]))])
    _scale_to_density(atoms, rng.uniform(*c["density_g_cm3"]))
    return atoms, float(c["melt_temperature_K"]), float(rng.uniform(*c["temperatures_K"]))


def push_close_contacts(atoms, rng, n_pairs: int, distance_range, min_other_A: float) -> list[float]:
    """Move ``n_pairs`` atoms (in place) towards their nearest neighbour until the pair is at a distance
    drawn from ``distance_range`` (A), keeping every other pair of the moved atom at least
    ``min_other_A`` apart. Returns the distances made (fewer when no placement works)."""
    from ase.neighborlist import neighbor_list

    made: list[float] = []
    for _ in range(n_pairs):
        for _attempt in range(20):
            i_idx, j_idx, d, D = neighbor_list("ijdD", atoms, 4.0)
            i = int(rng.integers(len(atoms)))
            mine = i_idx == i
            if not mine.any():
                continue
            k = np.argmin(np.where(mine, d, np.inf))
            target = float(rng.uniform(*distance_range))
            unit = D[k] / d[k]                       # from i to its nearest neighbour j
            new_pos = atoms.positions[i] + unit * (d[k] - target)
            trial = atoms.copy()
            trial.positions[i] = new_pos
            ti, tj, td = neighbor_list("ijd", trial, 4.0)
            others = (ti == i) & (tj != j_idx[k])
            closest = td[ti == i].min()
            if abs(closest - target) < 1e-6 and (not others.any() or td[others].min() >= min_other_A):
                atoms.positions[i] = new_pos
                made.append(target)
                break
    return made


def generate(emt_cfg: dict, progress=True) -> tuple[list[dict], dict]:
    """Run the EMT trajectories of every family; returns per-configuration dicts and a summary."""
    from ase import units
    from ase.calculators.emt import EMT
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md import velocitydistribution as vd
    from ase.md.velocitydistribution import Stationary

    thermalize = getattr(vd, "thermalize_momenta", vd.MaxwellBoltzmannDistribution)  # ASE >= 3.29 / older

    rng = np.random.default_rng(emt_cfg["seed"])
    counts = family_counts(emt_cfg["n_configs"], emt_cfg["mix"])
    per_traj = emt_cfg["snapshots_per_trajectory"]
    n_target = sum(counts.values())
    configs: list[dict] = []
    t0 = time.time()
    traj = 0
    cc = emt_cfg["close_contact"]
    for family, n_family in counts.items():
        made = 0
        while made < n_family:
            # close contacts start from hot liquids and crystals, alternately
            start = family if family != "close_contact" else ("liquid" if traj % 2 else "close_contact_crystal")
            atoms, melt_T, T = _start(start, rng, emt_cfg)
            if family == "close_contact":
                T = float(rng.uniform(*cc["temperatures_K"]))
            atoms.calc = EMT()
            dyn_T = melt_T or T
            thermalize(atoms, temperature_K=dyn_T, rng=rng)
            Stationary(atoms)
            atoms.set_constraint(FixCom())
            dyn = Langevin(atoms, emt_cfg["timestep_fs"] * units.fs, temperature_K=dyn_T,
                           friction=emt_cfg["friction_per_fs"] / units.fs, fixcm=False, rng=rng)
            if melt_T:
                dyn.run(emt_cfg["liquid"]["melt_steps"])
                dyn.set_temperature(temperature_K=T)
            dyn.run(emt_cfg["equilibration_steps"])
            for _ in range(per_traj):
                if made >= n_family:
                    break
                dyn.run(emt_cfg["steps_between_snapshots"])
                snap = atoms.copy()
                snap.set_constraint()
                contacts = []
                if family == "close_contact":
                    contacts = push_close_contacts(snap, rng, int(rng.integers(1, cc["max_pairs"] + 1)),
                                                   cc["distance_A"], min_other_A=cc["distance_A"][0])
                    if not contacts:
                        continue
                snap.calc = EMT()
                configs.append({
                    "Z": snap.numbers.copy(), "R": snap.positions.copy(), "cell": snap.cell.array.copy(),
                    "E": float(snap.get_potential_energy()), "F": snap.get_forces().copy(),
                    "ref_atom_E": snap.get_potential_energies().copy(), "T_K": T,
                    "kind": FAMILIES.index(family),
                })
                made += 1
            traj += 1
            if progress:
                done = len(configs)
                el = time.time() - t0
                print(f"[generate] {done}/{n_target} configurations ({100 * done / n_target:.0f}%), "
                      f"{family} trajectory {traj} at {T:.0f} K, {len(atoms)} atoms, "
                      f"{density_g_cm3(atoms):.2f} g/cm3, {el:.0f} s elapsed, "
                      f"~{el / max(done, 1) * (n_target - done):.0f} s left", file=sys.stderr, flush=True)
    summary = {"n_trajectories": traj, "wall_time_s": time.time() - t0, "family_counts": counts}
    return configs, summary


def to_arrays(configs: list[dict]) -> dict[str, np.ndarray]:
    """Padded arrays of the generated configurations, with the family index ``config_kind``."""
    arrays = pad_configurations(configs)
    arrays["config_kind"] = np.array([c["kind"] for c in configs], dtype=np.int64)
    return arrays


def main(argv=None) -> int:
    from .coverage import coverage_summary

    from ..cli import step_parser
    from ..provenance import record

    p = step_parser("generate-dataset", __doc__)
    p.add_argument("--out", required=True, help="output dataset.npz (provenance.json is written beside)")
    a = p.parse_args(argv)
    emt_cfg = a.config_json["data"]["emt"]
    configs, summary = generate(emt_cfg)
    arrays = to_arrays(configs)
    validate_arrays(arrays, "generated EMT data", a.config_json["data"]["min_distance_A"])
    save_dataset(arrays, a.out, {"source": "emt", "generator": "ase.calculators.emt.EMT + Langevin MD",
                                 "seed": emt_cfg["seed"], "settings": emt_cfg, "versions": versions(),
                                 "families": list(FAMILIES), **summary,
                                 "coverage": coverage_summary(arrays, families=FAMILIES)},
                 record("generate-dataset", a.config_json, {}))
    print(f"[generate] wrote {len(configs)} configurations to {a.out}", file=sys.stderr)
    return 0
