"""The paper's losses (eq. 2, eq. 5); their weights by kind and the Born-Again schedule (Table 1) are
:mod:`tsmlip.loss_weights`.

Each error term is L_err(V_pred, V_true) = RMSE + MAE (eq. 3), built as hippynn loss nodes:

    loss = w_E * L_err(E) + w_F * L_err(F) + w_A * L_err(eps_student, eps_teacher) + w_L2 * L2 + w_R * R

Teacher and control use eq. 2 (w_A = 0, the atom-energy term is not even built); students use eq. 5.
The weights are applied in Python (:func:`combine`) rather than frozen into the graph, so a schedule can
change them by epoch. The atom-energy error runs over real atoms only: hippynn converts the padded
(configuration, atom) label array to the flat list of real atoms before the loss.
"""
from __future__ import annotations

from ..loss_weights import LossWeights

#: the loss terms, in the order the training loop evaluates them (A only where the model is distilled)
TERMS = ("E", "F", "A", "L2", "R")


#: added to each mean squared error under the square root (eV^2, eV^2/A^2): see build_loss_terms
RMSE_FLOOR = 1e-30


def build_loss_terms(graph, with_atom_energies: bool) -> tuple[dict, dict]:
    """hippynn nodes for each loss term and for the validation metrics.

    :returns: (terms, metrics): ``terms`` maps E, F, (A,) L2, R to loss nodes; ``metrics`` maps
        readable names to nodes evaluated on validation data each epoch (RMSEs and MAEs in eV, eV/A).
    """
    from hippynn.graphs import loss

    def err(node):  # L_err = RMSE + MAE (eq. 3)
        # the floor keeps the RMSE's gradient finite when a batch's error is exactly 0 (forces of 1-atom
        # periodic cells are 0 by symmetry, in the data and in the model): sqrt'(0) is infinite, times a zero
        # error gradient gives NaN. Below float32 resolution for any nonzero MSE, so values are unchanged.
        rmse = (loss.MSELoss.of_node(node) + RMSE_FLOOR) ** (1 / 2)
        mae = loss.MAELoss.of_node(node)
        return rmse + mae, rmse, mae

    err_E, rmse_E, mae_E = err(graph.energy)
    err_F, rmse_F, mae_F = err(graph.forces)
    _, rmse_Epa, _ = err(graph.energy_per_atom)
    terms = {"E": err_E, "F": err_F,
             "L2": loss.l2reg(graph.network),
             "R": loss.Mean.of_node(graph.hierarchicality)}
    metrics = {"energy_rmse_eV": rmse_E, "energy_mae_eV": mae_E, "energy_per_atom_rmse_eV": rmse_Epa,
               "force_rmse_eV_A": rmse_F, "force_mae_eV_A": mae_F,
               "err_E": err_E, "err_F": err_F}
    if with_atom_energies:
        err_A, rmse_A, _ = err(graph.atom_energies)
        terms["A"] = err_A
        metrics.update({"atom_energy_rmse_eV": rmse_A, "err_A": err_A})
    return terms, metrics


def combine(w: LossWeights, terms: dict):
    """Eq. 5 (eq. 2 when there is no atom-energy term): the weighted sum of the loss terms."""
    loss = w.w_E * terms["E"] + w.w_F * terms["F"] + w.w_L2 * terms["L2"] + w.w_R * terms["R"]
    if "A" in terms:
        loss = loss + w.w_A * terms["A"]
    return loss


def error_loss(w: LossWeights, values: dict) -> float:
    """The data part of the loss (no regularisers) from validation metric values: the stopping metric."""
    out = w.w_E * values["err_E"] + w.w_F * values["err_F"]
    if "err_A" in values:
        out += w.w_A * values["err_A"]
    return float(out)
