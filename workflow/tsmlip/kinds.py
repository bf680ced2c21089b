"""The kinds of trained model: one entry per kind holds every fact the workflow keys on a kind.

Configuration (allowed ids and ``sweep.kinds``), the rules (what each kind trains on), training (the loss),
the tables, claims and figures read this registry. A new kind is one entry here, its loss weights in
``training.loss_weights`` of config/config.yaml, and its name in the kind lists of schema.yaml
(tests/test_kinds.py checks those lists against this module).

Beyond the paper (docs/beyond.md), chosen through ``sweep.kinds`` (the default's has ``student_oracle``,
config/beyond.yaml adds ``student_synthetic``): ``student_oracle`` learns the student's
loss with the reference potential's own atom energies as targets, ``student_synthetic`` the student's loss on
the ground truth plus configurations from the teacher's own MD labelled by the teacher(s).
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BORN_AGAIN_KINDS", "BORN_AGAIN_TABLE_KINDS", "DISTILLED_KINDS", "KINDS", "LABEL_SOURCES", "OPT_IN_KINDS",
           "PAPER_SWEEP_KINDS", "REGISTRY", "SWEEP_KINDS"]

#: where a kind's training data and atom-energy labels come from (the rules' train inputs, common.smk):
#: ``none``: the data alone; ``teacher``: plus the teacher's atom energies; ``oracle``: plus the reference
#: potential's own; ``synthetic``: the ground truth plus teacher-generated configurations, teacher-labelled
LABEL_SOURCES = ("none", "teacher", "oracle", "synthetic")


@dataclass(frozen=True)
class Kind:
    """One kind of trained model."""

    name: str
    #: the atom-energy labels it reads (one of :data:`LABEL_SOURCES`); controls read the teacher's only to
    #: report the atom-energy error, never in their loss
    labels: str
    #: its loss has an atom-energy term (eq. 5), so it needs atom-energy labels
    distilled: bool
    #: the entry of ``training.loss_weights`` it is trained with; None: the Born-Again schedule
    #: (``born_again.schedule``). The beyond-the-paper students take the student's weights, so each
    #: comparison with the student isolates one change
    loss_weights: str | None
    #: trained over the sweep's architectures (a value of ``sweep.kinds``)
    sweep: bool
    #: beyond the paper (docs/beyond.md): not one of the paper's sweep kinds (:data:`PAPER_SWEEP_KINDS`)
    opt_in: bool
    #: legend label, colour and marker in the figures
    label: str
    color: str
    marker: str
    #: its row name in the Born-Again table (``tables/born_again.csv``), None when it has none
    born_again_label: str | None = None
    #: a Born-Again student: the teacher's architecture, trained on the teacher's labels with the seeds of
    #: ``born_again.seeds`` when ``born_again.enabled`` (a static-weight one also needs ``born_again.static``)
    born_again: bool = False

    @property
    def scheduled(self) -> bool:
        """Trained with loss weights that follow a schedule by epoch."""
        return self.loss_weights is None


REGISTRY: dict[str, Kind] = {k.name: k for k in (
    Kind("teacher", labels="none", distilled=False, loss_weights="teacher", sweep=False, opt_in=False,
         label="teacher", color="black", marker="*",
         born_again_label="teacher (static weights, ground truth only)"),
    Kind("student", labels="teacher", distilled=True, loss_weights="student", sweep=True, opt_in=False,
         label="student (energies, forces + teacher's atom energies)", color="#1f77b4", marker="o"),
    Kind("control", labels="teacher", distilled=False, loss_weights="control", sweep=True, opt_in=False,
         label="control (energies, forces)", color="#d62728", marker="s"),
    Kind("control_fw", labels="teacher", distilled=False, loss_weights="control_fw", sweep=True, opt_in=False,
         label="control, student's force weight (ablation)", color="#2ca02c", marker="^"),
    Kind("born_again", labels="teacher", distilled=True, loss_weights=None, sweep=False, opt_in=False,
         label="Born-Again, scheduled weights", color="#9467bd", marker="D",
         born_again_label="Born-Again student, scheduled weights (Table 1)", born_again=True),
    Kind("born_again_static", labels="teacher", distilled=True, loss_weights="born_again_static", sweep=False,
         opt_in=False, label="Born-Again, static weights", color="#8c564b", marker="v",
         born_again_label="Born-Again student, static weights", born_again=True),
    Kind("student_oracle", labels="oracle", distilled=True, loss_weights="student", sweep=True, opt_in=True,
         label="student on the reference's own atom energies (oracle)", color="#ff7f0e", marker="P"),
    Kind("student_synthetic", labels="synthetic", distilled=True, loss_weights="student", sweep=True, opt_in=True,
         label="student + teacher-generated configurations", color="#17becf", marker="X"),
)}

#: every kind, in the order of the tables' rows
KINDS = tuple(REGISTRY)
#: kinds whose loss has an atom-energy term (and therefore need atom-energy labels)
DISTILLED_KINDS = tuple(k.name for k in REGISTRY.values() if k.distilled)
#: kinds of the width / sensitivity / layer sweep (the values ``sweep.kinds`` allows)
SWEEP_KINDS = tuple(k.name for k in REGISTRY.values() if k.sweep)
#: the kinds beyond the paper (the field `opt_in`; student_oracle is in the default's sweep all the same), and the
#: paper's sweep (the sweep kinds that are not beyond it)
OPT_IN_KINDS = tuple(k.name for k in REGISTRY.values() if k.opt_in)
PAPER_SWEEP_KINDS = tuple(k for k in SWEEP_KINDS if k not in OPT_IN_KINDS)
#: the Born-Again students (trained at the teacher's architecture, config ``born_again:``)
BORN_AGAIN_KINDS = tuple(k.name for k in REGISTRY.values() if k.born_again)
#: the rows of the Born-Again table: the teacher first, then the Born-Again students, static weights before
#: the schedule
BORN_AGAIN_TABLE_KINDS = tuple(sorted((k.name for k in REGISTRY.values() if k.born_again_label),
                                      key=lambda k: (k != "teacher", REGISTRY[k].scheduled)))
