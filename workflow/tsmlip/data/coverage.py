"""What a dataset covers: nearest-neighbour distances, densities and temperatures per configuration.

Used for ``provenance.json`` (quantiles) and for the coverage figure, where each liquid-RDF run's
closest approach is drawn against the training set's distances (does the melt leave the data?).
Units: Angstrom, g/cm^3, K.
"""
from __future__ import annotations

import numpy as np

QUANTILES = (0.0, 0.05, 0.5, 0.95, 1.0)


def per_config(arrays: dict, cutoff_A: float = 4.0) -> dict[str, np.ndarray]:
    """Per configuration: ``min_pair_distance_A`` (closest pair), ``median_nn_distance_A`` (median over
    atoms of each atom's nearest-neighbour distance), ``density_g_cm3`` and ``T_K`` (nan if unknown)."""
    from ase import Atoms
    from ase.neighborlist import neighbor_list
    from ase.units import _amu

    n = len(arrays["E"])
    out = {k: np.full(n, np.nan) for k in ("min_pair_distance_A", "median_nn_distance_A", "density_g_cm3")}
    for c in range(n):
        k = int((arrays["Z"][c] != 0).sum())
        atoms = Atoms(numbers=arrays["Z"][c, :k], positions=arrays["R"][c, :k], cell=arrays["cell"][c], pbc=True)
        i, d = neighbor_list("id", atoms, cutoff_A)
        if len(d):
            nn = np.full(k, np.inf)
            np.minimum.at(nn, i, d)
            out["min_pair_distance_A"][c] = d.min()
            out["median_nn_distance_A"][c] = np.median(nn[np.isfinite(nn)])
        out["density_g_cm3"][c] = atoms.get_masses().sum() * _amu * 1e3 / (atoms.get_volume() * 1e-24)
    out["T_K"] = np.asarray(arrays["T_K"], float) if "T_K" in arrays else np.full(n, np.nan)
    return out


def _quantiles(x: np.ndarray) -> dict | None:
    x = x[np.isfinite(x)]
    if not x.size:
        return None
    return {f"q{int(100 * q):02d}": round(float(np.quantile(x, q)), 4) for q in QUANTILES}


def coverage_summary(arrays: dict, families=None) -> dict:
    """Quantiles (min, 5 %, median, 95 %, max) of each per-configuration quantity, overall and per
    family when the dataset has ``config_kind``."""
    pc = per_config(arrays)
    out = {"all": {k: _quantiles(v) for k, v in pc.items()}}
    if families is not None and "config_kind" in arrays:
        kinds = np.asarray(arrays["config_kind"])
        for f_idx, name in enumerate(families):
            sel = kinds == f_idx
            if sel.any():
                out[name] = {"n_configs": int(sel.sum()), **{k: _quantiles(v[sel]) for k, v in pc.items()}}
    return out
