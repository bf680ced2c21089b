"""User-supplied data: the real ANI-Al HDF5 files (pyanitools layout) and extended-XYZ files.

Both are converted to the workflow's dataset.npz (eV, Angstrom) and validated on load: missing keys,
shape mismatches, NaN/inf, unknown species, atoms closer than ``data.min_distance_A`` and empty sets each
give one clear error naming the file and the problem.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .dataset import DataError, pad_configurations, save_dataset, validate_arrays, versions

ANI_KEYS = ("coordinates", "species", "cell", "energy", "force")


def _species_numbers(raw, source: str) -> np.ndarray:
    from ase.data import atomic_numbers

    raw = np.asarray(raw)
    if raw.dtype.kind in "iu":
        return raw.astype(np.int64)
    out = []
    for s in raw.reshape(-1):
        sym = s.decode() if isinstance(s, bytes) else str(s)
        if sym not in atomic_numbers:
            raise DataError(f"{source}: unknown species {sym!r}")
        out.append(atomic_numbers[sym])
    return np.array(out, dtype=np.int64).reshape(raw.shape)


def read_ani_h5(directory: str | Path, energy_shift_eV_per_atom: float) -> list[dict]:
    """Every ``*.h5`` below ``directory`` in the pyanitools layout: groups holding ``coordinates``
    (n, N, 3), ``species`` (N,), ``cell`` (n, 3, 3), ``energy`` (n,) Hartree, ``force`` (n, N, 3)
    Hartree/Angstrom. Energies and forces are converted to eV and eV/Angstrom, and
    ``energy_shift_eV_per_atom`` x N is added to energies (as hippynn's ANI-Al example does)."""
    import h5py
    from ase import units

    directory = Path(directory)
    files = sorted(directory.rglob("*.h5")) if directory.is_dir() else [directory]
    if not files or not files[0].exists():
        raise DataError(f"{directory}: no .h5 files found")
    hartree = units.Hartree / units.eV
    configs: list[dict] = []
    for f in files:
        groups = []
        with h5py.File(f, "r") as h5:
            h5.visititems(lambda name, obj: groups.append(name)
                          if isinstance(obj, h5py.Group) and ("coordinates" in obj or "energy" in obj) else None)
            if not groups:
                raise DataError(f"{f}: no group with 'coordinates'/'energy' (not a pyanitools file?)")
            for g in groups:
                grp = h5[g]
                src = f"{f}:{g}"
                missing = [k for k in ANI_KEYS if k not in grp]
                if missing:
                    raise DataError(f"{src}: missing keys {missing} (need {list(ANI_KEYS)})")
                R, E, F, cell = (np.asarray(grp[k][()], dtype=float) for k in ("coordinates", "energy", "force", "cell"))
                Z = _species_numbers(grp["species"][()], src)
                if R.ndim != 3 or R.shape[1:] != (len(Z), 3):
                    raise DataError(f"{src}: coordinates have shape {R.shape}, expected (n, {len(Z)}, 3)")
                n = len(R)
                if E.shape != (n,) or F.shape != R.shape or cell.shape != (n, 3, 3):
                    raise DataError(f"{src}: shape mismatch: coordinates {R.shape}, energy {E.shape}, "
                                    f"force {F.shape}, cell {cell.shape}")
                for i in range(n):
                    configs.append({"Z": Z, "R": R[i], "cell": cell[i],
                                    "E": E[i] * hartree + energy_shift_eV_per_atom * len(Z),
                                    "F": F[i] * hartree, "source": src})
    if not configs:
        raise DataError(f"{directory}: the dataset is empty")
    return configs


def read_extxyz(path: str | Path) -> list[dict]:
    """An extended-XYZ file (energy and forces in eV, eV/Angstrom), read with ASE."""
    import ase.io

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    try:
        frames = ase.io.read(path, index=":", format="extxyz")
    except Exception as e:  # ASE raises many types on malformed files
        raise DataError(f"{path}: cannot be read as extended XYZ ({type(e).__name__}: {e})") from e
    if not frames:
        raise DataError(f"{path}: the dataset is empty")
    configs = []
    for i, at in enumerate(frames):
        try:
            E = at.get_potential_energy()
            F = at.get_forces()
        except Exception as e:
            raise DataError(f"{path}: frame {i} has no energy/forces ({e})") from e
        if not at.pbc.all() or at.cell.rank < 3:
            raise DataError(f"{path}: frame {i} is not periodic in 3D (the workflow needs periodic cells)")
        c = {"Z": at.numbers.copy(), "R": at.positions.copy(), "cell": at.cell.array.copy(), "E": float(E), "F": F}
        if "energies" in at.arrays:
            c["ref_atom_E"] = at.arrays["energies"].copy()
        configs.append(c)
    return configs


def prepare(source: str, path: str, min_distance_A: float, energy_shift: float = 0.0):
    if source == "ani_h5":
        configs = read_ani_h5(path, energy_shift)
    elif source == "extxyz":
        configs = read_extxyz(path)
    else:
        raise DataError(f"unknown data source {source!r}")
    arrays = pad_configurations(configs)
    validate_arrays(arrays, str(path), min_distance_A)
    return arrays


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="tsmlip prepare-dataset", description=__doc__)
    p.add_argument("--source", required=True, choices=["ani_h5", "extxyz"])
    p.add_argument("--path", required=True)
    p.add_argument("--min-distance", type=float, default=1.6)
    p.add_argument("--ani-energy-shift", type=float, default=72.0)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    try:
        arrays = prepare(a.source, a.path, a.min_distance, a.ani_energy_shift)
    except DataError as e:
        print(f"tsmlip prepare-dataset: error: {e}", file=sys.stderr)
        return 1
    save_dataset(arrays, a.out, {"source": a.source, "path": str(Path(a.path).resolve()),
                                 "ani_energy_shift_eV_per_atom": a.ani_energy_shift if a.source == "ani_h5" else None,
                                 "versions": versions()})
    print(f"[prepare] wrote {len(arrays['E'])} configurations to {a.out}", file=sys.stderr)
    return 0
