"""Energy and force scales that agree with each other and with the element (``data.checks``, docs/data.md).

The plausibility ranges (:mod:`tsmlip.data.plausibility`) compare a dataset with ranges wide enough for every
element, and each configuration with the rest of the data; a file whose every frame is off by the same factor, or
one frame whose error is smaller than the data's spread, passes them. Three checks of physics close those gaps,
each on single-element data (the workflow's), each naming a configuration and the likely unit or cause:

1. **Forces against the element** (:func:`stiffness_numbers`, :func:`stiffness_error`). The first-shell pairs of a configuration push apart
   harder the more they are compressed: the slope (the pair stiffness ``k``, eV/A^2) scales with the element's
   cohesive energy over its squared nearest-neighbour distance. ``k d^2 / E_coh`` is 4-12 on every dataset measured
   (EMT Al, Cu, Ag, Au, Ni, Pd, Pt crystals and liquids; the default data's CHGNet labels: 6.7; a Lennard-Jones solid:
   6.6). Forces in Hartree/Bohr (a factor 51 too small) or Hartree/A (27) fall far below
   :data:`STIFFNESS_RANGE`, forces in kcal/mol/A far above it.
2. **Energies against the forces** (:func:`agreement_numbers`, :func:`agreement_error`). A hotter configuration has larger forces
   and a higher energy: across the dataset the energy per atom rises with the mean squared force ``m`` as
   ``e = e0 + alpha m``, and for a harmonic solid ``alpha = 1 / (2 k_site)`` with the site stiffness ``k_site``
   = ``z/3`` times the pair stiffness, so ``kappa = alpha k = 3 / (2 z)``: 0.125 for fcc, 0.19 bcc, 0.375 diamond
   (measured 0.11-0.17 on the data above). Energies in Hartree with forces in eV/A (kappa / 27), per-atom energies
   stored as the totals (kappa / N, also when every cell has the same size, where the size test of
   :func:`tsmlip.data.plausibility.configuration_outliers` cannot see it), or energies in kcal/mol (x 23) fall
   outside :data:`KAPPA_RANGE`.
3. **One configuration's energy against its own forces** (:func:`energy_below_forces`, :func:`below_error`). A configuration cannot sit
   far below the energy its forces put it at (the dataset's ``e0 + alpha m`` with the per-configuration median of
   the squared forces, robust to a few atoms in close contact); one that does, and that a unit factor brings back
   onto the trend (Hartree: x 27.2; a per-atom energy stored as the total: x N), stops the import. This catches one
   frame in Hartree among EMT-scale energies (about 0.1 eV/atom), below the 0.3 eV/atom floor of the outlier check,
   whenever its forces place it above the data's spread; a frame closer to the trend than that is an error the
   data cannot show. A configuration above the trend (strain, vacancies) is physics, never flagged.

Measured on the default data (120 configurations, CHGNet labels and the EMT source), the tiny config's data, EMT
copper read from extended XYZ and rattled fcc crystals of seven elements: no check fires; on the same data in
Hartree and Hartree/Bohr, with per-atom energies as totals or with energies in Hartree, the checks fire with a
margin of 3x or more.
"""
from __future__ import annotations

import numpy as np

from .dataset import DataError

#: cohesive energies (eV/atom; Kittel, Introduction to Solid State Physics, table 3.1) of the elements whose scale is
#: checked; other elements are not checked
COHESIVE_ENERGY_EV = {
    "Li": 1.63, "Be": 3.32, "B": 5.81, "C": 7.37, "Na": 1.113, "Mg": 1.51, "Al": 3.39, "Si": 4.63, "K": 0.934,
    "Ca": 1.84, "Sc": 3.90, "Ti": 4.85, "V": 5.31, "Cr": 4.10, "Mn": 2.92, "Fe": 4.28, "Co": 4.39, "Ni": 4.44,
    "Cu": 3.49, "Zn": 1.35, "Ga": 2.81, "Ge": 3.85, "Rb": 0.852, "Sr": 1.72, "Y": 4.37, "Zr": 6.25, "Nb": 7.57,
    "Mo": 6.82, "Ru": 6.74, "Rh": 5.75, "Pd": 3.89, "Ag": 2.95, "Cd": 1.16, "In": 2.52, "Sn": 3.14, "Cs": 0.804,
    "Ba": 1.90, "La": 4.47, "Hf": 6.44, "Ta": 8.10, "W": 8.90, "Re": 8.03, "Os": 8.17, "Ir": 6.94, "Pt": 5.84,
    "Au": 3.81, "Tl": 1.88, "Pb": 2.03, "Bi": 2.18}
#: plausible ``k d^2 / E_coh`` (the pair stiffness against the element's scale; measured 4-12)
STIFFNESS_RANGE = (1.0, 60.0)
TYPICAL_STIFFNESS = 7.0
#: plausible ``kappa = alpha k`` (the energy's rise with the squared forces against the pair stiffness; 3/(2z))
KAPPA_RANGE = (0.02, 1.5)
TYPICAL_KAPPA = 0.14
#: the energy/force agreement is judged only where hotter configurations are higher in energy (Spearman rho of the
#: energy per atom against the mean squared force at least this), over at least this many configurations
KAPPA_MIN_RHO = 0.3
MIN_CONFIGS = 5
#: a configuration lies below its forces' energy when its residual is below the median by this many robust
#: deviations, and a unit factor brings it within EXPLAINED_DEVIATIONS deviations (at least EXPLAINED_FLOOR_EV)
BELOW_DEVIATIONS = 4.0
EXPLAINED_DEVIATIONS = 3.0
EXPLAINED_FLOOR_EV = 0.02
#: at most this many configurations enter the trend fit (a deterministic subsample; the fit is quadratic in it)
MAX_FIT = 1500
HARTREE_EV = 27.211386
HARTREE_BOHR_EV_A = 27.211386 / 0.52917721
#: force unit mistakes: (what, factor the stored forces are too small by)
_FORCE_UNITS = (("forces in Hartree/Bohr instead of eV/A", HARTREE_BOHR_EV_A),
                ("forces in Hartree/A instead of eV/A", HARTREE_EV),
                ("forces in kcal/mol/A instead of eV/A", 1 / 23.0605),
                ("forces in kJ/mol/A instead of eV/A", 1 / 96.4853),
                ("forces in meV/A instead of eV/A", 1e-3))


def _element(arrays: dict) -> str | None:
    """The one element of single-element data (None for several)."""
    from ase.data import chemical_symbols

    Z = np.asarray(arrays["Z"])
    species = np.unique(Z[Z != 0])
    return chemical_symbols[int(species[0])] if len(species) == 1 else None


def _at(c: int, where) -> str:
    return f" ({where[c]})" if where and where[c] else ""


def _ranked(value: float, units, lo: float, hi: float, typical: float) -> list[str]:
    """The unit mistakes that bring ``value`` into [lo, hi], closest to ``typical`` (in log scale) first."""
    fits = sorted((abs(np.log(value * f / typical)), what) for what, f in units if lo <= value * f <= hi)
    return [what for _, what in fits[:2]]


def stiffness_numbers(arrays: dict, stiffness: np.ndarray, consistent: np.ndarray) -> dict | None:
    """Check 1 of the module, the numbers: the median pair stiffness of the configurations whose forces fit their
    geometry (``consistent``) against the element's ``E_coh / d^2`` (None: not judged: several elements, an element
    without a cohesive energy here, fewer than 3 configurations)."""
    from ase.data import atomic_numbers

    from .dataset import element_nn_distance

    sym = _element(arrays)
    ok = np.nonzero(consistent & np.isfinite(stiffness))[0]
    if sym not in COHESIVE_ENERGY_EV or len(ok) < 3:
        return None
    d0, what = element_nn_distance(atomic_numbers[sym])
    k = float(np.median(stiffness[ok]))
    return {"element": sym, "pair_stiffness_eV_A2": k, "nn_distance_A": d0, "nn_from": what,
            "stiffness_over_element_scale": k * d0 ** 2 / COHESIVE_ENERGY_EV[sym], "range": list(STIFFNESS_RANGE),
            "n_configurations": int(len(ok)), "first": int(ok[0])}


def stiffness_error(st: dict, agree: dict | None, source: str, where=None) -> str | None:
    """The one-line message of check 1 (None: within :data:`STIFFNESS_RANGE`). ``agree``: check 2's numbers; when
    the energies agree with the forces, a force unit of the Hartree family means Hartree energies too."""
    lo, hi = STIFFNESS_RANGE
    scale, k, sym = st["stiffness_over_element_scale"], st["pair_stiffness_eV_A2"], st["element"]
    if lo <= scale <= hi:
        return None
    likely = _ranked(scale, _FORCE_UNITS, lo, hi, TYPICAL_STIFFNESS) or ["forces of another quantity or unit"]
    kappa = (agree or {}).get("kappa")
    if kappa is not None and KAPPA_RANGE[0] <= kappa <= KAPPA_RANGE[1] and "Hartree" in likely[0]:
        likely[0] = (f"energies in Hartree and {likely[0].replace(' instead of eV/A', '')} instead of eV and eV/A "
                     f"(the energies agree with the forces)")
    c, n = st["first"], st["n_configurations"]
    return (f"{source}: configuration {c}{_at(c, where)} (and {n - 1} more of the {n} judged): the forces are "
            f"{'too weak' if scale < lo else 'too strong'} for {sym}: compressed first-shell pairs push back {k:.3g} "
            f"eV/A per A (median), {scale:.3g} x E_coh/d^2 of {sym} ({COHESIVE_ENERGY_EV[sym]} eV, "
            f"{st['nn_distance_A']:.3g} A, {st['nn_from']}; solids give {lo:g}-{hi:g}); likely: {'; or '.join(likely)}. "
            f"Fix the data's units, or set data.checks: false for exotic data")


def _trend(e: np.ndarray, m: np.ndarray, use: np.ndarray) -> tuple[float, float]:
    """The Theil-Sen line ``e = e0 + alpha m`` over the configurations ``use`` (a deterministic subsample of at most
    :data:`MAX_FIT`): (alpha, e0)."""
    from scipy.stats import theilslopes

    idx = np.nonzero(use)[0]
    if len(idx) > MAX_FIT:
        idx = np.sort(np.random.default_rng(0).choice(idx, MAX_FIT, replace=False))
    alpha, e0 = theilslopes(e[idx], m[idx])[:2]
    return float(alpha), float(e0)


def _squared_forces(arrays: dict, how) -> np.ndarray:
    Z, F = np.asarray(arrays["Z"]), np.asarray(arrays["F"])
    n = (Z != 0).sum(axis=1)
    return np.array([float(how(np.sum(F[c, :n[c]] ** 2, axis=1))) for c in range(len(Z))])


def agreement_numbers(arrays: dict, k: float | None, close=()) -> dict | None:
    """Check 2 of the module, the numbers: ``kappa``, the energy's rise with the mean squared force times the pair
    stiffness ``k`` (check 1's; None: not judged). ``kappa`` is None where hotter configurations are not higher in
    energy (:data:`KAPPA_MIN_RHO`: energies set by strain, composition, ...)."""
    from scipy.stats import spearmanr

    Z, E = np.asarray(arrays["Z"]), np.asarray(arrays["E"], dtype=float)
    n = (Z != 0).sum(axis=1)
    use = n > 1
    use[list(close)] = False
    if not k or k <= 0 or _element(arrays) is None or use.sum() < MIN_CONFIGS:
        return None
    e, m = E / n, _squared_forces(arrays, np.mean)
    rho = float(spearmanr(e[use], m[use]).statistic)
    if not np.isfinite(rho) or rho < KAPPA_MIN_RHO:
        return {"rho": rho if np.isfinite(rho) else None, "kappa": None}
    alpha = _trend(e, m, use)[0]
    return {"rho": rho, "alpha_A2_per_eV": alpha, "pair_stiffness_eV_A2": k, "kappa": alpha * k,
            "range": list(KAPPA_RANGE), "n_configurations": int(use.sum()), "first": int(np.nonzero(use)[0][0]),
            "median_atoms": float(np.median(n[use]))}


def agreement_error(ag: dict, source: str, where=None) -> str | None:
    """The one-line message of check 2 (None: within :data:`KAPPA_RANGE`, or not judged)."""
    lo, hi = KAPPA_RANGE
    kappa = ag.get("kappa")
    if kappa is None or lo <= kappa <= hi:
        return None
    units = (("energies in Hartree instead of eV", HARTREE_EV),
             ("per-atom energies stored as the totals", ag["median_atoms"]),
             ("energies in kcal/mol instead of eV", 1 / 23.0605), ("energies in kJ/mol instead of eV", 1 / 96.4853),
             ("energies in meV instead of eV", 1e-3))
    likely = _ranked(kappa, units, lo, hi, TYPICAL_KAPPA) or ["energies of another quantity or unit"]
    c, n = ag["first"], ag["n_configurations"]
    return (f"{source}: configuration {c}{_at(c, where)} (and the {n - 1} others): the energies "
            f"{'barely rise' if kappa < lo else 'rise too steeply'} with the forces: {ag['alpha_A2_per_eV']:.3g} "
            f"eV/atom per (eV/A)^2 of mean squared force, times the pair stiffness {ag['pair_stiffness_eV_A2']:.3g} "
            f"eV/A^2 that is {kappa:.3g} (energies and forces of one unit system give {lo:g}-{hi:g}, 3/(2 x "
            f"coordination)); likely: {'; or '.join(likely)}. Fix the data's units, or set data.checks: false for "
            f"exotic data")


def energy_below_forces(arrays: dict, close=()) -> dict:
    """Check 3 of the module, the numbers: the configurations whose energy per atom lies far below the trend of the
    dataset's energies with their median squared force, each with the unit factors that bring it back
    (``causes``; empty: none does, recorded only)."""
    Z, E = np.asarray(arrays["Z"]), np.asarray(arrays["E"], dtype=float)
    n = (Z != 0).sum(axis=1)
    use = n > 1
    use[list(close)] = False
    if _element(arrays) is None or use.sum() < 2 * MIN_CONFIGS:
        return {"below": []}
    e, m = E / n, _squared_forces(arrays, np.median)
    if np.ptp(m[use]) <= 0:  # forces all alike (a file without forces): no trend
        return {"below": []}
    alpha, e0 = _trend(e, m, use)
    pred = e0 + alpha * m
    r = e - pred
    med = float(np.median(r[use]))
    mad = 1.4826 * float(np.median(np.abs(r[use] - med)))
    if mad <= 0:
        return {"below": []}
    tol = max(EXPLAINED_DEVIATIONS * mad, EXPLAINED_FLOOR_EV)
    below = []
    for c in np.nonzero(use & (r < med - BELOW_DEVIATIONS * mad))[0]:
        causes = [what for what, f in (("the energy in Hartree instead of eV", HARTREE_EV),
                                       ("a per-atom energy stored as the configuration's total", float(n[c])))
                  if abs(e[c] * f - pred[c] - med) <= tol]
        below.append({"index": int(c), "energy_per_atom_eV": float(e[c]), "expected_eV": float(pred[c] + med),
                      "deviations": float((r[c] - med) / mad), "causes": causes})
    return {"alpha_A2_per_eV": alpha, "residual_mad_eV": mad, "below": below}


def below_error(below: dict, source: str, where=None) -> str | None:
    """The one-line message of check 3 (None: no configuration below its forces' energy that a unit explains)."""
    explained = [b for b in below["below"] if b["causes"]]
    if not explained:
        return None
    b = explained[0]
    c = b["index"]
    return (f"{source}: configuration {c}{_at(c, where)}: its energy per atom {b['energy_per_atom_eV']:.4g} eV/atom "
            f"lies {-b['deviations']:.1f} robust deviations below what its forces put it at ({b['expected_eV']:.4g} "
            f"eV/atom, the dataset's rise of the energy with the squared forces); likely: {'; or '.join(b['causes'])} "
            f"({len(explained)} such configurations). Fix or remove it, or set data.checks: false")


def check_scales(arrays: dict, source: str, stiffness: np.ndarray, consistent: np.ndarray, close=(), where=None,
                 check: bool = True) -> dict:
    """The three checks of the module, the first that fails stopping the import (:class:`DataError`; with ``check``
    False only the numbers): ``stiffness`` per configuration and which configurations' forces fit their geometry
    (``consistent``), from :func:`tsmlip.data.plausibility.pair_consistency`; ``close``: configurations with close
    contacts (left out of checks 2 and 3). Returns the numbers, for ``provenance.json`` (``plausibility.scales``)."""
    st = stiffness_numbers(arrays, np.asarray(stiffness), np.asarray(consistent))
    ag = agreement_numbers(arrays, (st or {}).get("pair_stiffness_eV_A2"), close)
    below = energy_below_forces(arrays, close)
    if check:
        for msg in (st and stiffness_error(st, ag, source, where), ag and agreement_error(ag, source, where),
                    below_error(below, source, where)):
            if msg:
                raise DataError(msg)
    return {"stiffness": st, "energy_force_agreement": ag, "energy_below_forces": below}
