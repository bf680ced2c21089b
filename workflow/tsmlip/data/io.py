"""User-supplied data: the real ANI-Al HDF5 files (pyanitools layout) and extended-XYZ files.

Both are converted to the workflow's dataset.npz (eV, Angstrom) and validated on load: missing keys,
shape mismatches, NaN/inf, unknown species, empty sets and forces of the wrong sign each give one clear
error naming the file and the problem; atoms closer than ``data.min_distance_A`` stop the import, or are
dropped or kept and listed in the provenance (``data.close_contacts``).

Force convention (``data.forces_are``): the ANI-Al files store the energy *gradient* +dE/dR under
``force`` (hippynn's ``examples/ani_aluminum_example.py`` and the paper authors' distillation script fit
that array with ``GradientNode(..., sign=+1)``), so by default it is negated on load for ``ani_h5``;
extended-XYZ forces are forces (ASE's convention). See docs/data.md.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .dataset import (CLOSE_CONTACT_POLICIES, DUPLICATE_POLICIES, DUPLICATE_TOL_A, FORCE_CONVENTIONS, DataError,
                      duplicates_message, find_duplicates, pad_configurations, save_dataset, select_configurations,
                      validate_arrays, versions)
from .plausibility import plausibility

ANI_KEYS = ("coordinates", "species", "cell", "energy", "force")
#: the HDF5 file names read from an ANI-Al folder
ANI_SUFFIXES = (".h5", ".hdf5")


def source_files(source: str, path: str | Path | None) -> list[Path]:
    """The files a data source reads, sorted: every ``*.h5`` / ``*.hdf5`` below an ``ani_h5`` folder (or the
    one file named), the extended-XYZ file itself; none for ``emt``. The data rule lists them as its input
    and their checksums in its params, so an edit or a swap of any of them reruns the data stage."""
    if source == "emt" or not path:
        return []
    path = Path(path)
    if source == "ani_h5" and path.is_dir():
        return sorted(f for f in path.rglob("*") if f.suffix.lower() in ANI_SUFFIXES and f.is_file())
    return [path]


def source_checksums(source: str, path: str | Path | None) -> list[dict]:
    """``[{"path", "sha256", "bytes"}]`` of every source file (:func:`source_files`; paths relative to an
    ``ani_h5`` folder, else the file's name); a missing file has ``sha256`` None."""
    from ..io_utils import sha256_file

    out = []
    for f in source_files(source, path):
        rel = f.relative_to(path).as_posix() if Path(path).is_dir() else f.name
        ok = f.is_file()
        out.append({"path": rel, "sha256": sha256_file(f) if ok else None, "bytes": f.stat().st_size if ok else None})
    return out


def _species_numbers(raw, source: str) -> np.ndarray:
    from ase.data import atomic_numbers

    raw = np.asarray(raw)
    if raw.dtype.kind in "iu":
        if (raw <= 0).any():
            raise DataError(f"{source}: species number {int(raw[raw <= 0][0])} is not a chemical element "
                            f"(0 is the dataset's padding)")
        return raw.astype(np.int64)
    out = []
    for s in raw.reshape(-1):
        sym = s.decode() if isinstance(s, bytes) else str(s)
        if sym not in atomic_numbers:
            raise DataError(f"{source}: unknown species {sym!r}")
        if atomic_numbers[sym] == 0:
            raise DataError(f"{source}: species {sym!r} is not a chemical element (ASE reads it as atomic "
                            f"number 0, the dataset's padding: the atom would vanish while the energy counts it)")
        out.append(atomic_numbers[sym])
    return np.array(out, dtype=np.int64).reshape(raw.shape)


#: default convention of the stored force array per source (docs/data.md)
DEFAULT_FORCES_ARE = {"ani_h5": "gradients", "extxyz": "forces", "emt": "forces"}
#: default close-contact policy per source (docs/data.md)
DEFAULT_CLOSE_CONTACTS = {"ani_h5": "keep", "extxyz": "error", "emt": "error"}


def resolve_source_defaults(source: str, forces_are: str | None = None, close_contacts: str | None = None
                            ) -> tuple[str, str, str, str]:
    """``(forces_are, how_chosen, close_contacts, how_chosen)``: the given settings, or the source's
    defaults when None (how_chosen: ``config`` or ``default for <source>``)."""
    if source not in DEFAULT_FORCES_ARE:
        raise DataError(f"unknown data source {source!r}")
    fa = (forces_are, "config") if forces_are else (DEFAULT_FORCES_ARE[source], f"default for {source}")
    cc = (close_contacts, "config") if close_contacts else (DEFAULT_CLOSE_CONTACTS[source], f"default for {source}")
    if fa[0] not in FORCE_CONVENTIONS:
        raise DataError(f"data.forces_are must be one of {FORCE_CONVENTIONS}, not {fa[0]!r}")
    if cc[0] not in CLOSE_CONTACT_POLICIES:
        raise DataError(f"data.close_contacts must be one of {CLOSE_CONTACT_POLICIES}, not {cc[0]!r}")
    return fa[0], fa[1], cc[0], cc[1]


def read_ani_h5(directory: str | Path, energy_shift_eV_per_atom: float, forces_are: str = "gradients") -> list[dict]:
    """Every ``*.h5`` and ``*.hdf5`` below ``directory`` in the pyanitools layout: groups holding ``coordinates``
    (n, N, 3), ``species`` (N,), ``cell`` (n, 3, 3), ``energy`` (n,) Hartree, ``force`` (n, N, 3)
    Hartree/Angstrom. Energies and forces are converted to eV and eV/Angstrom, and
    ``energy_shift_eV_per_atom`` x N is added to energies (as hippynn's ANI-Al example does).
    ``forces_are``: what the ``force`` array holds; ``gradients`` (+dE/dR, the ANI-Al files) are negated
    into forces."""
    from ase import units

    directory = Path(directory)
    files = source_files("ani_h5", directory)
    if not files or not files[0].exists():
        raise DataError(f"{directory}: no .h5 / .hdf5 files found")
    hartree = units.Hartree / units.eV
    sign = _force_sign(forces_are)
    configs: list[dict] = []
    for f in files:
        try:
            configs += _read_one_h5(f, energy_shift_eV_per_atom, sign, hartree)
        except (OSError, KeyError, RuntimeError) as e:  # not HDF5, truncated, a damaged dataset inside
            raise DataError(f"{f}: cannot be read as HDF5 ({_first_line(e)}); the file is damaged, truncated "
                            f"or not an HDF5 file: replace or remove it") from None
    if not configs:
        raise DataError(f"{directory}: the dataset is empty")
    return configs


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _read_one_h5(f: Path, energy_shift_eV_per_atom: float, sign: float, hartree: float) -> list[dict]:
    import h5py

    configs: list[dict] = []
    groups = []
    with h5py.File(f, "r") as h5:
        h5.visititems(lambda name, obj: groups.append(name)
                      if isinstance(obj, h5py.Group) and ("coordinates" in obj or "energy" in obj) else None)
        if not groups:
            raise DataError(f"{f}: no group with 'coordinates'/'energy' (not a pyanitools file?)")
        for g in groups:
            grp = h5[g]
            src = f"{f}:{g}"
            missing = [k for k in ANI_KEYS if k not in grp]
            if missing:
                raise DataError(f"{src}: missing keys {missing} (need {list(ANI_KEYS)})")
            R, E, F, cell = (np.asarray(grp[k][()], dtype=float) for k in ("coordinates", "energy", "force", "cell"))
            Z = _species_numbers(grp["species"][()], src)
            if R.ndim != 3 or R.shape[1:] != (len(Z), 3):
                raise DataError(f"{src}: coordinates have shape {R.shape}, expected (n, {len(Z)}, 3)")
            n = len(R)
            if E.shape != (n,) or F.shape != R.shape or cell.shape != (n, 3, 3):
                raise DataError(f"{src}: shape mismatch: coordinates {R.shape}, energy {E.shape}, "
                                f"force {F.shape}, cell {cell.shape}")
            for i in range(n):
                configs.append({"Z": Z, "R": R[i], "cell": cell[i],
                                "E": E[i] * hartree + energy_shift_eV_per_atom * len(Z),
                                "F": sign * F[i] * hartree, "where": f"{src}[{i}]"})
    return configs


def _force_sign(forces_are: str) -> float:
    if forces_are not in FORCE_CONVENTIONS:
        raise DataError(f"data.forces_are must be one of {FORCE_CONVENTIONS}, not {forces_are!r}")
    return 1.0 if forces_are == "forces" else -1.0


def read_extxyz(path: str | Path, forces_are: str = "forces") -> list[dict]:
    """An extended-XYZ file (energy and forces in eV, eV/Angstrom), read with ASE. ``forces_are``: what
    the file's force column holds (``gradients`` are negated into forces)."""
    import ase.io

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    try:
        frames = ase.io.read(path, index=":", format="extxyz")
    except Exception as e:  # ASE raises many types on malformed files
        raise DataError(f"{path}: cannot be read as extended XYZ ({type(e).__name__}: {e})") from e
    if not frames:
        raise DataError(f"{path}: the dataset is empty")
    sign = _force_sign(forces_are)
    configs = []
    for i, at in enumerate(frames):
        for what, arr in (("positions", at.positions), ("cell", at.cell.array)):
            if not np.isfinite(arr).all():
                row = int(np.argwhere(~np.isfinite(arr))[0][0])
                raise DataError(f"{path}: frame {i}: its {what} hold NaN/inf values"
                                + (f" (atom {row})" if what == "positions" else ""))
        try:
            E = at.get_potential_energy()
            F = at.get_forces()
        except Exception as e:
            raise DataError(f"{path}: frame {i} has no energy/forces ({e})") from e
        if not at.pbc.all() or at.cell.rank < 3:
            raise DataError(f"{path}: frame {i} is not periodic in 3D (the workflow needs periodic cells)")
        if (at.numbers <= 0).any():
            bad = int(np.argmax(at.numbers <= 0))
            raise DataError(f"{path}: frame {i} atom {bad} has species {at.get_chemical_symbols()[bad]!r}, not a "
                            f"chemical element (ASE reads it as atomic number 0, the dataset's padding: the atom "
                            f"would vanish while the energy still counts it)")
        c = {"Z": at.numbers.copy(), "R": at.positions.copy(), "cell": at.cell.array.copy(), "E": float(E),
             "F": sign * F, "where": f"{path} frame {i}"}
        atom_E = per_atom_energies(at)
        if atom_E is not None:
            c["ref_atom_E"] = atom_E
        configs.append(c)
    return configs


def per_atom_energies(atoms) -> np.ndarray | None:
    """The reference's per-atom energies of an extended-XYZ frame (an ``energies`` column), or None. ASE's
    reader puts a calculator's per-atom properties into ``atoms.calc.results``, other columns into
    ``atoms.arrays``."""
    results = atoms.calc.results if atoms.calc is not None else {}
    for where in (results, atoms.arrays):
        if "energies" in where:
            return np.asarray(where["energies"], dtype=float).copy()
    return None


def check_single_element(arrays: dict, source: str, required_by: list[str] | None) -> None:
    """Stop a multi-element dataset early when stages that simulate one element (MD cost, RDF) will run
    with their element left to the data (``required_by``: those config keys, e.g. ``md.element``)."""
    from ase.data import chemical_symbols

    species = sorted(int(z) for z in np.unique(arrays["Z"]) if z != 0)
    if len(species) > 1 and required_by:
        names = ", ".join(chemical_symbols[z] for z in species)
        raise DataError(
            f"{source}: the data hold {len(species)} elements ({names}); the MD cost and RDF stages simulate "
            f"single-element systems only and take their element from single-element data. Set "
            f"{' and '.join(required_by)} to one of {names} (a pure crystal / liquid of that element with the "
            f"multi-element model), or turn the stage off (md.enabled: false); training alone works on "
            f"multi-element data")


def prepare(source: str, path: str, min_distance_A: float, energy_shift: float = 0.0,
            forces_are: str | None = None, close_contacts: str | None = None,
            single_element_for: list[str] | None = None, duplicates: str = "error",
            checks: bool = True) -> tuple[dict, dict]:
    """Read, convert and validate ``path``; returns ``(arrays, provenance)``.

    ``forces_are`` / ``close_contacts`` None: the source's defaults (:data:`DEFAULT_FORCES_ARE`,
    :data:`DEFAULT_CLOSE_CONTACTS`). ``duplicates``: ``error`` stops at a configuration that repeats another
    (exactly or within :data:`~tsmlip.data.dataset.DUPLICATE_TOL_A`), ``drop`` drops the later copies before
    the split (so twins never straddle splits). ``checks``: the plausibility ranges of the energy per atom and
    the mean force per element (:func:`~tsmlip.data.plausibility.plausibility`; off for exotic data). The
    provenance records the source files' sha256, the convention, the close contacts (count, indices as read,
    the policy), the duplicates, the plausibility numbers and the force-sign check.
    """
    forces_are, fa_how, close_contacts, cc_how = resolve_source_defaults(source, forces_are, close_contacts)
    if source == "ani_h5":
        configs = read_ani_h5(path, energy_shift, forces_are)
    elif source == "extxyz":
        configs = read_extxyz(path, forces_are)
    else:
        raise DataError(f"unknown data source {source!r}")
    arrays = pad_configurations(configs)
    where = [c.get("where") for c in configs]
    report = validate_arrays(arrays, str(path), min_distance_A, close_contacts=close_contacts,
                             forces_are=forces_are, where=where, element_lengths=checks)
    close = report["close_contacts"]
    n_read = len(arrays["E"])
    plausible = plausibility(arrays, str(path), source, energy_shift, check=checks, where=where,
                             min_dist=report["min_dist"], close=[c["index"] for c in close])
    if duplicates not in DUPLICATE_POLICIES:
        raise DataError(f"data.duplicates must be one of {DUPLICATE_POLICIES}, not {duplicates!r}")
    dups = find_duplicates(arrays)
    if dups and duplicates == "error":
        raise DataError(duplicates_message(str(path), dups, where))
    dropped = {j for j, _ in dups}
    if close and close_contacts == "drop":
        dropped |= {c["index"] for c in close}
    if dropped:
        if len(dropped) == n_read:
            raise DataError(f"{path}: every configuration has atoms closer than data.min_distance_A = "
                            f"{min_distance_A} A or repeats another; nothing left after data.close_contacts / "
                            f"data.duplicates: drop")
        arrays = select_configurations(arrays, [i for i in range(n_read) if i not in dropped])
    check_single_element(arrays, str(path), single_element_for)
    provenance = {
        "sources": source_checksums(source, path),
        "forces_are": forces_are,
        "forces_are_chosen_by": fa_how,
        "force_sign_applied_on_load": -1 if forces_are == "gradients" else 1,
        "force_sign_check": report["force_sign"],
        "close_contacts": {
            "policy": close_contacts,
            "policy_chosen_by": cc_how,
            "min_distance_A": min_distance_A,
            "n_configs_read": n_read,
            "count": len(close),
            "indices": [c["index"] for c in close],
            "dropped": close_contacts == "drop" and bool(close),
            "configurations": close,
        },
        "duplicates": {
            "policy": duplicates,
            "tolerance_A": DUPLICATE_TOL_A,
            "count": len(dups),
            "dropped": [j for j, _ in dups],
            "pairs": [{"index": j, "repeats": i} for j, i in dups],
        },
        "plausibility": plausible,
    }
    return arrays, provenance


def main(argv=None) -> int:
    from ..cli import step_parser

    p = step_parser("prepare-dataset", __doc__ + "\n\nnull data.forces_are / data.close_contacts: the source's "
                    "default. md.element / rdf.element given as null (the stage\ntakes the data's element): a "
                    "multi-element dataset stops here.")
    p.add_argument("--path", required=True, help="the source file or folder (data.path)")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    d = a.config_json["data"]
    single_element_for = [f"{sec}.element" for sec in ("md", "rdf")
                          if sec in a.config_json and a.config_json[sec]["element"] is None]
    try:
        arrays, prov = prepare(d["source"], a.path, d["min_distance_A"], d["ani_energy_shift_eV_per_atom"],
                               d["forces_are"], d["close_contacts"], single_element_for, d["duplicates"], d["checks"])
    except DataError as e:
        print(f"tsmlip prepare-dataset: error: {e}", file=sys.stderr)
        return 1
    shift = d["ani_energy_shift_eV_per_atom"]
    from ..provenance import record

    save_dataset(arrays, a.out, {"source": d["source"], "path": str(Path(a.path).resolve()),
                                 "ani_energy_shift_eV_per_atom": shift if d["source"] == "ani_h5" else None,
                                 **prov, "versions": versions()},
                 record("prepare-dataset", a.config_json, {"sources": [str(f) for f in source_files(d["source"], a.path)]}))
    cc, fs = prov["close_contacts"], prov["force_sign_check"]
    print(f"[prepare] forces_are={prov['forces_are']} ({prov['forces_are_chosen_by']}); force-sign check: "
          f"{fs['verdict']} (closest pairs repel in {fs['n_repel']}, attract in {fs['n_attract']} configurations)",
          file=sys.stderr)
    if fs["verdict"] != "repel":
        print("[prepare] WARNING: the force-sign check is inconclusive (too few configurations, or forces "
              "unrelated to the geometry); check data.forces_are by hand", file=sys.stderr)
    if cc["count"]:
        print(f"[prepare] {cc['count']} of {cc['n_configs_read']} configurations have atoms closer than "
              f"{cc['min_distance_A']} A: {'dropped' if cc['dropped'] else 'kept'} "
              f"(data.close_contacts: {cc['policy']}); indices in provenance.json", file=sys.stderr)
    dup = prov["duplicates"]
    if dup["count"]:
        print(f"[prepare] WARNING: {dup['count']} configurations repeat another (within {dup['tolerance_A']} A): "
              f"dropped (data.duplicates: drop); indices in provenance.json", file=sys.stderr)
    if not prov["plausibility"]["checked"]:
        print("[prepare] WARNING: plausibility checks of energies and forces are off (data.checks: false)",
              file=sys.stderr)
    print(f"[prepare] wrote {len(arrays['E'])} configurations to {a.out}", file=sys.stderr)
    return 0
