"""MD cost of the classical anchor (config ``classical:``, :mod:`tsmlip.classical`) by the models' ``md.timing``
protocol and record (:func:`tsmlip.md.timing.time_md` with the potential in place of a model): engine ``ase`` (ASE's
VelocityVerlet, LAMMPS as the calculator) or ``lammps`` (LAMMPS's own ``fix nve``).

``tsmlip classical-cost --config-json '{"md": {...}, "classical": {...}}' --engine lammps --species-from
data/provenance.json --out classical/md_timing_lammps.json``
"""
from __future__ import annotations

import sys

from ..classical import ClassicalError, check_species, model_id, resolve
from ..records import DatasetProvenance


def main(argv: list[str] | None = None) -> int:
    from ..cli import step_parser
    from ..core.elements import ElementError
    from ..core.md.common import log, setup_device, write_json
    from ..provenance import json_with, record
    from .timing import time_md

    p = step_parser("classical-cost", "MD cost of the classical anchor by the models' md.timing protocol.")
    p.add_argument("--engine", required=True, choices=("ase", "lammps"))
    p.add_argument("--species-from", required=True, help="the dataset's provenance.json (its species)")
    p.add_argument("--out", required=True, help="classical/md_timing_<engine>.json")
    a = p.parse_args(argv)
    md, cfg = a.config_json["md"], a.config_json["classical"]
    species = DatasetProvenance.read(a.species_from).species
    device = setup_device(md)  # torch threads as the models'; LAMMPS runs serial on the CPU
    try:
        pot = resolve(cfg)
        check_species(pot, species)
        rec = time_md(None, a.engine, md, device, model_id(cfg), classical=pot, species=species)
    except (ClassicalError, ElementError) as e:
        log(f"tsmlip classical-cost: error: {e}")
        return 2
    write_json(a.out, json_with(rec, record("classical-cost", a.config_json, {"species": a.species_from})))
    log(f"[classical-cost] {pot.name} ({a.engine}): {rec['us_per_atom_step']:.3f} us/atom/step, stable={rec['stable']}"
        f" -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
