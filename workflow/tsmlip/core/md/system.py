"""The MD systems: the thermalised crystal supercell of a requested number of atoms (timing, the memory
probe) and the liquid's starting structure (the RDF liquid, :func:`liquid_system`).

The crystal's element is the model's (``md.element``, or the single element the model was trained on), the crystal
ASE's reference structure and lattice constant of that element unless ``md.crystal_structure`` /
``md.lattice_constant_A`` are set (:mod:`tsmlip.core.elements`); for the default data, fcc aluminum, a = 4.05 A.

Units: lengths in Angstrom, temperature in K, ASE's internal velocity unit on the ``Atoms`` object.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

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


def _repeats_for_lengths(n_cells: int, lengths, max_aspect: float = 1.5) -> tuple[int, int, int]:
    """Repeats of an orthorhombic cell with edges ``lengths``: the fewest cells ``>= n_cells`` among the
    supercells whose longest / shortest edge is at most ``max_aspect`` (if any), then the most cubic."""
    lengths = np.asarray(lengths, dtype=float)
    best = None
    top = int(math.ceil(n_cells ** (1 / 3) * lengths.max() / lengths.min())) + 1
    for r1 in range(1, top + 1):
        for r2 in range(1, top + 1):
            r3 = max(1, -(-n_cells // (r1 * r2)))
            edges = lengths * (r1, r2, r3)
            aspect = edges.max() / edges.min()
            key = (aspect > max_aspect, r1 * r2 * r3, aspect)
            if best is None or key < best[0]:
                best = (key, (r1, r2, r3))
    return best[1]


def crystal_supercell(n_atoms: int, crystal: Crystal, seed: int = 0):
    """A supercell of exactly ``n_atoms`` atoms of ``crystal`` (:class:`Crystal`).

    The smallest near-cubic supercell of the conventional cell (cubic; orthorhombic for hcp) with at least
    ``n_atoms`` atoms is built (near-cubic in length); surplus atoms are removed at
    random (seeded), i.e. a few vacancies when ``n_atoms`` is not a whole number of cells. Returns an
    ``ase.Atoms`` with periodic boundaries; ``atoms.info`` holds ``supercell`` and ``vacancies``.
    """
    from ..elements import unit_cell

    n_atoms = int(n_atoms)
    if n_atoms < 1:
        raise ValueError(f"n_atoms must be positive (got {n_atoms})")
    unit = unit_cell(asdict(crystal))
    n_cells = -(-n_atoms // len(unit))
    lengths = unit.cell.lengths()
    reps = (supercell_repeats(n_cells) if np.allclose(lengths, lengths[0])
            else _repeats_for_lengths(n_cells, lengths))
    atoms = unit.repeat(reps)
    surplus = len(atoms) - n_atoms
    if surplus:
        rng = np.random.default_rng(seed)
        del atoms[np.sort(rng.choice(len(atoms), size=surplus, replace=False))]
    atoms.pbc = True
    atoms.info["supercell"] = list(reps)
    atoms.info["vacancies"] = int(surplus)
    return atoms


def fcc_supercell(n_atoms: int, lattice_constant_A: float, seed: int = 0, symbol: str = "Al"):
    """An orthorhombic fcc supercell of exactly ``n_atoms`` atoms (:func:`crystal_supercell` for fcc)."""
    crystal = Crystal(element=symbol, crystal_structure="fcc", lattice_constant_A=float(lattice_constant_A),
                      c_over_a=None, crystal_source="given")
    return crystal_supercell(n_atoms, crystal, seed=seed)


def thermalize(atoms, temperature_K: float, seed: int = 0, rng=None):
    """Maxwell-Boltzmann velocities at ``temperature_K`` with zero total momentum (in place), drawn from
    ``rng`` (a numpy Generator, which the caller may go on using, e.g. for Langevin noise) or a fresh
    generator seeded with ``seed``."""
    from ase.md import velocitydistribution as vd

    rng = np.random.default_rng(seed) if rng is None else rng
    if hasattr(vd, "thermalize_momenta"):  # ASE >= 3.29
        vd.thermalize_momenta(atoms, temperature_K, rng=rng)
    else:
        vd.MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng)
    vd.Stationary(atoms, preserve_temperature=True)
    return atoms


@dataclass(frozen=True)
class Crystal:
    """The crystal an MD cost run simulates, derived from the ``md:`` section and the model's species."""

    #: ``md.element``, or the single element the model was trained on
    element: str
    #: ``md.crystal_structure`` / ``md.lattice_constant_A``, or ASE's reference data of the element where null
    crystal_structure: str
    lattice_constant_A: float
    #: c/a of an hcp crystal, else None
    c_over_a: float | None
    #: where structure and lattice constant came from (the config keys or ASE's reference data)
    crystal_source: str


def resolve_crystal(md_cfg: dict, species, trained_on: str = "the model") -> Crystal:
    """The :class:`Crystal` of the ``md:`` section for a model of ``species``. Raises
    :class:`tsmlip.core.elements.ElementError` before any MD when the model cannot simulate the element."""
    from ..elements import crystal_settings, resolve_element

    sym = resolve_element(md_cfg.get("element"), species, "md.element", trained_on)
    crystal = crystal_settings(sym, md_cfg.get("crystal_structure"), md_cfg.get("lattice_constant_A"), key="md")
    return Crystal(element=sym, crystal_structure=crystal["crystal_structure"],
                   lattice_constant_A=crystal["lattice_constant_A"], c_over_a=crystal["c_over_a"],
                   crystal_source=crystal["source"])


@dataclass(frozen=True)
class CrystalSystem:
    """The thermalised crystal an MD cost run simulates, at any size (timing, the memory probe, the calculator's
    cost): passed as an argument, and as JSON to the memory probe's worker process."""

    crystal: Crystal
    temperature_K: float
    #: vacancies and velocities
    seed: int = 0

    def atoms(self, n_atoms: int):
        """``n_atoms`` atoms of the crystal (:func:`crystal_supercell`) with Maxwell-Boltzmann velocities at
        ``temperature_K`` (:func:`thermalize`), both seeded with ``seed``."""
        return thermalize(crystal_supercell(n_atoms, self.crystal, seed=self.seed), self.temperature_K,
                          seed=self.seed)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> CrystalSystem:
        return cls(crystal=Crystal(**obj["crystal"]), temperature_K=float(obj["temperature_K"]),
                   seed=int(obj["seed"]))


def crystal_system(md_cfg: dict, species, trained_on: str = "the model") -> CrystalSystem:
    """The :class:`CrystalSystem` of the ``md:`` section (``element``, ``crystal_structure``,
    ``lattice_constant_A``, ``temperature_K``, ``seed``) for a model of ``species`` (:func:`resolve_crystal`:
    :class:`tsmlip.core.elements.ElementError` before any MD when the model cannot simulate the element)."""
    return CrystalSystem(crystal=resolve_crystal(md_cfg, species, trained_on),
                         temperature_K=float(md_cfg["temperature_K"]), seed=int(md_cfg["seed"]))


# ------------------------------------------------------------------------------------------- liquid
def number_density(density_g_cm3: float, element: str = "Al") -> float:
    """Atoms per cubic Angstrom of a one-element system of mass density ``density_g_cm3``."""
    from ase.data import atomic_masses, atomic_numbers
    from ase.units import _amu

    mass_g = atomic_masses[atomic_numbers[element]] * _amu * 1e3
    return density_g_cm3 / mass_g * 1e-24


def liquid_lattice_constant(settings: dict) -> float:
    """Edge (A) of the cubic 4-atom fcc cell at the liquid's number density (``element``,
    ``density_g_cm3``)."""
    return (4.0 / number_density(settings["density_g_cm3"], settings["element"])) ** (1.0 / 3.0)


def initial_liquid_cell(settings: dict):
    """fcc supercell (cubic 4-atom cells repeated ``supercell``) of ``element`` scaled to ``density_g_cm3``
    (resolved ``rdf:`` settings, :func:`tsmlip.rdf.resolve_liquid`), atoms displaced by a Gaussian of
    ``rattle_A`` seeded with ``seed`` (breaks the lattice symmetry)."""
    from ase.build import bulk

    a = liquid_lattice_constant(settings)
    atoms = bulk(settings["element"], "fcc", a=a, cubic=True).repeat(tuple(settings["supercell"]))
    if settings["rattle_A"] > 0:
        atoms.rattle(stdev=settings["rattle_A"], seed=int(settings["seed"]))
    return atoms


def liquid_system(settings: dict, temperature_K: float, rng):
    """The liquid's starting state: :func:`initial_liquid_cell`, Maxwell-Boltzmann velocities at
    ``temperature_K`` from ``rng`` with zero total momentum, and ASE's ``FixCom`` constraint (the Langevin
    run holds the centre of mass; the engines honour it). ``rng`` then goes on to the Langevin noise."""
    from ase.constraints import FixCom

    atoms = initial_liquid_cell(settings)
    thermalize(atoms, temperature_K, rng=rng)
    atoms.set_constraint(FixCom())
    return atoms
