"""The in-memory dataset: padded arrays, validation on load, and the npz file every stage reads.

Arrays (one row per configuration, padded to the largest configuration with species 0):
``Z`` (n, N) int, ``R`` (n, N, 3) Angstrom, ``cell`` (n, 3, 3) Angstrom (rows are lattice vectors),
``E`` (n,) eV, ``F`` (n, N, 3) eV/Angstrom, ``n_atoms`` (n,), and optionally ``ref_atom_E`` (n, N) eV:
the reference potential's own per-atom energies, kept for analysis only, never a training target.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io_utils import atomic_open

REQUIRED = ("Z", "R", "cell", "E", "F")


class DataError(ValueError):
    """Input data that cannot be used; the message names the file and the problem."""


def pad_configurations(configs: list[dict]) -> dict[str, np.ndarray]:
    """Stack per-configuration dicts (``Z`` (N_i,), ``R`` (N_i,3), ``cell``, ``E``, ``F`` (N_i,3),
    optional ``ref_atom_E`` (N_i,), ``T_K``) into padded arrays."""
    if not configs:
        raise DataError("no configurations to stack")
    n, nmax = len(configs), max(len(c["Z"]) for c in configs)
    out = {
        "Z": np.zeros((n, nmax), dtype=np.int64),
        "R": np.zeros((n, nmax, 3)),
        "cell": np.zeros((n, 3, 3)),
        "E": np.zeros(n),
        "F": np.zeros((n, nmax, 3)),
        "n_atoms": np.zeros(n, dtype=np.int64),
    }
    has_ref = all("ref_atom_E" in c for c in configs)
    if has_ref:
        out["ref_atom_E"] = np.zeros((n, nmax))
    if all("T_K" in c for c in configs):
        out["T_K"] = np.array([c["T_K"] for c in configs], dtype=float)
    for i, c in enumerate(configs):
        k = len(c["Z"])
        out["Z"][i, :k] = c["Z"]
        out["R"][i, :k] = c["R"]
        out["cell"][i] = c["cell"]
        out["E"][i] = c["E"]
        out["F"][i, :k] = c["F"]
        out["n_atoms"][i] = k
        if has_ref:
            out["ref_atom_E"][i, :k] = c["ref_atom_E"]
    return out


#: closest atom pairs per configuration that vote in the force-sign check
SIGN_CHECK_PAIRS = 3
#: the force-sign check stops a dataset when a one-sided sign test says "attract" at this level
SIGN_CHECK_ALPHA = 0.01
#: close-contact policies (``data.close_contacts``)
CLOSE_CONTACT_POLICIES = ("error", "drop", "keep")
#: conventions of the stored force array (``data.forces_are``)
FORCE_CONVENTIONS = ("forces", "gradients")


def _closest_pairs(Z, R, cell, min_cutoff: float, n_pairs: int = SIGN_CHECK_PAIRS, max_cutoff: float = 12.0):
    """The ``n_pairs`` shortest distinct atom pairs of one periodic configuration (minimum image and
    periodic images alike), as ``(i, j, d, D)`` arrays sorted by distance, ``D = r_j - r_i`` (+ image)
    in Angstrom. The search radius starts at ``min_cutoff`` (at least 3 A) and doubles until enough
    pairs are found (up to ``max_cutoff``)."""
    from ase import Atoms
    from ase.neighborlist import neighbor_list

    atoms = Atoms(numbers=Z, positions=R, cell=cell, pbc=True)
    cutoff = max(float(min_cutoff), 3.0)
    while True:
        i, j, d, D = neighbor_list("ijdD", atoms, cutoff=cutoff)
        keep = i <= j  # each pair once (i == j: an atom and its own periodic image)
        i, j, d, D = i[keep], j[keep], d[keep], D[keep]
        if len(d) >= n_pairs or cutoff >= max_cutoff:
            break
        cutoff = min(2.0 * cutoff, max_cutoff)
    order = np.argsort(d, kind="stable")
    return i[order], j[order], d[order], D[order]


def scan_configurations(arrays: dict, min_distance_A: float, n_pairs: int = SIGN_CHECK_PAIRS):
    """One neighbour-list pass over every configuration.

    Returns ``(min_dist, score)``: the shortest interatomic distance of each configuration (A; inf when no
    pair lies within the search radius), and its closest-pair repulsion score (eV/A): the sum over the
    ``n_pairs`` shortest pairs (i, j) of (F_j - F_i) . (r_j - r_i) / (2 |r_j - r_i|), i.e. how strongly
    the stored forces push each closest pair apart (> 0: repel, < 0: attract; 0 without pairs).
    """
    Z, R, cell, F = (np.asarray(arrays[k]) for k in ("Z", "R", "cell", "F"))
    counts = (Z != 0).sum(axis=1)
    min_dist = np.full(len(Z), np.inf)
    score = np.zeros(len(Z))
    for c in range(len(Z)):
        k = counts[c]
        i, j, d, D = _closest_pairs(Z[c, :k], R[c, :k], cell[c], min_distance_A + 0.5, n_pairs)
        if len(d):
            min_dist[c] = d[0]
            i, j, d, D = i[:n_pairs], j[:n_pairs], d[:n_pairs], D[:n_pairs]
            f = F[c, :k]
            score[c] = float(np.sum(np.einsum("pk,pk->p", f[j] - f[i], D) / (2.0 * d)))
    return min_dist, score


def force_sign_summary(score: np.ndarray, forces: np.ndarray | None = None) -> dict:
    """The dataset-level verdict of the force-sign check from per-configuration scores.

    A configuration votes *repel* (score > tol) or *attract* (score < -tol), else it abstains; tol is
    1e-6 of the dataset's largest force component. The dataset *attracts* when significantly more
    configurations attract than repel (one-sided sign test, p < ``SIGN_CHECK_ALPHA``), *repels* in the
    mirrored case, and is *inconclusive* otherwise (too few votes, or forces unrelated to the geometry).
    """
    from scipy.stats import binomtest

    score = np.asarray(score, dtype=float)
    fmax = float(np.abs(forces).max()) if forces is not None and np.size(forces) else 0.0
    tol = 1e-6 * fmax + 1e-12
    n_rep, n_att = int((score > tol).sum()), int((score < -tol).sum())
    n = n_rep + n_att
    p_att = binomtest(n_att, n, 0.5, alternative="greater").pvalue if n else 1.0
    p_rep = binomtest(n_rep, n, 0.5, alternative="greater").pvalue if n else 1.0
    verdict = "attract" if p_att < SIGN_CHECK_ALPHA else "repel" if p_rep < SIGN_CHECK_ALPHA else "inconclusive"
    return {"verdict": verdict, "n_repel": n_rep, "n_attract": n_att, "n_abstain": int(len(score) - n),
            "p_value_attract": float(p_att), "p_value_repel": float(p_rep),
            "median_score_eV_A": float(np.median(score)) if len(score) else None,
            "pairs_per_configuration": SIGN_CHECK_PAIRS, "alpha": SIGN_CHECK_ALPHA}


def _wrong_sign_message(source: str, summary: dict, forces_are: str | None) -> str:
    if forces_are is None:
        hint = ("the force array looks like the energy gradient +dE/dR; the workflow needs forces -dE/dR")
    else:
        other = "gradients" if forces_are == "forces" else "forces"
        hint = (f"it was read with data.forces_are: {forces_are}; the file most likely holds {other} "
                f"(set data.forces_are: {other})")
    return (f"{source}: the forces point the wrong way: the closest atom pairs attract in "
            f"{summary['n_attract']} configurations and repel in {summary['n_repel']} (sign test "
            f"p = {summary['p_value_attract']:.2g}); {hint}")


# --- lengths against the element (data.checks) ----------------------------------------------------------------
#: a configuration's typical nearest-neighbour distance (the median over its atoms of each atom's nearest
#: neighbour) divided by the element's: the nearest-neighbour distance of the element's crystal (ASE's reference
#: state: fcc, bcc, hcp, diamond, sc, a diatomic molecule), else the sum of the covalent radii (pairs of two
#: elements). Condensed matter and molecules, hot, strained or liquid, stay within this range (liquid Al 0.97,
#: graphite's bond against diamond's 0.92, +-3% strain); a file in Bohr (x 1.89), nm (x 0.1) or pm (x 100) does not.
NN_RATIO_RANGE = (0.7, 1.45)
#: length units a file may hold by mistake: (name, Angstrom per stored unit)
_LENGTH_UNITS = (("Bohr", 0.52917721), ("nm", 10.0), ("pm", 0.01))
_NN_OF_CRYSTAL = {"fcc": 1 / np.sqrt(2), "bcc": np.sqrt(3) / 2, "sc": 1.0, "diamond": np.sqrt(3) / 4}


def element_nn_distance(z: int) -> tuple[float, str]:
    """The element's own nearest-neighbour distance (A) and where it comes from (its crystal, or twice its
    covalent radius)."""
    from ase.data import chemical_symbols, covalent_radii, reference_states

    ref = reference_states[z] if z < len(reference_states) else None
    sym = chemical_symbols[z]
    if ref and ref.get("symmetry") in _NN_OF_CRYSTAL and ref.get("a"):
        return float(ref["a"] * _NN_OF_CRYSTAL[ref["symmetry"]]), f"{ref['symmetry']} {sym}"
    if ref and ref.get("symmetry") == "hcp" and ref.get("a"):
        return float(ref["a"]), f"hcp {sym}"
    if ref and ref.get("symmetry") == "diatom" and ref.get("d"):
        return float(ref["d"]), f"the {sym}2 molecule"
    return float(2 * covalent_radii[z]), f"twice the covalent radius of {sym}"


def element_lengths(arrays: dict) -> dict:
    """Per configuration: ``nn_A``, its typical nearest-neighbour distance (the median over its atoms; inf when most
    atoms have no neighbour within the search radius), ``ratio``, that over the element's (the
    median over its atoms of each atom's nearest distance divided by the element's own distance, see
    :data:`NN_RATIO_RANGE`), and ``min_A``, its closest pair."""
    from ase import Atoms
    from ase.data import covalent_radii
    from ase.neighborlist import neighbor_list

    Z, R, cell = (np.asarray(arrays[k]) for k in ("Z", "R", "cell"))
    counts = (Z != 0).sum(axis=1)
    own = {int(z): element_nn_distance(int(z))[0] for z in np.unique(Z) if z != 0}
    nn, ratio, closest = np.full(len(Z), np.inf), np.full(len(Z), np.inf), np.full(len(Z), np.inf)
    for c in range(len(Z)):
        k = counts[c]
        z = Z[c, :k]
        # at least half the atoms have their nearest neighbour within 1.41 (V/N)^(1/3) (spheres of half their
        # nearest distance do not overlap and fill at most 74 % of the cell), so the median is found within
        # 1.5 (V/N)^(1/3); the cap keeps a file in nm (a cell of < 1 A) from a neighbour search over millions of images
        cutoff = min(2.0 * max(own.values()), 1.5 * (abs(np.linalg.det(cell[c])) / k) ** (1 / 3))
        i, j, d = neighbor_list("ijd", Atoms(numbers=z, positions=R[c, :k], cell=cell[c], pbc=True), cutoff=cutoff)
        ref = np.where(z[i] == z[j], [own[int(q)] for q in z[i]], covalent_radii[z[i]] + covalent_radii[z[j]]) \
            if len(d) else np.zeros(0)
        d_atom, r_atom = np.full(k, np.inf), np.full(k, np.inf)
        np.minimum.at(d_atom, i, d)
        np.minimum.at(r_atom, i, d / ref if len(d) else d)
        nn[c], ratio[c], closest[c] = float(np.median(d_atom)), float(np.median(r_atom)), float(d_atom.min())
    return {"nn_A": nn, "ratio": ratio, "min_A": closest}


def check_element_lengths(arrays: dict, source: str, where: list[str] | None = None) -> dict:
    """:class:`DataError` naming the first configuration whose typical nearest-neighbour distance is not the
    element's (outside :data:`NN_RATIO_RANGE` times it), the likely unit (Bohr, nm, pm: the one that brings it back
    closest to the element's distance) and how many configurations are off; returns :func:`element_lengths`."""
    out = element_lengths(arrays)
    lo, hi = NN_RATIO_RANGE
    bad = np.nonzero(~((out["ratio"] >= lo) & (out["ratio"] <= hi)))[0]
    if not len(bad):
        return out
    c = int(bad[0])
    Z = np.asarray(arrays["Z"])[c]
    z = int(np.bincount(Z[Z != 0]).argmax())
    d0, what = element_nn_distance(z)
    r, d = out["ratio"][c], out["nn_A"][c]
    units = sorted((abs(np.log(r * f)), name, f) for name, f in _LENGTH_UNITS if np.isfinite(r) and lo <= r * f <= hi)
    on_top = out["min_A"][c] < max(COINCIDENT_FRACTION * d, 1e-3)  # a pair far closer than the configuration's own
    likely = (_COINCIDENT_CAUSE if on_top else
              f"positions and cell in {units[0][1]} instead of Angstrom ({d * units[0][2]:.3g} A then)" if units else
              "atoms without neighbours (isolated atoms in a large box?), or positions in another unit" if not
              np.isfinite(r) else "positions in another unit, or a structure far from the element's")
    at = f" ({where[c]})" if where and where[c] else ""
    dist = f"{d:.3g} A" if np.isfinite(d) else "far"
    raise DataError(f"{source}: configuration {c}{at}: its atoms' nearest neighbours lie {dist} apart (median), "
                    f"{r:.2f} times the element's {d0:.3g} A ({what}; data hold {lo}-{hi} times it); likely: {likely} "
                    f"({len(bad)} of {len(out['ratio'])} configurations). Fix the data's units, or set data.checks: "
                    f"false for exotic data")


#: two atoms closer than this fraction of their element's nearest-neighbour distance (Al: 0.29 A; H: 0.07 A) are no
#: physics, whatever data.close_contacts says: positions overwritten (zeros), or an atom written twice
COINCIDENT_FRACTION = 0.1
_COINCIDENT_CAUSE = ("atoms on top of each other: a damaged file (bytes overwritten, e.g. with zeros) or atoms "
                     "written twice")


def check_coincident(Z: np.ndarray, min_dist: np.ndarray, source: str, where=None) -> None:
    """:class:`DataError` naming every configuration whose closest pair lies within :data:`COINCIDENT_FRACTION` of
    the nearest-neighbour distance of its element (the smallest among its species)."""
    own = {int(z): element_nn_distance(int(z))[0] for z in np.unique(Z) if z != 0}
    limit = np.array([COINCIDENT_FRACTION * min(own[int(z)] for z in np.unique(row[row != 0])) for row in Z])
    bad = np.nonzero(min_dist < limit)[0]
    if len(bad):
        c = int(bad[0])
        named = ", ".join(f"{int(i)}{f' ({where[i]})' if where and where[i] else ''}" for i in bad[:5])
        raise DataError(f"{source}: configuration {named}{' ...' if len(bad) > 5 else ''}: atoms {min_dist[c]:.3f} A "
                        f"apart, less than {COINCIDENT_FRACTION} x the element's nearest-neighbour distance "
                        f"({limit[c]:.2f} A; {len(bad)} such configurations, refused whatever data.close_contacts "
                        f"says); likely: {_COINCIDENT_CAUSE}. Replace the file, or remove those configurations")


def validate_arrays(arrays: dict, source: str, min_distance_A: float, close_contacts: str = "error",
                    forces_are: str | None = None, where: list[str] | None = None, element_lengths: bool = True) -> dict:
    """Raise :class:`DataError` naming ``source`` and the first problem found.

    Checks, in order: required arrays and their shapes, NaN/inf, species, empty configurations, singular
    cells, the lengths against the elements (``element_lengths``, :func:`check_element_lengths`: a file in Bohr or
    nm), coincident atoms (:func:`check_coincident`, whatever the policy: a damaged file), close contacts (two atoms
    closer than ``min_distance_A``), and the sign of the forces (the
    closest pairs of each configuration must on balance repel, see :func:`force_sign_summary`).

    :param close_contacts: ``error``: a close contact stops here, naming the configuration; ``drop`` /
        ``keep``: close contacts are only reported (the caller drops or keeps them). The force-sign check
        runs on the configurations without close contacts.
    :param forces_are: the convention the force array was read with (for the message only).
    :param where: per configuration, where it came from (file, group, frame), for messages.
    :returns: ``{"close_contacts": [{"index", "min_distance_A", "where"}...], "force_sign": summary}``.
    """
    if close_contacts not in CLOSE_CONTACT_POLICIES:
        raise ValueError(f"close_contacts must be one of {CLOSE_CONTACT_POLICIES}, not {close_contacts!r}")
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise DataError(f"{source}: missing arrays {missing} (need {list(REQUIRED)})")
    Z, R, cell, E, F = (np.asarray(arrays[k]) for k in REQUIRED)
    n = len(E)
    if n == 0:
        raise DataError(f"{source}: the dataset is empty (no configurations)")
    shapes = {"Z": (n, Z.shape[1] if Z.ndim == 2 else -1), "R": (n, Z.shape[-1], 3), "cell": (n, 3, 3),
              "F": (n, Z.shape[-1], 3)}
    if Z.ndim != 2:
        raise DataError(f"{source}: species array Z has shape {Z.shape}, expected (n_configs, n_atoms)")
    for k, shape in shapes.items():
        arr = np.asarray(arrays[k])
        if arr.shape != shape:
            raise DataError(f"{source}: array {k} has shape {arr.shape}, expected {shape} "
                            f"(from {n} energies and species of shape {Z.shape})")
    for k in ("R", "cell", "E", "F"):
        bad = ~np.isfinite(np.asarray(arrays[k], dtype=float))
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            at = f" ({where[row]})" if where and where[row] else ""
            what = {"R": "positions", "cell": "cell", "E": "energy", "F": "forces"}[k]
            raise DataError(f"{source}: configuration {row}{at}: its {what} (array {k}) hold NaN/inf values "
                            f"({int(bad.reshape(len(bad), -1).any(axis=1).sum())} such configurations)")
    from ase.data import chemical_symbols
    real = Z[Z != 0]
    if ((real < 0) | (real >= len(chemical_symbols))).any():
        raise DataError(f"{source}: unknown species {sorted(set(real[(real < 0) | (real >= len(chemical_symbols))].tolist()))}")
    counts = (Z != 0).sum(axis=1)
    if (counts == 0).any():
        raise DataError(f"{source}: configuration {int(np.argmax(counts == 0))} has no atoms")
    if (np.abs(np.linalg.det(cell)) < 1e-6).any():
        raise DataError(f"{source}: configuration {int(np.argmax(np.abs(np.linalg.det(cell)) < 1e-6))} "
                        "has a singular cell (the workflow needs periodic cells)")
    for i in range(n):
        k = counts[i]
        if not (Z[i, :k] != 0).all():
            raise DataError(f"{source}: configuration {i}: padding (species 0) before real atoms")
    if element_lengths:
        check_element_lengths(arrays, source, where)
    min_dist, score = scan_configurations(arrays, min_distance_A)
    check_coincident(Z, min_dist, source, where)
    close = [{"index": int(i), "min_distance_A": round(float(min_dist[i]), 4),
              "where": where[i] if where else None} for i in np.nonzero(min_dist < min_distance_A)[0]]
    if close and close_contacts == "error":
        c = close[0]
        at = f" ({c['where']})" if c["where"] else ""
        raise DataError(f"{source}: configuration {c['index']}{at} has atoms {c['min_distance_A']:.3f} A apart, "
                        f"closer than data.min_distance_A = {min_distance_A} A ({len(close)} such configurations; "
                        f"data.close_contacts: drop or keep accepts them)")
    ok = np.ones(n, dtype=bool)
    ok[[c["index"] for c in close]] = False
    summary = force_sign_summary(score[ok], F[ok])
    if summary["verdict"] == "attract":
        raise DataError(_wrong_sign_message(source, summary, forces_are))
    return {"close_contacts": close, "force_sign": summary, "min_dist": min_dist}


#: duplicate-configuration policies (``data.duplicates``)
DUPLICATE_POLICIES = ("error", "drop")
#: two configurations are duplicates when they have the same species, cells within this and every atom
#: within this of its twin (minimum image; in the stored order or after sorting the atoms), in Angstrom
DUPLICATE_TOL_A = 1e-3


def _canonical_order(Z: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """Atom order by species, then by wrapped fractional coordinates (rounded to 1e-4)."""
    f = np.round(np.mod(frac, 1.0), 4) % 1.0
    return np.lexsort((f[:, 2], f[:, 1], f[:, 0], Z))


def find_duplicates(arrays: dict, tol_A: float = DUPLICATE_TOL_A) -> list[tuple[int, int]]:
    """``[(j, i), ...]``: configuration ``j`` repeats the earlier configuration ``i`` (exactly or within
    ``tol_A``: same species, cell vectors within ``tol_A``, every atom within ``tol_A`` of its twin under the
    minimum image, with the atoms in the stored order or in a canonical order, so a reordered copy counts, and up
    to a rigid translation, so a shifted copy counts too: the same structure, whatever its origin). Each later copy
    is listed once, against its first occurrence."""
    Z, R, cell = (np.asarray(arrays[k]) for k in ("Z", "R", "cell"))
    counts = (Z != 0).sum(axis=1)
    groups: dict[tuple, list[int]] = {}
    for c in range(len(Z)):
        groups.setdefault((int(counts[c]), tuple(sorted(Z[c, :counts[c]].tolist()))), []).append(c)
    dups = []
    for (k, _), members in groups.items():
        if len(members) < 2:
            continue
        m = np.array(members)
        C = cell[m]
        inv = np.linalg.inv(C)
        frac = np.einsum("mak,mkl->mal", R[m, :k], inv)
        order = np.stack([_canonical_order(Z[c, :k], frac[a]) for a, c in enumerate(m)])
        canon = np.take_along_axis(frac, order[..., None], axis=1)
        z_canon = np.take_along_axis(Z[m, :k], order, axis=1)
        nn_sorted = np.stack([_nn_sorted(frac[a], C[a]) for a in range(len(m))])
        taken = np.zeros(len(m), dtype=bool)
        for a in range(len(m) - 1):
            if taken[a]:
                continue
            rest = np.arange(a + 1, len(m))
            rest = rest[~taken[rest] & (np.abs(C[rest] - C[a]).max(axis=(1, 2)) < tol_A)]
            if not len(rest):
                continue
            hit = np.zeros(len(rest), dtype=bool)
            for pos, same_z in ((frac, (Z[m[rest], :k] == Z[m[a], :k]).all(axis=1)),
                                (canon, (z_canon[rest] == z_canon[a]).all(axis=1))):
                d = pos[rest] - pos[a]
                d -= np.round(d)
                dist = np.linalg.norm(np.einsum("mak,kl->mal", d, C[a]), axis=2).max(axis=1)
                hit |= same_z & (dist < tol_A)
            # up to a translation: candidates whose sorted nearest-neighbour distances (translation- and
            # order-invariant) agree, then matched atom by atom after shifting atom 0 of ``a`` onto each atom of
            # the same species in the candidate
            close_nn = np.abs(nn_sorted[rest] - nn_sorted[a]).max(axis=1) < 2 * tol_A
            for q in np.nonzero(~hit & close_nn)[0]:
                hit[q] = _same_up_to_translation(Z[m[a], :k], frac[a], Z[m[rest[q]], :k], frac[rest[q]], C[a], tol_A)
            for b in rest[hit]:
                taken[b] = True
                dups.append((int(m[b]), int(m[a])))
    return sorted(dups)


def _nn_sorted(frac: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Each atom's nearest minimum-image distance (A), sorted: unchanged by a translation or a reordering."""
    d = frac[None, :, :] - frac[:, None, :]
    d -= np.round(d)
    r = np.linalg.norm(d @ cell, axis=2)
    np.fill_diagonal(r, np.inf)
    return np.sort(r.min(axis=1)) if len(r) > 1 else np.zeros(1)


def _same_up_to_translation(za, fa, zb, fb, cell, tol_A) -> bool:
    """Whether configuration b (species ``zb``, fractional positions ``fb``) is configuration a shifted rigidly,
    atoms in any order: every atom of each within ``tol_A`` (minimum image) of an atom of the same species of the
    other."""
    same = za[:, None] == zb[None, :]
    for t in np.nonzero(zb == za[0])[0]:
        d = (fb[None, :, :] - (fb[t] - fa[0])) - fa[:, None, :]
        d -= np.round(d)
        r = np.where(same, np.linalg.norm(d @ cell, axis=2), np.inf)
        if (r.min(axis=1) < tol_A).all() and (r.min(axis=0) < tol_A).all():
            return True
    return False


def duplicates_message(source: str, dups: list[tuple[int, int]], where: list[str] | None = None) -> str:
    j, i = dups[0]
    at = (lambda c: f" ({where[c]})" if where and where[c] else "")
    return (f"{source}: configuration {j}{at(j)} repeats configuration {i}{at(i)} (every atom within "
            f"{DUPLICATE_TOL_A} A); {len(dups)} such duplicates. A duplicate can put a twin of a test "
            f"configuration into training: remove them, or set data.duplicates: drop (later copies dropped "
            f"before the split, counted in provenance.json)")


def select_configurations(arrays: dict, keep) -> dict:
    """The dataset restricted to the configurations ``keep`` (indices or a boolean mask), re-padded to its
    largest remaining configuration."""
    keep = np.asarray(keep)
    out = {k: np.asarray(v)[keep] for k, v in arrays.items()}
    if len(out["E"]) == 0:
        raise DataError("no configurations left")
    nmax = int(out["n_atoms"].max()) if "n_atoms" in out else out["Z"].shape[1]
    for k in ("Z", "R", "F", "ref_atom_E"):
        if k in out:
            out[k] = out[k][:, :nmax]
    return out


def save_dataset(arrays: dict, path: str | Path, provenance: dict, record: dict | None = None) -> None:
    """Write ``dataset.npz`` and ``provenance.json`` beside it, each atomically (the provenance with counts,
    species and the force-sign check, see :func:`force_sign_summary`). ``record``: the step's provenance record
    (:mod:`tsmlip.provenance`), kept in the npz (``_provenance``) and in provenance.json."""
    from ..provenance import npz_arrays

    path = Path(path)
    with atomic_open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays, **(npz_arrays(record) if record else {}))
    prov = dict(provenance)
    if prov.get("source") == "emt":  # the generator stores ASE's get_forces(): forces, -dE/dR
        prov.setdefault("forces_are", "forces")
    if "force_sign_check" not in prov:  # readers record theirs; for generated data it is taken here
        prov["force_sign_check"] = force_sign_summary(scan_configurations(arrays, 0.0)[1], arrays["F"])
    prov.update({
        "n_configs": int(len(arrays["E"])),
        "n_atoms_min": int(arrays["n_atoms"].min()),
        "n_atoms_max": int(arrays["n_atoms"].max()),
        "species": sorted(int(z) for z in np.unique(arrays["Z"]) if z != 0),
        "units": {"energy": "eV", "length": "Angstrom", "forces": "eV/Angstrom"},
        "has_reference_atom_energies": "ref_atom_E" in arrays,
    })
    from ..records import DatasetProvenance

    DatasetProvenance(**prov).with_provenance(record).write(path.with_name("provenance.json"), indent=2)


def load_dataset(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such dataset file")
    with np.load(path) as z:  # keys starting with "_" are records (tsmlip.provenance), not data
        return {k: z[k] for k in z.files if not k.startswith("_")}


def versions() -> dict:
    import ase
    import numpy
    import torch
    from .. import __version__
    try:
        import hippynn
        hv = hippynn.__version__
    except Exception:  # pragma: no cover
        hv = None
    return {"tsmlip": __version__, "ase": ase.__version__, "numpy": numpy.__version__,
            "torch": torch.__version__, "hippynn": hv}
