"""Metrics shared by several stages (numpy only, cheap to import)."""
from __future__ import annotations

import math

import numpy as np


def atom_energy_agreement(pred, ref, mask=None) -> dict:
    """Agreement of two sets of per-atom energies (eV), a constant offset removed.

    ``pred`` and ``ref`` are arrays of the same shape (e.g. (n_conf, n_atoms_max)); ``mask`` selects the
    real atoms (default: all entries; padding must be masked out). Per-atom energies are defined only up to
    a constant, so the mean difference is removed first.

    Returns ``{"rmse_eV", "pearson_r", "offset_eV", "ref_std_eV", "n_atoms"}``: RMSE of
    ``pred - ref - offset_eV`` with ``offset_eV = mean(pred - ref)``, Pearson correlation, and the standard
    deviation of ``ref`` (the RMSE of the best constant guess, for scale). Perfect agreement gives
    ``rmse_eV = 0`` and ``pearson_r = 1``; ``pearson_r`` is NaN when either side is constant.
    """
    pred = np.asarray(pred, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if pred.shape != ref.shape:
        raise ValueError(f"atom energies: shapes differ, {pred.shape} vs {ref.shape}")
    mask = np.ones(pred.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if mask.shape != pred.shape:
        raise ValueError(f"atom energies: mask shape {mask.shape} is not {pred.shape}")
    p, r = pred[mask], ref[mask]
    if p.size == 0:
        raise ValueError("atom energies: the mask selects no atom")
    diff = p - r
    offset = float(diff.mean())
    rmse = float(np.sqrt(np.mean((diff - offset) ** 2)))
    sp, sr = p.std(), r.std()
    corr = float(np.mean((p - p.mean()) * (r - r.mean())) / (sp * sr)) if sp > 0 and sr > 0 else math.nan
    return {"rmse_eV": rmse, "pearson_r": corr, "offset_eV": offset, "ref_std_eV": float(sr), "n_atoms": int(p.size)}
