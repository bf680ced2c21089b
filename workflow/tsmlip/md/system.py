"""The MD test system: a thermalised fcc aluminum supercell of (close to) a requested number of atoms.

Units: lengths in Angstrom, temperature in K, ASE's internal velocity unit on the ``Atoms`` object.
"""
from __future__ import annotations

import math

import numpy as np


def supercell_repeats(n_cells: int, max_aspect: float = 1.5) -> tuple[int, int, int]:
    """The near-cubic repeats (a <= b <= c) with the fewest unit cells ``a*b*c >= n_cells``.

    Ties go to the most cubic shape; ``c / a <= max_aspect`` (the cube ``ceil(n**(1/3))**3`` always qualifies).
    """
    if n_cells < 1:
        raise ValueError(f"need at least one unit cell (got {n_cells})")
    best = None
    a_max = int(round(n_cells ** (1 / 3))) + 1
    for a in range(1, a_max + 1):
        b_max = int(math.isqrt(max(n_cells // a, 1))) + 1
        for b in range(a, b_max + 1):
            c = max(b, -(-n_cells // (a * b)))
            if c / a > max_aspect:
                continue
            key = (a * b * c, c - a, c / a)
            if best is None or key < best[0]:
                best = (key, (a, b, c))
    return best[1]


def fcc_supercell(n_atoms: int, lattice_constant_A: float, seed: int = 0, symbol: str = "Al"):
    """An orthorhombic fcc supercell of exactly ``n_atoms`` atoms.

    The smallest near-cubic supercell of the cubic 4-atom cell with at least ``n_atoms`` atoms is built;
    surplus atoms are removed at random (seeded), i.e. a few vacancies when ``n_atoms`` is not 4*a*b*c.
    Returns an ``ase.Atoms`` with periodic boundaries; ``atoms.info`` holds ``supercell`` and ``vacancies``.
    """
    from ase.build import bulk

    n_atoms = int(n_atoms)
    if n_atoms < 1:
        raise ValueError(f"n_atoms must be positive (got {n_atoms})")
    reps = supercell_repeats(-(-n_atoms // 4))
    atoms = bulk(symbol, "fcc", a=lattice_constant_A, cubic=True).repeat(reps)
    surplus = len(atoms) - n_atoms
    if surplus:
        rng = np.random.default_rng(seed)
        del atoms[np.sort(rng.choice(len(atoms), size=surplus, replace=False))]
    atoms.pbc = True
    atoms.info["supercell"] = list(reps)
    atoms.info["vacancies"] = int(surplus)
    return atoms


def thermalize(atoms, temperature_K: float, seed: int = 0):
    """Maxwell-Boltzmann velocities at ``temperature_K`` with zero total momentum (in place)."""
    from ase.md import velocitydistribution as vd

    rng = np.random.default_rng(seed)
    if hasattr(vd, "thermalize_momenta"):  # ASE >= 3.29
        vd.thermalize_momenta(atoms, temperature_K, rng=rng)
    else:
        vd.MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng)
    vd.Stationary(atoms, preserve_temperature=True)
    return atoms


def md_system(n_atoms: int, md_cfg: dict, seed: int | None = None):
    """The thermalised test system of the ``md:`` config section (lattice constant, temperature, seed)."""
    seed = int(md_cfg.get("seed", 0) if seed is None else seed)
    atoms = fcc_supercell(n_atoms, md_cfg["lattice_constant_A"], seed=seed)
    return thermalize(atoms, md_cfg["temperature_K"], seed=seed)
