"""Teacher-generated training data (beyond the paper; kind ``student_synthetic``, docs/beyond.md).

Configurations come from the teacher's own MD (NVT Langevin, :mod:`tsmlip.core.md.engines`) at the states of the
``synthetic:`` config section (temperature and density relative to ASE's reference solid of the data's
element: hot crystals, and liquids melted first), and are labelled by the teacher(s) with energies, forces
and per-atom energies. With several teachers (``labels.teacher: mean``) the trajectories take turns on the
teachers and every configuration gets the ensemble mean; the ensemble's spread is recorded. No reference
calculation is made: the extra data cost only teacher MD.

The output is the training set of a ``student_synthetic`` model: the ground-truth dataset with the synthetic
configurations appended (``dataset.npz``), the same split with the synthetic configurations added to the
training split only (validation and test stay ground truth, so every kind is scored on the same
configurations), and the atom-energy labels of both (the teacher's labels of the ground truth, the
synthetic configurations' own). Each file carries its provenance record (:func:`write_training_set`).
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np

from .data import load_dataset, load_split
from .data.dataset import pad_configurations, save_dataset
from .data.split import SPLITS
from .io_utils import atomic_open
from .label import check_sums, check_teachers, ensemble_predictions, load_labels
from .records import SyntheticInfo
from .core.model import device_description, resolve_device


class SyntheticError(ValueError):
    pass


def log(msg: str) -> None:
    print(f"[synthesize] {msg}", file=sys.stderr, flush=True)


def start_structure(element: str, supercell, density_ratio: float, rattle_A: float, rng):
    """ASE's reference crystal of ``element`` (conventional cell repeated ``supercell``), scaled isotropically
    to ``density_ratio`` x its reference density, atoms displaced by a Gaussian of ``rattle_A``."""
    from .core.elements import crystal_settings, unit_cell

    atoms = unit_cell(crystal_settings(element, key="synthetic")).repeat(tuple(int(n) for n in supercell))
    atoms.set_cell(atoms.cell * (1.0 / float(density_ratio)) ** (1.0 / 3.0), scale_atoms=True)
    atoms.pbc = True
    if rattle_A > 0:
        atoms.positions += rng.normal(scale=rattle_A, size=atoms.positions.shape)
    return atoms


def closest_pair(atoms, cutoff: float) -> float:
    from ase.neighborlist import neighbor_list

    d = neighbor_list("d", atoms, max(cutoff, 1.0))
    return float(d.min()) if len(d) else math.inf


def trajectory(model_path, element: str, state: dict, cfg: dict, rng, device, n_frames: int) -> tuple[list, dict]:
    """One teacher trajectory at ``state``: (melt,) equilibration, then ``n_frames`` snapshots every
    ``steps_between_snapshots`` steps. Returns the frames and a record (frames dropped for a close contact,
    whether it blew up)."""
    from .core.md.engines import Langevin, make_engine
    from .core.md.system import thermalize

    T = float(state["temperature_K"])
    stages = ([("melt", float(cfg["melt_temperature_K"]), int(cfg["melt_steps"]))] if state.get("melt") else []) + \
        [("equilibrate", T, int(cfg["equilibration_steps"]))]
    atoms = start_structure(element, cfg["supercell"], state["density_ratio"], cfg["rattle_A"], rng)
    thermalize(atoms, stages[0][1], rng=rng)
    thermostat = Langevin(temperature_K=stages[0][1], friction_per_fs=float(cfg["friction_per_fs"]), rng=rng,
                          fix_com=False)
    eng = make_engine("ase", model_path, atoms, device, float(cfg["timestep_fs"]), dtype=None, thermostat=thermostat)
    record = {**state, "n_atoms": len(atoms), "dropped_close_contact": 0, "blew_up": False}

    def finite() -> bool:
        return bool(np.all(np.isfinite(eng.positions())) and eng.temperature() < cfg["blowup_temperature_K"])

    start = None
    for name, temp, n in stages:
        eng.set_temperature(temp)
        if name == "equilibrate":
            start = eng.positions()  # unwrapped: the mean-square displacement from here tells liquid from crystal
        eng.run(n, lambda: None)
    frames = []
    for _ in range(n_frames):
        eng.run(int(cfg["steps_between_snapshots"]), lambda: None)
        if not finite():
            record["blew_up"] = True
            break
        frame = eng.snapshot()
        frame.wrap()
        if closest_pair(frame, cfg["min_distance_A"]) < cfg["min_distance_A"]:
            record["dropped_close_contact"] += 1
            continue
        frame.info["T_K"] = T
        frames.append(frame)
    record["kept"] = len(frames)
    # mean-square displacement at the state (equilibration + snapshots) over the squared nearest-neighbour
    # distance of the start lattice (tsmlip.rdf.melt_indicator): ~0.01-0.03 in a crystal, tenths in a liquid
    from .rdf import melt_indicator

    lattice = start_structure(element, cfg["supercell"], state["density_ratio"], 0.0, rng)
    msd = float(np.mean(np.sum((eng.positions() - start) ** 2, axis=1)))
    record["msd_A2"] = msd
    record["melt_indicator"] = melt_indicator(msd, closest_pair(lattice, 4.0))
    return frames, record


def generate(teacher_paths: list[str], element: str, cfg: dict, device="cpu") -> tuple[list, list[dict]]:
    """The synthetic configurations (``ase.Atoms``, no labels yet) and one record per trajectory.
    Trajectories cycle over ``cfg['states']``; each round over the states is driven by the next teacher."""
    rng = np.random.default_rng(int(cfg["seed"]))
    per = int(cfg["snapshots_per_trajectory"])
    n_traj = -(-int(cfg["n_configs"]) // per)
    frames, records = [], []
    t0 = time.perf_counter()
    for k in range(n_traj):
        state = cfg["states"][k % len(cfg["states"])]
        # one teacher per round over the states, rounds rotating over the teachers: every state meets every teacher
        teacher = teacher_paths[(k // len(cfg["states"])) % len(teacher_paths)]
        want = min(per, int(cfg["n_configs"]) - len(frames))
        if want <= 0:
            break
        got, rec = trajectory(teacher, element, state, cfg, rng, device, want)
        rec["teacher"] = str(teacher)
        frames += got
        records.append(rec)
        notes = (["blew up"] if rec["blew_up"] else []) + (
            [f"{rec['dropped_close_contact']} dropped (close contact)"] if rec["dropped_close_contact"] else [])
        log(f"trajectory {k + 1}/{n_traj}: {state['temperature_K']:g} K, density x{state['density_ratio']:g}"
            f"{' (after a melt)' if state.get('melt') else ''}: {rec['kept']} configurations, melt indicator "
            f"{rec['melt_indicator']:.3f}"
            f"{''.join(', ' + n for n in notes)}; {time.perf_counter() - t0:.0f} s")
    return frames, records


def label_error(frames, labels: dict, source: str) -> dict | None:
    """How far the teacher's labels of the synthetic configurations are from the reference potential
    (embedded EMT data only: a check a real dataset cannot afford): energy-per-atom and force RMSE."""
    from .rdf import reference_calculator

    calc = reference_calculator(source)
    if calc is None:
        return None
    dE, dF = [], []
    for i, f in enumerate(frames):
        atoms = f.copy()
        atoms.calc = calc
        dE.append((labels["E"][i] - atoms.get_potential_energy()) / len(atoms))
        dF.append(labels["F"][i, :len(atoms)] - atoms.get_forces())
    dF = np.concatenate(dF)
    return {"reference": source, "energy_per_atom_rmse_eV": float(np.sqrt(np.mean(np.square(dE)))),
            "force_rmse_eV_A": float(np.sqrt(np.mean(dF ** 2)))}


def concatenate(a: dict, b: dict) -> dict:
    """Two datasets' arrays, ``a``'s configurations first, padded to the larger of the two; keys in only one
    of them (e.g. ``ref_atom_E``) are left out."""
    per_atom = ("Z", "R", "F", "ref_atom_E", "atom_E")
    nmax = max(np.shape(d[k])[1] for d in (a, b) for k in per_atom if k in d)

    def pad(x, k):
        x = np.asarray(x)
        if k in per_atom:
            widths = [(0, 0), (0, nmax - x.shape[1])] + [(0, 0)] * (x.ndim - 2)
            return np.pad(x, widths)
        return x

    return {k: np.concatenate([pad(a[k], k), pad(b[k], k)]) for k in a if k in b}


def synthesize(teacher_paths, dataset_path, split_path, labels_path, cfg: dict, out_dir, tolerance: float,
               device="auto", reference: str | None = None) -> dict:
    """Generate and label the synthetic configurations; write the training set of ``student_synthetic``
    (``dataset.npz``, ``split.npz``, ``atom_energies.npz`` and ``synthetic.json`` in ``out_dir``).
    ``reference``: the data's reference potential (``emt``), to record the teacher labels' error on them."""
    from .core.elements import resolve_element

    from .provenance import check_inputs, check_model_data

    for p in teacher_paths:
        check_model_data(p, dataset_path, split_path)
    check_inputs({"dataset": dataset_path, "split": split_path, "labels": labels_path})
    dev = resolve_device(device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_dataset(dataset_path)
    split = load_split(split_path, len(data["E"]))
    labels = load_labels(labels_path, data)
    with np.load(labels_path) as z:
        E_label = z["E_teacher"]
    species = sorted(int(z) for z in np.unique(data["Z"]) if z != 0)
    element = resolve_element(cfg.get("element"), species, "synthetic.element", "the dataset")
    log(f"{cfg['n_configs']} configurations of {element} from {len(teacher_paths)} teacher(s) on "
        f"{device_description(dev)}")
    t0 = time.perf_counter()
    frames, records = generate(teacher_paths, element, cfg, dev)
    if len(frames) < int(cfg["n_configs"]) / 2:
        raise SyntheticError(f"only {len(frames)} of {cfg['n_configs']} synthetic configurations survived the teacher's "
                             f"MD (close contacts or blow-ups: {records}); lower the temperatures of synthetic.states")
    configs = [{"Z": f.numbers, "R": f.positions, "cell": np.array(f.cell), "E": 0.0,
                "F": np.zeros((len(f), 3)), "T_K": f.info["T_K"]} for f in frames]
    syn = pad_configurations(configs)
    lab = ensemble_predictions(teacher_paths, syn, dev, tag="synthesize")
    syn["E"], syn["F"] = lab["E"], lab["F"]
    check_sums(lab["atom_E"], lab["E"], syn["Z"], tolerance, "synthetic configurations (teacher labels)")
    vs_reference = label_error(frames, lab, reference) if reference else None

    n_gt, n_syn = len(data["E"]), len(syn["E"])
    merged = concatenate(data, syn)
    merged_split = {"train": np.concatenate([split["train"], n_gt + np.arange(n_syn)]),
                    "valid": split["valid"], "test": split["test"]}
    merged_labels = concatenate({"atom_E": labels, "E": E_label}, {"atom_E": lab["atom_E"], "E": lab["E"]})
    info = {"element": element, "teachers": [str(p) for p in teacher_paths], "n_ground_truth": n_gt,
            "n_synthetic": n_syn, "synthetic_indices": [n_gt, n_gt + n_syn], "trajectories": records,
            "teacher_spread": lab["spread"], "labels_vs_reference": vs_reference, "settings": cfg, "device": device_description(dev),
            "wall_time_s": time.perf_counter() - t0,
            "split_sizes": [len(merged_split[s]) for s in SPLITS],
            "synthetic_energy_per_atom_eV": {
                "mean": float(np.mean(lab["E"] / syn["n_atoms"])), "min": float(np.min(lab["E"] / syn["n_atoms"])),
                "max": float(np.max(lab["E"] / syn["n_atoms"]))}}
    recs = write_training_set(out_dir, merged, merged_split, merged_labels, tolerance, cfg, {
        "teachers": list(teacher_paths), "ground_truth_dataset": dataset_path, "ground_truth_split": split_path,
        "ground_truth_labels": labels_path}, {k: info[k] for k in ("n_ground_truth", "n_synthetic",
                                                                   "synthetic_indices", "teachers")})
    SyntheticInfo(**info).with_provenance(recs["dataset"]).write(out_dir / "synthetic.json", indent=2)
    log(f"{n_syn} synthetic + {n_gt} ground-truth configurations; training split {len(split['train'])} -> "
        f"{len(merged_split['train'])}; teacher spread {lab['spread']}; labels vs the reference {vs_reference}; "
        f"{info['wall_time_s']:.0f} s")
    return info


def write_training_set(out_dir: Path, dataset: dict, split: dict, labels: dict, tolerance: float, cfg: dict,
                       made_from: dict, summary: dict) -> dict:
    """Write the training set of ``student_synthetic`` (``dataset.npz``, ``split.npz``, ``atom_energies.npz``), each
    with its provenance record: the dataset records what it was made from (``made_from``: the teachers and the
    ground truth's dataset, split and labels, under roles of their own), the split records that dataset and the
    labels both, by content, so a student given a synthetic split or labels of another run is refused naming both
    fingerprints (:func:`tsmlip.provenance.check_inputs`). Returns the records by file."""
    from .provenance import npz_arrays, record

    recs = {"dataset": record("synthesize", cfg, made_from)}
    save_dataset(dataset, out_dir / "dataset.npz", {"source": "ground truth + teacher-generated",
                                                    "synthetic": summary}, recs["dataset"])
    recs["split"] = record("synthesize", cfg, {**made_from, "dataset": out_dir / "dataset.npz"})
    with atomic_open(out_dir / "split.npz", "wb") as fh:
        np.savez(fh, **split, **npz_arrays(recs["split"]))
    recs["labels"] = record("synthesize", cfg, {**made_from, "dataset": out_dir / "dataset.npz",
                                                "split": out_dir / "split.npz"})
    with atomic_open(out_dir / "atom_energies.npz", "wb") as fh:
        np.savez_compressed(fh, atom_E=labels["atom_E"], E_teacher=labels["E"], sum_tolerance_eV=tolerance,
                            **npz_arrays(recs["labels"]))
    return recs


#: the config keys ``tsmlip synthesize`` reads
def main(argv=None) -> int:
    from .cli import step_parser

    p = step_parser("synthesize", __doc__ + "\n\nThe MD runs on rdf.device; where the data have a reference "
                    "potential (data.source emt, no foundation.calculator) the teacher labels' error on the synthetic "
                    "configurations is recorded.")
    p.add_argument("--teacher", nargs="+", required=True, help="teacher model.pt file(s)")
    p.add_argument("--teacher-ids", nargs="+", required=True, help="ids of those teachers, same order")
    p.add_argument("--dataset", required=True)
    p.add_argument("--split", required=True)
    p.add_argument("--labels", required=True, help="the teacher's atom-energy labels of the dataset")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out-dir", required=True)
    a = p.parse_args(argv)
    import torch

    from .config import reference_potential

    c = a.config_json
    # the synthetic: section with the two limits it borrows (recorded as the run's settings)
    settings = dict(c["synthetic"], min_distance_A=c["data"]["min_distance_A"],
                    blowup_temperature_K=c["rdf"]["blowup_temperature_K"])

    check_teachers(p, a.teacher, a.teacher_ids)
    torch.set_num_threads(a.threads)
    try:
        synthesize(a.teacher, a.dataset, a.split, a.labels, settings, a.out_dir, c["labels"]["sum_tolerance_eV"],
                   c["rdf"]["device"], reference_potential(c))
    except (SyntheticError, ValueError) as e:
        print(f"tsmlip synthesize: error: {e}", file=sys.stderr)
        return 1
    return 0
