"""The teacher's knowledge: per-atom energies of every configuration of the dataset (all splits).

With several teacher seeds, ``labels.teacher`` picks one seed or ``mean`` (the ensemble mean of the
teachers' atom energies; its sum is the mean of their total energies). On write, each configuration's
atom energies must sum to the teacher's total energy within ``labels.sum_tolerance_eV`` (float32), else
the step fails. Files read later are re-checked (:func:`load_labels`), so a corrupted label file is refused.
Where the dataset carries the reference potential's own atom energies (the embedded EMT set), the
agreement of the teacher's with them is recorded (RMSE after removing one offset, correlation).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from .data import load_dataset
from .io_utils import atomic_open
from .core.model import device_description, load_model, resolve_device
from .core.metrics import atom_energy_agreement
from .core.predict import predict
from .records import AtomEnergies, AtomEnergyAgreement, OracleAtomEnergies


class LabelError(ValueError):
    pass


def check_sums(atom_E: np.ndarray, E_teacher: np.ndarray, Z: np.ndarray, tolerance: float, source: str) -> float:
    """Largest |sum_i eps_i - E| over configurations; raises :class:`LabelError` beyond ``tolerance``
    or if padding carries energy or anything is not finite."""
    if atom_E.shape != Z.shape:
        raise LabelError(f"{source}: atom energies of shape {atom_E.shape} do not match the dataset {Z.shape}")
    if not (np.isfinite(atom_E).all() and np.isfinite(E_teacher).all()):
        raise LabelError(f"{source}: atom energies contain NaN/inf")
    if np.any(atom_E[Z == 0] != 0):
        raise LabelError(f"{source}: padding atoms carry non-zero energy")
    dev = np.abs(atom_E.sum(axis=1) - E_teacher)
    worst = int(np.argmax(dev))
    if dev[worst] > tolerance:
        raise LabelError(f"{source}: configuration {worst}: atom energies sum to {atom_E[worst].sum():.6f} eV "
                         f"but the teacher's total energy is {E_teacher[worst]:.6f} eV "
                         f"(|diff| {dev[worst]:.2e} > tolerance {tolerance:.1e} eV)")
    return float(dev.max())


def load_labels(path: str | Path, dataset: dict, tolerance: float | None = None) -> np.ndarray:
    """The atom-energy labels of ``path``, re-checked against ``dataset`` (tolerance: the one the file
    was written with, unless given)."""
    with np.load(path) as z:
        atom_E, E_teacher = z["atom_E"], z["E_teacher"]
        if tolerance is None:
            tolerance = float(z["sum_tolerance_eV"])
    check_sums(atom_E, E_teacher, dataset["Z"], tolerance, str(path))
    return atom_E


def ensemble_predictions(teacher_paths: list[str], arrays: dict, device, batch_size: int = 16, tag: str = "label"
                         ) -> dict:
    """Energies, forces and atom energies of every configuration of ``arrays``, averaged over the teachers
    (one teacher: its own), with their spread: the standard deviation over the teachers of the energy per
    atom and of the force vectors (zero for one teacher)."""
    preds = []
    for p in teacher_paths:
        print(f"[{tag}] predicting {len(arrays['E'])} configurations with {p}", file=sys.stderr, flush=True)
        preds.append(predict(load_model(p, device=device), arrays, device=device, batch_size=batch_size))
    stack = {k: np.stack([p[k] for p in preds]) for k in ("E", "F", "atom_E")}
    mask = arrays["Z"] != 0
    e_std = stack["E"].std(axis=0) / mask.sum(axis=1)
    f_std = np.sqrt((stack["F"].std(axis=0) ** 2).sum(axis=-1))[mask]
    return {"E": stack["E"].mean(axis=0), "F": stack["F"].mean(axis=0), "atom_E": stack["atom_E"].mean(axis=0),
            "spread": {"n_teachers": len(preds),
                       "energy_per_atom_std_meV_mean": float(1e3 * e_std.mean()),
                       "energy_per_atom_std_meV_max": float(1e3 * e_std.max()),
                       "force_std_eV_A_rms": float(np.sqrt(np.mean(f_std ** 2))),
                       "force_std_eV_A_max": float(f_std.max())}}


def label(teacher_paths: list[str], dataset_path: str, out: str, tolerance: float, choice: str,
          device="auto", batch_size: int = 16, split_path: str | None = None, settings: dict | None = None) -> dict:
    """The teachers' atom energies of every configuration of the dataset (``out``, npz with its provenance record).
    Each teacher must have been trained on this dataset and split (:func:`tsmlip.provenance.check_model_data`):
    a teacher of another split would label test configurations it trained on."""
    from .provenance import check_model_data, npz_arrays, record

    from .provenance import teachers_split

    for p in teacher_paths:
        check_model_data(p, dataset_path, split_path)
    rec = record("label", settings or {}, {"teachers": list(teacher_paths), "dataset": dataset_path,
                                          "split": split_path})
    # the split the teachers were trained on, from their own files: labels made without --split (by hand) still
    # say which configurations the teachers saw, and a student of another split is refused
    # (tsmlip.provenance.check_inputs)
    try:
        rec["teachers_split"] = teachers_split(teacher_paths)
    except ValueError as e:
        raise LabelError(str(e)) from None
    dev = resolve_device(device)
    arrays = load_dataset(dataset_path)
    ens = ensemble_predictions(teacher_paths, arrays, dev, batch_size, tag="label")
    atom_E, E_teacher = ens["atom_E"], ens["E"]
    # float32 rounding of a sum over up to ~250 atoms of ~eV terms: a few 1e-5 eV
    max_dev = check_sums(atom_E, E_teacher, arrays["Z"], tolerance, "teacher predictions")
    with atomic_open(out, "wb") as fh:
        np.savez_compressed(fh, atom_E=atom_E, E_teacher=E_teacher, sum_tolerance_eV=tolerance, **npz_arrays(rec))
    mask = arrays["Z"] != 0
    info = AtomEnergies(
        teachers=[str(p) for p in teacher_paths], choice=choice,
        ensemble="mean of teachers' atom energies" if len(teacher_paths) > 1 else None,
        n_configs=int(len(atom_E)), n_atoms=int(mask.sum()),
        max_sum_deviation_eV=max_dev, sum_tolerance_eV=tolerance,
        teacher_energy_rmse_eV=float(np.sqrt(np.mean((E_teacher - arrays["E"]) ** 2))),
        atom_energy_mean_eV=float(atom_E[mask].mean()), atom_energy_std_eV=float(atom_E[mask].std()),
        device=device_description(dev),
        vs_reference=AtomEnergyAgreement(**atom_energy_agreement(atom_E, arrays["ref_atom_E"], mask))
        if "ref_atom_E" in arrays else None,
    )
    return info.write(Path(out).with_suffix(".json"), indent=2)


def oracle_labels(dataset_path: str, out: str, tolerance: float, settings: dict | None = None) -> dict:
    """The reference potential's own per-atom energies as labels (kind ``student_oracle``, docs/beyond.md):
    the best atom energies any teacher could hand on, summing to the reference totals the models fit. The npz
    records the dataset it was taken from (``_provenance``): a student given another dataset is refused."""
    from .provenance import npz_arrays, record

    rec = record("label-oracle", settings or {}, {"dataset": dataset_path})
    arrays = load_dataset(dataset_path)
    if "ref_atom_E" not in arrays:
        raise LabelError(f"{dataset_path}: the dataset carries no reference per-atom energies (ref_atom_E), so "
                         "student_oracle cannot be trained on it; remove it from sweep.kinds")
    mask = arrays["Z"] != 0
    atom_E = np.where(mask, arrays["ref_atom_E"], 0.0)
    max_dev = check_sums(atom_E, arrays["E"], arrays["Z"], tolerance, f"{dataset_path} (reference atom energies)")
    with atomic_open(out, "wb") as fh:
        np.savez_compressed(fh, atom_E=atom_E, E_teacher=arrays["E"], sum_tolerance_eV=tolerance, **npz_arrays(rec))
    info = OracleAtomEnergies(
        source="the reference potential's per-atom energies (dataset ref_atom_E): oracle labels",
        n_configs=int(len(atom_E)), n_atoms=int(mask.sum()), max_sum_deviation_eV=max_dev,
        sum_tolerance_eV=tolerance, atom_energy_mean_eV=float(atom_E[mask].mean()),
        atom_energy_std_eV=float(atom_E[mask].std()))
    return info.write(Path(out).with_suffix(".json"), indent=2)


def main_oracle(argv=None) -> int:
    from .cli import step_parser

    p = step_parser("label-oracle", oracle_labels.__doc__)
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    try:
        info = oracle_labels(a.dataset, a.out, a.config_json["labels"]["sum_tolerance_eV"], a.config_json)
    except LabelError as e:
        print(f"tsmlip label-oracle: error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(info, indent=2))
    return 0


def check_teachers(parser, files: list[str], ids: list[str]) -> None:
    """A usage error of ``parser`` unless there is one id per teacher file; :class:`tsmlip.core.model.ModelFileError`
    unless each file is the teacher model of its id."""
    from .core.model import check_model_id

    if len(files) != len(ids):
        parser.error("--teacher and --teacher-ids need the same number of entries")
    for path, model_id in zip(files, ids):
        check_model_id(path, model_id, kind="teacher")


def main(argv=None) -> int:
    from .cli import step_parser

    p = step_parser("label", __doc__ + "\n\nlabels.teacher (which teachers --teacher names) is recorded.")
    p.add_argument("--teacher", nargs="+", required=True, help="teacher model.pt file(s)")
    p.add_argument("--teacher-ids", nargs="+", required=True, help="ids of those teachers, same order")
    p.add_argument("--dataset", required=True)
    p.add_argument("--split", default=None, help="the split the teachers were trained on (checked against their files)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    check_teachers(p, a.teacher, a.teacher_ids)
    lc = a.config_json["labels"]
    try:
        info = label(a.teacher, a.dataset, a.out, lc["sum_tolerance_eV"], str(lc["teacher"]), a.device,
                     split_path=a.split, settings=a.config_json)
    except LabelError as e:
        print(f"tsmlip label: error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(info, indent=2))
    return 0
