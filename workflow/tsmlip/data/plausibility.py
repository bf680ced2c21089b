"""Plausibility of a dataset read from files (``data.checks``, docs/data.md): energies and forces against the ranges
condensed matter stays in, and each configuration against the dataset's own distribution, naming the likely unit
mistake or cause (:func:`plausibility`, called by :func:`tsmlip.data.io.prepare`).
"""
from __future__ import annotations

import numpy as np

from .dataset import DataError
from .scales import check_scales


#: plausible ranges (``data.checks``): the median energy per atom over the dataset (eV/atom) and the mean
#: force magnitude of each element (eV/A). Cohesive energies lie within 0-9 eV/atom and DFT codes with
#: pseudopotentials give total energies of a few to ~15 eV/atom below zero; the ANI-Al shift makes its
#: energies ~0 eV/atom. Mean forces of hot, compressed or liquid data stay near or below ~2 eV/A.
ENERGY_PER_ATOM_RANGE_EV = (-20.0, 5.0)
MEAN_FORCE_MAX_EV_A = 5.0
KCAL_PER_MOL_EV = 23.0605  # 1 eV = 23.0605 kcal/mol
KJ_PER_MOL_EV = 96.4853
HARTREE_EV = 27.211386


#: typical magnitudes the generic unit guesses are ranked by (closest in log scale first)
TYPICAL_ENERGY_PER_ATOM_EV = 3.0
TYPICAL_MEAN_FORCE_EV_A = 0.5
#: generic unit mistakes: (what, factor the stored values are too large by)
_GENERIC_UNITS = (("kcal/mol", KCAL_PER_MOL_EV), ("kJ/mol", KJ_PER_MOL_EV), ("meV", 1000.0))


def _ranked(value: float, ok, typical: float, what: str) -> list[str]:
    cands = [(abs(np.log(max(abs(value / f), 1e-12) / typical)), unit) for unit, f in _GENERIC_UNITS
             if ok(value / f)]
    return [f"{what} in {unit}{'/A' if what == 'forces' else ''} instead of eV{'/A' if what == 'forces' else ''}"
            for _, unit in sorted(cands)[:2]]


def _energy_guesses(e: float, source_kind: str | None, shift: float) -> list[str]:
    lo, hi = ENERGY_PER_ATOM_RANGE_EV
    ok = (lambda x: lo <= x <= hi)
    out = []
    if source_kind == "ani_h5":
        if abs(e - shift) < 0.1 * max(abs(shift), 1.0) and shift:
            out.append(f"per-atom energies stored as the totals (the energy per atom is close to "
                       f"data.ani_energy_shift_eV_per_atom = {shift})")
        elif ok((e - shift) / HARTREE_EV + shift):
            out.append(f"energies in eV stored where the ANI-Al layout expects Hartree (the reader multiplied them "
                       f"by {HARTREE_EV:.2f})")
    out += _ranked(e, ok, TYPICAL_ENERGY_PER_ATOM_EV, "energies")
    return out or ["total energies of an all-electron code, or a missing or wrong reference shift"]


def _force_guesses(f: float, source_kind: str | None) -> list[str]:
    ok = (lambda x: 0 < x <= MEAN_FORCE_MAX_EV_A)
    out = []
    if source_kind == "ani_h5" and ok(f / HARTREE_EV):
        out.append(f"forces in eV/A stored where the ANI-Al layout expects Hartree/A (multiplied by {HARTREE_EV:.2f})")
    out += _ranked(f, ok, TYPICAL_MEAN_FORCE_EV_A, "forces")
    return out or ["forces of broken configurations, or another unit"]


def plausibility(arrays: dict, source: str, source_kind: str | None = None, shift: float = 0.0,
                 check: bool = True, where: list[str] | None = None, min_dist: np.ndarray | None = None,
                 close: list[int] = ()) -> dict:
    """The dataset's median energy per atom and mean force magnitude per element; with ``check``, a
    :class:`DataError` naming the likely unit mistake when one lies outside the plausible ranges
    (:data:`ENERGY_PER_ATOM_RANGE_EV`, :data:`MEAN_FORCE_MAX_EV_A`), or when every force of an element in
    configurations of more than one atom is exactly zero (a file without forces). Then each configuration on its
    own (:func:`configuration_outliers`, :func:`pair_consistency`): an energy per atom, mean force or closest
    distance far from the dataset's own distribution that a unit mistake explains, per-atom energies stored as
    totals, and forces that do not fit their configuration's geometry (rows permuted, another frame's forces) each
    stop here, naming the configuration and the likely cause; outliers no unit mistake explains are recorded
    (``per_configuration``) and warned about. ``data.checks: false`` (``check=False``) only records the numbers,
    for exotic data. ``where``: per configuration, where it came from; ``min_dist``: its closest distance (A);
    ``close``: configurations with close contacts (their outliers are recorded only)."""
    from ase.data import chemical_symbols

    Z, E, F = (np.asarray(arrays[k]) for k in ("Z", "E", "F"))
    counts = (Z != 0).sum(axis=1)
    e = float(np.median(E / counts))
    fnorm = np.linalg.norm(F, axis=2)
    multi = (counts > 1)[:, None] & (Z != 0)
    per_element = {}
    for z in sorted(int(v) for v in np.unique(Z) if v != 0):
        sel = Z == z
        has = sel.any(axis=1)  # the dataset-level range is judged on the typical configuration (a median), so a
        # single frame in other units is left to the per-configuration check, which names it
        per_conf = (fnorm * sel).sum(axis=1)[has] / sel.sum(axis=1)[has]
        per_element[chemical_symbols[z]] = {"mean_force_eV_A": float(fnorm[sel].mean()),
                                            "median_configuration_mean_force_eV_A": float(np.median(per_conf)),
                                            "in_multi_atom_configs": int((sel & multi).sum()),
                                            "mean_force_multi_atom_eV_A": float(fnorm[sel & multi].mean())
                                            if (sel & multi).any() else None}
    outl = configuration_outliers(arrays, min_dist)
    cons = pair_consistency(arrays)
    zc = cons["z"]
    inconsistent = [int(c) for c in np.nonzero(np.isfinite(zc) & (zc < CONSISTENCY_Z_MIN))[0]]
    summary = {"checked": bool(check), "median_energy_per_atom_eV": e,
               "energy_per_atom_range_eV": list(ENERGY_PER_ATOM_RANGE_EV),
               "mean_force_max_eV_A": MEAN_FORCE_MAX_EV_A, "per_element": per_element,
               "per_configuration": {
                   **{k: v for k, v in outl.items()},
                   "force_geometry_check": {
                       "z_min": CONSISTENCY_Z_MIN, "n_checked": int(np.isfinite(zc).sum()),
                       "n_abstain": int((~np.isfinite(zc)).sum()),
                       "lowest_z": float(np.nanmin(zc)) if np.isfinite(zc).any() else None,
                       "inconsistent": [{"index": c, "z": round(float(zc[c]), 2),
                                         "where": where[c] if where else None} for c in inconsistent]}}}
    if not check:
        summary["scales"] = check_scales(arrays, source, cons["stiffness"], zc >= CONSISTENCY_Z_MIN, close, where,
                                         check=False)
        return summary
    lo, hi = ENERGY_PER_ATOM_RANGE_EV
    if not lo <= e <= hi:
        raise DataError(f"{source}: the median energy per atom is {e:.4g} eV/atom, outside the plausible range "
                        f"[{lo}, {hi}] eV/atom; likely: {'; or '.join(_energy_guesses(e, source_kind, shift))}. "
                        f"Fix the data's units, or set data.checks: false for exotic data")
    for sym, d in per_element.items():
        m = d["median_configuration_mean_force_eV_A"]
        if m > MEAN_FORCE_MAX_EV_A:
            raise DataError(f"{source}: the mean force on {sym} atoms is {m:.4g} eV/A (the median over the "
                            f"configurations), above the plausible "
                            f"{MEAN_FORCE_MAX_EV_A} eV/A; likely: {'; or '.join(_force_guesses(m, source_kind))}. "
                            f"Fix the data's units, or set data.checks: false for exotic data")
        if d["in_multi_atom_configs"] and d["mean_force_multi_atom_eV_A"] == 0.0:
            raise DataError(f"{source}: every force on {sym} atoms is exactly 0 (in configurations of more than "
                            f"one atom): the data hold no forces (an array filled with zeros?). Fix the data, "
                            f"or set data.checks: false")
    at = (lambda c: f" ({where[c]})" if where and where[c] else "")
    sc = outl["energy_scales_with_atoms"]
    if sc and sc["stored_per_atom"]:
        raise DataError(f"{source}: the energies do not grow with the atom count (they fit a constant within "
                        f"{sc['residual_as_per_atom_eV']:.3g} eV, totals proportional to the atom count within "
                        f"{sc['residual_as_totals_eV']:.3g} eV); likely: "
                        f"per-atom energies stored as the totals. Fix the data, or set data.checks: false")
    # close contacts (kept by data.close_contacts) have large forces and energies of their own: recorded only
    explained = [o for o in outl["outliers"] if o["causes"] and o["index"] not in set(close)]
    if explained:
        o = explained[0]
        c = o["index"]
        what = {"energy": f"energy per atom {o['energy_per_atom_eV']:.4g} eV/atom (dataset median "
                          f"{outl['median_energy_per_atom_eV']:.4g})",
                "forces": f"mean force {o['mean_force_eV_A']:.4g} eV/A (dataset median "
                          f"{outl['median_mean_force_eV_A']:.4g})",
                "distance": f"closest distance {o['min_distance_A']:.4g} A"}
        raise DataError(f"{source}: configuration {c}{at(c)} does not fit the rest of the data: "
                        f"{', '.join(what[q] for q in o['outlier'])}; likely: {'; or '.join(o['causes'])} "
                        f"({len(explained)} such configurations). Fix or remove it, or set data.checks: false")
    if inconsistent:
        c = inconsistent[0]
        hint = ("the forces point the wrong way there (gradients?)" if zc[c] < -CONSISTENCY_Z_MIN else
                "its force rows do not belong to its atoms (permuted rows, or another configuration's forces)")
        raise DataError(f"{source}: configuration {c}{at(c)}: its forces do not fit its geometry (the first-shell "
                        f"pairs compressed most are not pushed apart most: z = {zc[c]:.2f} < {CONSISTENCY_Z_MIN}); "
                        f"likely {hint} ({len(inconsistent)} such configurations of {int(np.isfinite(zc).sum())} "
                        f"checked). Fix the data, or set data.checks: false")
    # the scales against each other and the element (tsmlip.data.scales): a whole file off by one factor
    summary["scales"] = check_scales(arrays, source, cons["stiffness"], zc >= CONSISTENCY_Z_MIN, close, where)
    return summary



# --- per-configuration checks (data.checks) ---------------------------------------------------------------------
#: the per-configuration force/geometry check: within one configuration, the first-shell pairs compressed more than
#: the configuration's typical pair must on balance be pushed apart more (Spearman correlation between a pair's
#: compression and its repulsion, (F_j - F_i).(r_j - r_i)/(2|r_j - r_i|)). Forces of the configuration's own
#: geometry correlate strongly (z = rho sqrt(n - 1) >= 4 on every EMT configuration, 300 K crystals to 1900 K
#: liquids); forces of another geometry (rows permuted, another frame's forces) have z ~ N(0, 1).
CONSISTENCY_Z_MIN = 2.5
#: a configuration abstains with fewer first-shell pairs than this, or with a mean force below this fraction of the
#: dataset's median (a relaxed structure: its forces are numerical noise)
CONSISTENCY_MIN_PAIRS = 10
CONSISTENCY_MIN_FORCE_FRACTION = 0.05
#: first shell: pairs shorter than this times the configuration's median nearest-neighbour distance
FIRST_SHELL_FACTOR = 1.2


def pair_consistency(arrays: dict) -> dict:
    """Per configuration: the z score of the force/geometry check (see :data:`CONSISTENCY_Z_MIN`; NaN when it
    abstains), its number of first-shell pairs and their ``stiffness`` (eV/A^2: the least-squares slope of a pair's
    repulsion over its compression, :mod:`tsmlip.data.scales`; NaN when it abstains)."""
    from ase import Atoms
    from ase.neighborlist import neighbor_list
    from scipy.stats import spearmanr

    Z, R, cell, F = (np.asarray(arrays[k]) for k in ("Z", "R", "cell", "F"))
    counts = (Z != 0).sum(axis=1)
    mean_f = np.array([np.linalg.norm(F[c, :counts[c]], axis=1).mean() for c in range(len(Z))])
    floor = CONSISTENCY_MIN_FORCE_FRACTION * float(np.median(mean_f))
    z, stiffness = np.full(len(Z), np.nan), np.full(len(Z), np.nan)
    n_pairs = np.zeros(len(Z), dtype=int)
    for c in range(len(Z)):
        k = counts[c]
        if k < 2 or mean_f[c] <= floor:
            continue
        at = Atoms(numbers=Z[c, :k], positions=R[c, :k], cell=cell[c], pbc=True)
        i, j, d, D = neighbor_list("ijdD", at, cutoff=6.0)
        if not len(d):
            continue
        nn = np.full(k, np.inf)
        np.minimum.at(nn, i, d)
        sel = (i < j) & (d < FIRST_SHELL_FACTOR * np.median(nn[np.isfinite(nn)]))
        i, j, d, D = i[sel], j[sel], d[sel], D[sel]
        n_pairs[c] = len(d)
        if len(d) < CONSISTENCY_MIN_PAIRS:
            continue
        zi, zj = Z[c, i], Z[c, j]
        kinds = np.minimum(zi, zj) * 1000 + np.maximum(zi, zj)
        ref = np.zeros(len(d))
        for t in np.unique(kinds):  # compression relative to the typical distance of the same species pair
            ref[kinds == t] = np.median(d[kinds == t])
        f = F[c, :k]
        repel = np.einsum("pk,pk->p", f[j] - f[i], D) / (2.0 * d)
        rho = spearmanr((ref - d) / ref, repel).statistic
        z[c] = float(rho) * np.sqrt(len(d) - 1) if np.isfinite(rho) else 0.0
        stiffness[c] = float(np.sum((ref - d) * repel) / max(float(np.sum((ref - d) ** 2)), 1e-12))
    return {"z": z, "n_pairs": n_pairs, "stiffness": stiffness}


#: per-configuration outliers against the dataset's own distribution (median and MAD x 1.4826): the energy per
#: atom (eV), the logs of the mean force magnitude and of the closest distance; an outlier lies further than
#: OUTLIER_Z (energy) / OUTLIER_Z_LOG (forces, distances: data mixing crystals and liquids spread widely there)
#: robust deviations, and than the floor, from the median; a unit factor "explains" it when the corrected value lies
#: within EXPLAINED_Z / EXPLAINED_Z_LOG deviations (or the floor) of the median
OUTLIER_Z = 8.0
EXPLAINED_Z = 4.0
OUTLIER_Z_LOG = 3.0
EXPLAINED_Z_LOG = 2.0
ENERGY_OUTLIER_FLOOR_EV = 0.3
ENERGY_EXPLAINED_FLOOR_EV = 0.2
FORCE_OUTLIER_FLOOR_LOG = float(np.log(4.0))
FORCE_EXPLAINED_FLOOR_LOG = float(np.log(2.5))
DISTANCE_OUTLIER_FLOOR_LOG = float(np.log(1.4))
DISTANCE_EXPLAINED_FLOOR_LOG = float(np.log(1.15))
BOHR_A = 0.52917721
HARTREE_BOHR_EV_A = 27.211386 / 0.52917721

#: (cause, factor on the energy per atom, factor on the forces); a factor "N": the configuration's atom count
_UNIT_CAUSES = (
    ("energies and forces in kcal/mol (/A) instead of eV (/A)", 1 / 23.0605, 1 / 23.0605),
    ("energies and forces in kJ/mol (/A) instead of eV (/A)", 1 / 96.4853, 1 / 96.4853),
    ("energies and forces in Hartree (/A) instead of eV (/A)", 27.211386, 27.211386),
    ("energies in Hartree and forces in Hartree/Bohr instead of eV and eV/A", 27.211386, HARTREE_BOHR_EV_A),
    ("energies and forces in meV (/A) instead of eV (/A)", 1e-3, 1e-3),
    ("the energy in kcal/mol instead of eV", 1 / 23.0605, None),
    ("the energy in kJ/mol instead of eV", 1 / 96.4853, None),
    ("the energy in Hartree instead of eV", 27.211386, None),
    ("a per-atom energy stored as the configuration's total", "N", None),
    ("the forces in kcal/mol/A instead of eV/A", None, 1 / 23.0605),
    ("the forces in Hartree/Bohr instead of eV/A", None, HARTREE_BOHR_EV_A),
    ("the forces in Hartree/A instead of eV/A", None, 27.211386),
    ("the forces in meV/A instead of eV/A", None, 1e-3),
)
_LENGTH_CAUSES = (("positions and cell in Bohr instead of Angstrom", BOHR_A),
                  ("positions and cell in nm instead of Angstrom", 10.0))


def _robust(x: np.ndarray) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    if not len(x):
        return 0.0, 0.0
    med = float(np.median(x))
    return med, 1.4826 * float(np.median(np.abs(x - med)))


def configuration_outliers(arrays: dict, min_dist: np.ndarray | None = None) -> dict:
    """Configurations whose energy per atom, mean force or closest distance lies far from the dataset's own
    distribution (see :data:`OUTLIER_Z`), each with the unit mistakes that would bring it back (``causes``,
    most likely first; empty: no unit mistake explains it), and the dataset-level test of per-atom energies
    stored as totals (``energy_scales_with_atoms``: with sizes that differ, totals grow with the atom count)."""
    Z, E, F = (np.asarray(arrays[k]) for k in ("Z", "E", "F"))
    counts = (Z != 0).sum(axis=1).astype(float)
    e = E / counts
    mean_f = np.array([np.linalg.norm(F[c, :int(counts[c])], axis=1).mean() for c in range(len(Z))])
    with np.errstate(divide="ignore"):
        logf = np.log(mean_f)
    e_med, e_mad = _robust(e)
    f_med, f_mad = _robust(logf)
    e_out_tol = max(OUTLIER_Z * e_mad, ENERGY_OUTLIER_FLOOR_EV)
    e_ok_tol = max(EXPLAINED_Z * e_mad, ENERGY_EXPLAINED_FLOOR_EV)
    f_out_tol = max(OUTLIER_Z_LOG * f_mad, FORCE_OUTLIER_FLOOR_LOG)
    f_ok_tol = max(EXPLAINED_Z_LOG * f_mad, FORCE_EXPLAINED_FLOOR_LOG)
    has_f = np.isfinite(logf) & (counts > 1)
    e_out = np.abs(e - e_med) > e_out_tol
    f_out = has_f & (np.abs(logf - f_med) > f_out_tol)
    if min_dist is not None:
        with np.errstate(divide="ignore"):
            logd = np.log(np.asarray(min_dist, dtype=float))
        d_med, d_mad = _robust(logd)
        d_out = np.isfinite(logd) & (np.abs(logd - d_med) > max(OUTLIER_Z_LOG * d_mad, DISTANCE_OUTLIER_FLOOR_LOG))
    else:
        d_out = np.zeros(len(E), dtype=bool)
    flagged = []
    for c in np.nonzero(e_out | f_out | d_out)[0]:
        causes = []
        for cause, fe, ff in _UNIT_CAUSES if (e_out[c] or f_out[c]) else ():
            if fe is None and e_out[c] or ff is None and f_out[c]:
                continue  # an outlier the cause leaves untouched
            e2 = e[c] * (counts[c] if fe == "N" else fe) if fe is not None else e[c]
            f2 = logf[c] + np.log(ff) if ff is not None and has_f[c] else logf[c]
            if abs(e2 - e_med) <= e_ok_tol and (not has_f[c] or abs(f2 - f_med) <= f_ok_tol):
                touches_sound = (fe is not None and not e_out[c]) + (ff is not None and not f_out[c])
                causes.append((touches_sound, len(causes), cause))
        if d_out[c]:
            for cause, fl in _LENGTH_CAUSES:
                if abs(logd[c] + np.log(fl) - d_med) <= max(EXPLAINED_Z_LOG * d_mad, DISTANCE_EXPLAINED_FLOOR_LOG):
                    causes.append((0, len(causes), cause))
        flagged.append({"index": int(c), "energy_per_atom_eV": float(e[c]), "mean_force_eV_A": float(mean_f[c]),
                        "min_distance_A": float(min_dist[c]) if min_dist is not None else None,
                        "outlier": [q for q, o in (("energy", e_out[c]), ("forces", f_out[c]),
                                                   ("distance", d_out[c])) if o],
                        "causes": [c_ for *_, c_ in sorted(causes)][:2]})
    # per-atom energies stored as totals in every configuration: with sizes that differ, real totals grow with the
    # atom count (E ~ b N fits), per-atom values stay put (E ~ a fits); mean absolute residuals of both fits
    scaling = None
    if counts.max() >= 1.5 * counts.min():
        b, a = float(np.median(e)), float(np.median(E))
        r_totals, r_per_atom = float(np.mean(np.abs(E - b * counts))), float(np.mean(np.abs(E - a)))
        scaling = {"residual_as_totals_eV": r_totals, "residual_as_per_atom_eV": r_per_atom,
                   "stored_per_atom": bool(abs(a) > 4 * r_per_atom and r_totals > 4 * r_per_atom)}
    return {"median_energy_per_atom_eV": e_med, "mad_energy_per_atom_eV": e_mad,
            "median_mean_force_eV_A": float(np.exp(f_med)), "mad_log_mean_force": f_mad,
            "outliers": flagged, "energy_scales_with_atoms": scaling}
