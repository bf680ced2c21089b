"""The figures of a run: one entry per figure holds every fact the workflow keys on a figure.

The rules (workflow/rules/common.smk: the `figure` rule's inputs, config and report labels) and ``tsmlip plot``
(:mod:`tsmlip.plots`: its choices and the inputs it requires) read this table; a new figure is one entry here
and its drawing function in :mod:`tsmlip.plots`. Standard library only: the workflow reads it when it is planned.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """One figure of the paper, drawn by ``tsmlip plot <name>``."""

    name: str
    #: where it stands in the paper, and what it shows (the HTML report's labels)
    paper: str
    shows: str
    #: the inputs it reads, as ``tsmlip plot`` options: ``models`` (tables/models.csv), ``curves``
    #: (tables/curves.csv), ``born_again`` (tables/born_again.csv), ``rdf_noise_floor`` (rdf_noise/noise_floor.json),
    #: ``classical`` (tables/classical.csv: the classical anchor, config classical:)
    inputs: tuple[str, ...]
    #: the inputs it can be drawn without (by hand; the workflow passes them all)
    optional: tuple[str, ...] = ()
    #: config keys it reads besides ``aggregate.dpi``
    reads: tuple[str, ...] = ()

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(i for i in self.inputs if i not in self.optional)


FIGURES: dict[str, Figure] = {f.name: f for f in (
    Figure("pareto_time", "Fig. 2A", "test force RMSE vs MD time per step per atom (Pareto fronts; the classical "
           "anchor as a star)", ("models", "classical"), optional=("classical",)),
    Figure("pareto_memory", "Fig. 2B", "test force RMSE vs memory per atom (Pareto fronts)", ("models",)),
    Figure("capacity", "Fig. 3", "force, energy and RDF errors vs number of weights",
           ("models", "rdf_noise_floor"), optional=("rdf_noise_floor",)),
    Figure("learning_curves", "Fig. 4", "training and validation force RMSE vs epoch", ("models", "curves"),
           reads=("aggregate.curves_arch", "sweep.base")),
    Figure("scaling", "Fig. 5", "MD time per step per atom and maximum atoms vs number of weights", ("models",)),
    Figure("born_again", "Sec. 3.5", "teacher vs Born-Again students (bar plot)", ("born_again",)),
)}
