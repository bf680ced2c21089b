"""Predictions of a model over dataset rows, and the error metrics computed from them.

Used for the final metrics of every trained model and for the teacher's atom-energy labels, so all
models are scored by the same code on the same split.
"""
from __future__ import annotations

import numpy as np
import torch

from .metrics import atom_energy_agreement
from .model import DB_CELL, DB_POSITIONS, DB_SPECIES, ModelGraph


def predict(graph: ModelGraph, arrays: dict, rows: np.ndarray | None = None, device="cpu",
            batch_size: int = 16) -> dict[str, np.ndarray]:
    """Energy (n,), forces (n, N, 3) and per-atom energies (n, N) of dataset rows (padding -> 0)."""
    from hippynn.graphs import Predictor

    rows = np.arange(len(arrays["E"])) if rows is None else np.asarray(rows)
    pred = Predictor([graph.species, graph.positions, graph.cell],
                     [graph.energy, graph.forces, graph.atom_energies], model_device=device)
    E, F, A = [], [], []
    for start in range(0, len(rows), batch_size):
        r = rows[start:start + batch_size]
        out = pred(**{DB_SPECIES: torch.as_tensor(arrays["Z"][r]),
                      DB_POSITIONS: torch.as_tensor(arrays["R"][r], dtype=torch.float32),
                      DB_CELL: torch.as_tensor(arrays["cell"][r], dtype=torch.float32)}, batch_size=batch_size)
        E.append(out[graph.energy.db_name].detach().cpu().numpy().reshape(-1))
        F.append(out[graph.forces.db_name].detach().cpu().numpy())
        A.append(out[graph.atom_energies.db_name].detach().cpu().numpy().reshape(len(r), -1))
    real = arrays["Z"][rows] != 0
    A = np.concatenate(A) * real
    return {"E": np.concatenate(E), "F": np.concatenate(F) * real[..., None], "atom_E": A}


def error_metrics(pred: dict, arrays: dict, rows: np.ndarray, labels: np.ndarray | None = None) -> dict:
    """Energy (total and per atom) and force RMSE/MAE of predictions for ``rows``; atom-energy RMSE
    and correlation against teacher ``labels`` (n_all, N) when given (raw RMSE, no offset removed:
    that is what the student is trained to match)."""
    rows = np.asarray(rows)
    n_atoms = (arrays["Z"][rows] != 0).sum(axis=1)
    dE = pred["E"] - arrays["E"][rows]
    mask = arrays["Z"][rows] != 0
    dF = (pred["F"] - arrays["F"][rows])[mask]
    out = {
        "n_configs": int(len(rows)),
        "energy_rmse_eV": float(np.sqrt(np.mean(dE ** 2))),
        "energy_mae_eV": float(np.mean(np.abs(dE))),
        "energy_per_atom_rmse_eV": float(np.sqrt(np.mean((dE / n_atoms) ** 2))),
        "force_rmse_eV_A": float(np.sqrt(np.mean(dF ** 2))),
        "force_mae_eV_A": float(np.mean(np.abs(dF))),
        "atom_energy_rmse_eV": None,
        "atom_energy_pearson_r": None,
    }
    if labels is not None:
        lab = labels[rows][mask]
        pa = pred["atom_E"][mask]
        out["atom_energy_rmse_eV"] = float(np.sqrt(np.mean((pa - lab) ** 2)))
        out["atom_energy_pearson_r"] = atom_energy_agreement(pred["atom_E"], labels[rows], mask)["pearson_r"]
    return out
