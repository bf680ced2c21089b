"""The in-memory dataset: padded arrays, validation on load, and the npz file every stage reads.

Arrays (one row per configuration, padded to the largest configuration with species 0):
``Z`` (n, N) int, ``R`` (n, N, 3) Angstrom, ``cell`` (n, 3, 3) Angstrom (rows are lattice vectors),
``E`` (n,) eV, ``F`` (n, N, 3) eV/Angstrom, ``n_atoms`` (n,), and optionally ``ref_atom_E`` (n, N) eV:
the reference potential's own per-atom energies, kept for analysis only, never a training target.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

REQUIRED = ("Z", "R", "cell", "E", "F")
OPTIONAL = ("ref_atom_E", "T_K")


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


def _min_image_min_distance(Z, R, cell, cutoff: float) -> float:
    """Smallest interatomic distance (Angstrom) of one periodic configuration, inf if none is below
    ``cutoff``."""
    from ase import Atoms
    from ase.neighborlist import neighbor_list

    atoms = Atoms(numbers=Z, positions=R, cell=cell, pbc=True)
    d = neighbor_list("d", atoms, cutoff=cutoff)
    return float(d.min()) if len(d) else np.inf


def validate_arrays(arrays: dict, source: str, min_distance_A: float) -> None:
    """Raise :class:`DataError` naming ``source`` and the first problem found."""
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
            raise DataError(f"{source}: array {k} has NaN/inf values (first in configuration {row})")
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
        d = _min_image_min_distance(Z[i, :k], R[i, :k], cell[i], cutoff=min_distance_A + 0.5)
        if d < min_distance_A:
            raise DataError(f"{source}: configuration {i} has atoms {d:.3f} A apart, closer than "
                            f"data.min_distance_A = {min_distance_A} A")


def save_dataset(arrays: dict, path: str | Path, provenance: dict) -> None:
    """Write ``dataset.npz`` (atomically) and ``provenance.json`` beside it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
    prov = dict(provenance)
    prov.update({
        "n_configs": int(len(arrays["E"])),
        "n_atoms_min": int(arrays["n_atoms"].min()),
        "n_atoms_max": int(arrays["n_atoms"].max()),
        "species": sorted(int(z) for z in np.unique(arrays["Z"]) if z != 0),
        "units": {"energy": "eV", "length": "Angstrom", "forces": "eV/Angstrom"},
        "has_reference_atom_energies": "ref_atom_E" in arrays,
    })
    with open(path.with_name("provenance.json"), "w") as fh:
        json.dump(prov, fh, indent=2)


def load_dataset(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such dataset file")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


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
