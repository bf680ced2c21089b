"""A calculator as the teacher: any ASE calculator with per-atom energies labels the dataset (docs/foundation.md).

``foundation.calculator`` names it: the shortcut ``chgnet`` (the pretrained weights shipped inside the
``chgnet`` wheel, ``CHGNet.load()``; CPU or CUDA), ``emt`` (ASE's EMT), or the generic form
``{factory: "package.module:callable", kwargs: {...}}`` for any ASE calculator (optional keys ``name``,
``weights``: a file whose sha256 goes into provenance, and ``supported_elements``: symbols checked before
any calculation).

``tsmlip label-calculator`` relabels every configuration of the dataset (its geometries only) with the
calculator's energies, forces and per-atom energies, and writes

* the relabelled dataset (``E``, ``F`` and ``ref_atom_E`` are the calculator's; everything else as read),
  with ``provenance.json`` beside it (the calculator, its package version and the weights file's sha256);
* the atom-energy labels the students read, in the layout of :mod:`tsmlip.label` (``atom_E``,
  ``E_teacher``, ``sum_tolerance_eV``), and their ``.json`` summary.

Labelling goes in chunks of ``chunk_size`` configurations, each written atomically to a scratch folder
(fingerprinted by the dataset's and the calculator's identity) so that a killed job resumes where it
stopped; the final files appear only when every chunk is done and checked.

Refusals (:class:`CalculatorError`, one line naming the calculator and the cause, before any output file):
a factory that cannot be imported or called, an element the calculator does not support, no per-atom
energies, per-atom energies that do not sum to the total energy within the tolerance, and non-finite labels.
"""
from __future__ import annotations

import importlib
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from .io_utils import atomic_open, atomic_write_json, sha256_file
from .json_record import PROVENANCE_KEY
from .records import AtomEnergies, DatasetProvenance
from .label import LabelError, check_sums

#: shortcut names of ``foundation.calculator``
SHORTCUTS = ("chgnet", "emt")
#: the pretrained CHGNet model the shortcut loads (the weights shipped in chgnet 0.4.2)
CHGNET_MODEL = "0.3.0"
#: CHGNet's composition model covers atomic numbers 1..94
CHGNET_MAX_Z = 94


class CalculatorError(LabelError):
    """A calculator that cannot label the dataset; the message starts with ``calculator '<name>':``."""


def spec_name(spec) -> str:
    """The calculator's display name: the shortcut, the spec's ``name``, or its factory path."""
    if spec is None:
        return "none"
    if isinstance(spec, str):
        return spec
    return str(spec.get("name") or spec.get("factory") or "calculator")


def normalize_spec(spec) -> dict:
    """``foundation.calculator`` as a dict: ``{"name", "factory" | None, "kwargs", "weights",
    "supported_elements"}``. A plain ``"module:callable"`` string is the factory form without kwargs."""
    if isinstance(spec, str):
        if spec in SHORTCUTS:
            return {"name": spec, "factory": None, "kwargs": {}, "weights": None, "supported_elements": None}
        if ":" in spec:
            return normalize_spec({"factory": spec})
        raise CalculatorError(f"calculator {spec!r}: unknown shortcut (one of {', '.join(SHORTCUTS)}, or "
                              "{factory: 'package.module:callable', kwargs: {...}})")
    if isinstance(spec, dict) and spec.get("factory") is None and spec.get("name") in SHORTCUTS:
        return normalize_spec(spec["name"])  # already normalized
    if not isinstance(spec, dict) or "factory" not in spec:
        raise CalculatorError(f"calculator {spec!r}: expected a shortcut ({', '.join(SHORTCUTS)}) or a mapping "
                              "with a 'factory' key")
    factory = str(spec["factory"])
    if factory.count(":") != 1 or not all(factory.split(":")):
        raise CalculatorError(f"calculator '{spec_name(spec)}': factory {factory!r} is not of the form "
                              "'package.module:callable'")
    return {"name": spec_name(spec), "factory": factory, "kwargs": dict(spec.get("kwargs") or {}),
            "weights": spec.get("weights"), "supported_elements": spec.get("supported_elements")}


def check_importable(spec) -> None:
    """Raise :class:`CalculatorError` when the calculator's package or factory module cannot be found
    (cheap: no import of the module itself, only of its parent packages)."""
    import importlib.util

    s = normalize_spec(spec)
    module = {"chgnet": "chgnet", "emt": "ase.calculators.emt"}.get(s["name"]) if s["factory"] is None \
        else s["factory"].split(":")[0]
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError) as exc:
        found, why = False, f"{type(exc).__name__}: {exc}"
    else:
        why = f"no module named {module!r}"
    if not found:
        hint = " (pip install -e '.[foundation]' installs chgnet==0.4.2)" if s["name"] == "chgnet" else ""
        raise CalculatorError(f"calculator '{s['name']}': cannot import {module!r}: {why}{hint}")


def _package_version(module_name: str) -> str | None:
    from importlib import metadata

    top = module_name.split(".")[0]
    try:
        dists = metadata.packages_distributions().get(top) or [top]
        return metadata.version(dists[0])
    except Exception:
        mod = sys.modules.get(top)
        return getattr(mod, "__version__", None)


def _resolve_device(device: str) -> str:
    if device in (None, "auto"):
        try:
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:
            return "cpu"
    return str(device)


def make_calculator(spec, device: str = "cpu"):
    """``(calculator, info)`` for ``spec``; ``info`` is the provenance record: name, factory, kwargs,
    package and version, weights file and its sha256, supported elements (symbols, or None where the
    calculator does not say), device."""
    s = normalize_spec(spec)
    name, dev = s["name"], _resolve_device(device)
    info = {"name": name, "factory": s["factory"], "kwargs": s["kwargs"], "device": dev,
            "weights_file": None, "weights_sha256": None}
    if s["factory"] is None and name == "chgnet":
        check_importable(s)
        try:
            import chgnet
            from chgnet.model import CHGNet
            from chgnet.model.dynamics import CHGNetCalculator
        except Exception as exc:
            raise CalculatorError(f"calculator 'chgnet': cannot import chgnet: {type(exc).__name__}: {exc}") from None
        model = CHGNet.load(model_name=CHGNET_MODEL, use_device=dev, verbose=False)
        calc = CHGNetCalculator(model, use_device=dev, return_site_energies=True)
        weights = sorted((Path(chgnet.__file__).parent / "pretrained" / CHGNET_MODEL).glob("*.pth.tar"))
        from ase.data import chemical_symbols

        info.update(package="chgnet", version=_package_version("chgnet"), model=f"CHGNet {CHGNET_MODEL}",
                    n_parameters=int(sum(p.numel() for p in model.parameters())),
                    supported_elements=chemical_symbols[1:CHGNET_MAX_Z + 1],
                    factory="chgnet.model.dynamics:CHGNetCalculator",
                    kwargs={"model": f"CHGNet.load(model_name={CHGNET_MODEL!r})", "use_device": dev,
                            "return_site_energies": True})
        if weights:
            info.update(weights_file=f"chgnet/pretrained/{CHGNET_MODEL}/{weights[0].name}",
                        weights_sha256=sha256_file(weights[0]))
        return calc, info
    if s["factory"] is None and name == "emt":
        from ase.calculators.emt import EMT, parameters

        info.update(package="ase", version=_package_version("ase"), factory="ase.calculators.emt:EMT",
                    supported_elements=sorted(parameters))
        return EMT(), info
    module_name, attr = s["factory"].split(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise CalculatorError(f"calculator '{name}': cannot import {module_name!r}: "
                              f"{type(exc).__name__}: {exc}") from None
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise CalculatorError(f"calculator '{name}': {module_name!r} has no callable {attr!r}")
    try:
        calc = factory(**s["kwargs"])
    except Exception as exc:
        raise CalculatorError(f"calculator '{name}': {s['factory']}(**{s['kwargs']}) failed: "
                              f"{type(exc).__name__}: {exc}") from None
    supported = s["supported_elements"] or getattr(calc, "supported_elements", None)
    if supported is None and module_name == "ase.calculators.emt":
        from ase.calculators.emt import parameters

        supported = sorted(parameters)
    info.update(package=module_name.split(".")[0], version=_package_version(module_name),
                supported_elements=sorted(_symbols(supported)) if supported is not None else None)
    if s["weights"]:
        info.update(weights_file=str(s["weights"]), weights_sha256=sha256_file(s["weights"]))
    return calc, info


def _symbols(elements) -> set[str]:
    from ase.data import chemical_symbols

    return {chemical_symbols[e] if isinstance(e, (int, np.integer)) else str(e) for e in elements}


def check_elements(info: dict, species) -> None:
    """Refuse species the calculator does not support (where it says which it does)."""
    from ase.data import chemical_symbols

    if info.get("supported_elements") is None:
        return
    have = {chemical_symbols[int(z)] for z in species if int(z) != 0}
    missing = sorted(have - set(info["supported_elements"]))
    if missing:
        raise CalculatorError(f"calculator '{info['name']}': does not support element(s) {', '.join(missing)} "
                              f"of the dataset (it supports {len(info['supported_elements'])} elements)")


def label_one(calc, atoms, name: str, index: int, tolerance: float | None = None):
    """``(E, F, eps)`` of one configuration; any failure of the calculator, non-finite labels or per-atom
    energies that miss the total by more than ``tolerance`` (eV) are a :class:`CalculatorError`."""
    atoms.calc = calc
    where = f"configuration {index} ({atoms.get_chemical_formula()})"
    try:
        energy = float(atoms.get_potential_energy())
        forces = np.asarray(atoms.get_forces(), dtype=float)
    except Exception as exc:
        raise CalculatorError(f"calculator '{name}': failed on {where}: {type(exc).__name__}: {exc}") from None
    try:
        eps = atoms.get_potential_energies()
    except Exception as exc:
        raise CalculatorError(f"calculator '{name}': gives no per-atom energies ({type(exc).__name__}: {exc}); "
                              "the students learn per-atom energies, so a teacher calculator must implement "
                              "'energies' (atoms.get_potential_energies())") from None
    if eps is None:
        raise CalculatorError(f"calculator '{name}': gives no per-atom energies (get_potential_energies() "
                              "returned None)")
    eps = np.asarray(eps, dtype=float)
    if eps.shape != (len(atoms),) or forces.shape != (len(atoms), 3):
        raise CalculatorError(f"calculator '{name}': {where}: per-atom energies of shape {eps.shape} / forces "
                              f"of shape {forces.shape} for {len(atoms)} atoms")
    if not (np.isfinite(energy) and np.isfinite(forces).all() and np.isfinite(eps).all()):
        raise CalculatorError(f"calculator '{name}': non-finite labels (NaN/inf energy, forces or per-atom "
                              f"energies) on {where}")
    if tolerance is not None and abs(eps.sum() - energy) > tolerance:
        raise CalculatorError(f"calculator '{name}': per-atom energies do not sum to the total energy on {where}: "
                              f"per-atom energies sum to {eps.sum():.6f} eV, the total is {energy:.6f} eV "
                              f"(|diff| {abs(eps.sum() - energy):.2e} > tolerance {tolerance:.1e} eV)")
    return energy, forces, eps


def _atoms_of(arrays: dict, i: int):
    from ase import Atoms

    k = int((arrays["Z"][i] != 0).sum())
    return Atoms(numbers=arrays["Z"][i, :k], positions=arrays["R"][i, :k], cell=arrays["cell"][i], pbc=True)


def label_arrays(calc, arrays: dict, name: str, tolerance: float, scratch: str | Path | None = None,
                 fingerprint: str = "", chunk_size: int = 16, log=None) -> dict:
    """Energies ``E`` (n,), forces ``F`` (n, N, 3) and per-atom energies ``atom_E`` (n, N) of every
    configuration of ``arrays`` (padded as the dataset), chunk by chunk. Each chunk is checked (finite,
    per-atom sums within ``tolerance``) before it is kept; with ``scratch``, kept chunks are written there
    atomically and reused by a later call with the same ``fingerprint``."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    Z = np.asarray(arrays["Z"])
    n, nmax = Z.shape
    chunk_size = max(1, int(chunk_size))
    scratch = Path(scratch) if scratch else None
    if scratch is not None:
        manifest = scratch / "manifest.json"
        if manifest.exists() and json.loads(manifest.read_text()).get("fingerprint") != fingerprint:
            log(f"[label-calculator] {scratch}: chunks of another dataset or calculator; starting afresh")
            shutil.rmtree(scratch)
        scratch.mkdir(parents=True, exist_ok=True)
        if not manifest.exists():
            atomic_write_json(manifest, {"fingerprint": fingerprint, "chunk_size": chunk_size, "n_configs": n})
        elif json.loads(manifest.read_text()).get("chunk_size") != chunk_size:
            shutil.rmtree(scratch)
            scratch.mkdir(parents=True)
            atomic_write_json(manifest, {"fingerprint": fingerprint, "chunk_size": chunk_size, "n_configs": n})
    E, F, A = np.zeros(n), np.zeros((n, nmax, 3)), np.zeros((n, nmax))
    t0, done_new, atoms_new, resumed = time.perf_counter(), 0, 0, 0
    for c0 in range(0, n, chunk_size):
        c1 = min(n, c0 + chunk_size)
        path = scratch / f"chunk_{c0:06d}_{c1:06d}.npz" if scratch is not None else None
        if path is not None and path.exists():
            with np.load(path) as z:
                E[c0:c1], F[c0:c1], A[c0:c1] = z["E"], z["F"], z["atom_E"]
            resumed += c1 - c0
            continue
        for i in range(c0, c1):
            atoms = _atoms_of(arrays, i)
            k = len(atoms)
            E[i], F[i, :k], A[i, :k] = label_one(calc, atoms, name, i, tolerance)
            atoms_new += k
        done_new += c1 - c0
        if path is not None:
            with atomic_open(path, "wb") as fh:
                np.savez(fh, E=E[c0:c1], F=F[c0:c1], atom_E=A[c0:c1])
        el = time.perf_counter() - t0
        rate = el / done_new
        left = n - c1
        log(f"[label-calculator] {name}: {c1}/{n} configurations"
            + (f" ({resumed} resumed from {scratch})" if resumed else "")
            + f", {el:.1f} s, {rate:.2f} s/config, {1e6 * el / max(atoms_new, 1):.0f} us/atom, ETA {left * rate:.0f} s")
    elapsed = time.perf_counter() - t0
    return {"E": E, "F": F, "atom_E": A, "wall_s": elapsed, "n_labelled": done_new, "n_resumed": resumed,
            "atoms_labelled": atoms_new}


def _fingerprint(dataset_path, info: dict) -> str:
    return json.dumps({"dataset_sha256": sha256_file(dataset_path),
                       **{k: info.get(k) for k in ("name", "factory", "kwargs", "version", "weights_sha256",
                                                   "device")}}, sort_keys=True, default=str)


def label_dataset(spec, dataset_path: str, out_dataset: str, out_labels: str, tolerance: float,
                  device: str = "cpu", chunk_size: int = 16, scratch: str | None = None, log=None) -> dict:
    """Relabel ``dataset_path`` with the calculator; write the relabelled dataset (+ provenance.json beside it)
    and the atom-energy labels (+ .json). Returns the labels' summary. Nothing is written on refusal."""
    from .data import load_dataset
    from .data.dataset import force_sign_summary, save_dataset, scan_configurations

    calc, info = make_calculator(spec, device)
    name = info["name"]
    arrays = load_dataset(dataset_path)
    species = sorted(int(z) for z in np.unique(arrays["Z"]) if z != 0)
    check_elements(info, species)
    res = label_arrays(calc, arrays, name, tolerance, scratch, _fingerprint(dataset_path, info), chunk_size, log)
    mask = arrays["Z"] != 0
    try:  # the chunks read back from scratch too
        max_dev = check_sums(res["atom_E"], res["E"], arrays["Z"], tolerance, f"calculator '{name}'")
    except LabelError as e:
        raise CalculatorError(str(e)) from None
    src_prov_path = Path(dataset_path).with_name("provenance.json")
    src_prov = DatasetProvenance.read(src_prov_path).to_json() if src_prov_path.exists() else {}
    out = dict(arrays)
    out.update(E=res["E"], F=np.where(mask[..., None], res["F"], 0.0), ref_atom_E=np.where(mask, res["atom_E"], 0.0))
    n_atoms = mask.sum(axis=1)
    e_diff = (res["E"] - arrays["E"]) / n_atoms
    sign = force_sign_summary(scan_configurations(out, 0.0)[1], out["F"])
    labelled_by = dict(info, wall_s=round(res["wall_s"], 3), configurations_labelled=res["n_labelled"],
                       configurations_resumed=res["n_resumed"],
                       s_per_config=round(res["wall_s"] / res["n_labelled"], 4) if res["n_labelled"] else None,
                       us_per_atom=round(1e6 * res["wall_s"] / res["atoms_labelled"], 1) if res["atoms_labelled"] else None,
                       chunk_size=int(chunk_size), sum_tolerance_eV=tolerance, max_sum_deviation_eV=max_dev)
    # the source's own provenance record stays in geometries_from: the relabelled file is another step's
    prov = {k: v for k, v in src_prov.items() if k not in ("force_sign_check", PROVENANCE_KEY)}
    prov.update({
        "labelled_by": labelled_by,
        "geometries_from": {"dataset": str(dataset_path), "source": src_prov.get("source"),
                            "provenance": src_prov or None},
        "source_labels_vs_calculator": {
            "energy_per_atom_mean_diff_eV": float(e_diff.mean()),
            "energy_per_atom_rmse_after_offset_eV": float(np.sqrt(np.mean((e_diff - e_diff.mean()) ** 2))),
            "force_rmse_eV_A": float(np.sqrt(np.mean((res["F"] - arrays["F"])[mask] ** 2)))},
        "force_sign_check": sign,
        "forces_are": "forces",
    })
    if sign["verdict"] == "attract":
        raise CalculatorError(f"calculator '{name}': its forces point the wrong way (closest pairs attract in "
                              f"{sign['n_attract']} configurations): it returns gradients, not forces")
    save_dataset(out, out_dataset, prov)
    with atomic_open(out_labels, "wb") as fh:
        np.savez_compressed(fh, atom_E=out["ref_atom_E"], E_teacher=res["E"], sum_tolerance_eV=tolerance)
    summary = AtomEnergies(
        teachers=[f"calculator:{name}"], choice="calculator", ensemble=None, calculator=labelled_by,
        n_configs=int(len(res["E"])), n_atoms=int(mask.sum()),
        max_sum_deviation_eV=max_dev, sum_tolerance_eV=tolerance,
        teacher_energy_rmse_eV=0.0,
        atom_energy_mean_eV=float(res["atom_E"][mask].mean()), atom_energy_std_eV=float(res["atom_E"][mask].std()),
        device=info["device"],
        # the calculator is the reference now: its atom energies agree with themselves
        vs_reference=None,
    ).write(Path(out_labels).with_suffix(".json"), indent=2)
    if scratch:
        shutil.rmtree(scratch, ignore_errors=True)
        try:  # its parent too, when nothing else is in it
            Path(scratch).parent.rmdir()
        except OSError:
            pass
    return summary


def main(argv=None) -> int:
    from .cli import step_parser

    p = step_parser("label-calculator", __doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True, help="dataset.npz whose geometries are labelled")
    p.add_argument("--scratch", default=None, help="folder for the resumable chunks (removed when complete)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out-dataset", required=True)
    p.add_argument("--out-labels", required=True)
    a = p.parse_args(argv)
    fc = a.config_json["foundation"]
    spec = fc["calculator"]
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    try:
        info = label_dataset(spec, a.dataset, a.out_dataset, a.out_labels,
                             a.config_json["labels"]["sum_tolerance_eV"], fc["device"], fc["chunk_size"], a.scratch)
    except LabelError as e:
        msg = str(e)
        if not msg.startswith("calculator "):
            msg = f"calculator '{spec_name(spec)}': {msg}"
        print(f"tsmlip label-calculator: error: {msg}", file=sys.stderr)
        return 1
    print(json.dumps(info, indent=2, default=str))
    return 0
