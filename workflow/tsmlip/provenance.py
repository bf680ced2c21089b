"""Provenance inside every output: what made a result file, recorded in the file itself.

A result's **fingerprint** is ``sha256(step, the settings the step read (its --config-json), the step's code stamp,
the fingerprints of its inputs)`` (16 hex digits), so it changes whenever anything upstream does. Its **record**::

    {"fingerprint": "...", "step": "split", "code": "<code stamp>", "settings": "<sha256 of the settings>",
     "inputs": {"dataset": {"file": "dataset.npz", "fingerprint": "...", "content": "..."}}}

``content`` is the input file's own content hash (:func:`content_fingerprint`): for an ``.npz`` a hash of its
arrays (not of the zip bytes, which hold time stamps), for a model of its weights and meta, else of its bytes. An
input's ``fingerprint`` is the one recorded inside it, or its content hash when it records none (user data).

Where the record lives (docs/outputs.md): ``.npz``: the array ``_provenance`` (a JSON string; readers skip keys
starting with ``_``); model files: ``meta["provenance"]``; JSON files: the top-level key ``_provenance``; CSV
tables: a sidecar ``<name>.csv.provenance.json``.

Consumers check their inputs with :func:`check_inputs`: an input whose record says it was made from another file
than the one given (another dataset, another split) is refused with one message naming both files and the
difference; a model file that records the dataset and split it was trained on is refused by
:func:`check_model_data` when they are not the ones given.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

#: the npz key / JSON key / CSV sidecar suffix that hold the record
NPZ_KEY = "_provenance"
JSON_KEY = "_provenance"
SIDECAR_SUFFIX = ".provenance.json"


class ProvenanceError(ValueError):
    """Inputs that do not belong together (one line naming the files and the difference)."""


def step_code_stamp(step: str) -> str:
    """The code stamp of ``step`` (a ``tsmlip`` sub-command): the hash of its import closure
    (:func:`tsmlip.stamps.code_stamp`)."""
    from .stamps import code_stamp

    return code_stamp(step)


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def settings_hash(settings) -> str:
    """The settings a step read (its --config-json object, or the JSON text), canonically hashed."""
    if isinstance(settings, str):
        settings = json.loads(settings)
    return _sha(settings)


def content_fingerprint(path) -> str:
    """The content hash of a file (see the module's doc): npz by arrays, a model by weights and meta, else bytes."""
    path = Path(path)
    h = hashlib.sha256()
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            for k in sorted(z.files):
                if k.startswith("_"):
                    continue
                a = z[k]
                h.update(k.encode() + str(a.dtype).encode() + str(a.shape).encode())
                h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def read_record(path) -> dict | None:
    """The provenance record inside ``path`` (None: the file records none, e.g. user data or an older file)."""
    path = Path(path)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                return json.loads(str(z[NPZ_KEY])) if NPZ_KEY in z.files else None
        if path.suffix == ".pt":
            return _model_meta(path).get("provenance")
        if path.suffix == ".json":
            return json.loads(path.read_text()).get(JSON_KEY)
        side = path.with_name(path.name + SIDECAR_SUFFIX)
        return json.loads(side.read_text()) if side.is_file() else None
    except (OSError, ValueError, KeyError, AttributeError):
        return None


def _model_meta(path) -> dict:
    """A model file's ``meta`` (read as tsmlip.core.model reads it, with ``weights_only=True``; this module stays below
    the model layer)."""
    import torch

    payload = torch.load(path, map_location="cpu", weights_only=True)
    return (payload.get("meta") or {}) if isinstance(payload, dict) else {}


def input_fingerprint(path) -> str:
    """What a consumer records of an input: its recorded fingerprint, else its content hash."""
    rec = read_record(path)
    return rec["fingerprint"] if rec and "fingerprint" in rec else content_fingerprint(path)


def record(step: str, settings, inputs: dict) -> dict:
    """The provenance record of an output of ``step`` that read ``settings`` and the files ``inputs``
    (role -> path, or a list of paths)."""
    ins = {}
    for role, p in sorted(inputs.items()):
        if p is None:
            continue
        paths = p if isinstance(p, (list, tuple)) else [p]
        entries = [{"file": Path(q).name, "fingerprint": input_fingerprint(q), "content": content_fingerprint(q)}
                   for q in paths]
        ins[role] = entries if isinstance(p, (list, tuple)) else entries[0]
    code = step_code_stamp(step)
    s = settings_hash(settings)
    fp = _sha({"step": step, "settings": s, "code": code,
               "inputs": {r: [e["fingerprint"] for e in v] if isinstance(v, list) else v["fingerprint"]
                          for r, v in ins.items()}})
    return {"fingerprint": fp, "step": step, "code": code, "settings": s, "inputs": ins}


fingerprint = record  # the record holds the fingerprint; both names read naturally at call sites


# --- writing the record into each kind of file -------------------------------------------------------------------
def npz_arrays(rec: dict) -> dict:
    """The extra array of an npz output: ``np.savez(fh, **arrays, **npz_arrays(rec))``."""
    return {NPZ_KEY: np.array(json.dumps(rec, sort_keys=True))}


def json_with(obj: dict, rec: dict) -> dict:
    """``obj`` with the record under :data:`JSON_KEY`."""
    return {**obj, JSON_KEY: rec}


def write_sidecar(path, rec: dict) -> None:
    """The record of a CSV (or any other) output, beside it: ``<name>.provenance.json``, with the output's own
    content hash (``output_content``, checked by :func:`check_sidecar`); write it after the output."""
    from .io_utils import atomic_write_text

    path = Path(path)
    rec = {**rec, "output_content": content_fingerprint(path)} if path.is_file() else rec
    atomic_write_text(path.with_name(path.name + SIDECAR_SUFFIX), json.dumps(rec, indent=1, sort_keys=True))


def write_sidecars(paths, rec: dict) -> None:
    """:func:`write_sidecar` for each of ``paths`` that is given (a table's csv, md and html views share a record)."""
    for p in paths:
        if p:
            write_sidecar(p, rec)


def sidecar_path(path) -> Path:
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


# --- checks ------------------------------------------------------------------------------------------------------
def check_inputs(files: dict) -> None:
    """Refuse inputs that do not belong together: for each file of ``files`` (role -> path) whose record names an
    input of a role that is also given here, that input's content must be the one recorded.

    E.g. ``{"dataset": d, "split": s}``: the split's record says which dataset it was drawn from; another dataset
    given beside it is refused (:class:`ProvenanceError` naming both files and both fingerprints)."""
    given = {role: Path(p) for role, p in files.items() if p is not None}
    for role, path in given.items():
        rec = read_record(path)
        if not rec:
            continue
        if rec.get("teachers_split") and "split" in given:  # labels: the split their teachers were trained on
            have = split_content(given["split"])
            if have != rec["teachers_split"]:
                raise ProvenanceError(
                    f"{path} was made by teachers trained on a split of content {rec['teachers_split']}, but the split "
                    f"given, {given['split']}, has content {have}: the teachers saw configurations that are test or "
                    f"validation configurations here; label with teachers of this split")
        for in_role, entry in (rec.get("inputs") or {}).items():
            if in_role not in given or isinstance(entry, list):
                continue
            other = given[in_role]
            actual = content_fingerprint(other)
            if entry.get("content") != actual:
                raise ProvenanceError(
                    f"{path} was made from a {in_role} of content {entry.get('content')} ({entry.get('file')}), but "
                    f"the {in_role} given, {other}, has content {actual}: the files are of different runs; rerun the "
                    f"step that writes {path.name} (or give it the {in_role} it was made from)")


def teachers_split(teacher_paths) -> str | None:
    """The split content fingerprint the teacher files record (``meta["split_fingerprint"]``); None when none records
    one; :class:`ValueError` when they record different splits."""
    fps = {_model_meta(p).get("split_fingerprint") for p in teacher_paths} - {None}
    if len(fps) > 1:
        raise ValueError(f"the teachers {', '.join(str(p) for p in teacher_paths)} were trained on different splits "
                         f"(contents {', '.join(sorted(fps))}); their labels would mix test configurations")
    return fps.pop() if fps else None


def model_data_meta(dataset_path, split_path) -> dict:
    """What a model file records of the data it was trained on (``meta``): their content fingerprints."""
    return {"dataset_fingerprint": content_fingerprint(dataset_path),
            "split_fingerprint": split_content(split_path)}


#: the splits of a split file, in the order their fingerprint hashes them (tsmlip.data.split.SPLITS is this)
SPLITS = ("train", "valid", "test")


def split_arrays_fingerprint(split: dict) -> str:
    """The split by content: a hash of its train/valid/test index arrays (not of the npz bytes, which hold time
    stamps), so the same split written again has the same fingerprint and any other split another."""
    h = hashlib.sha256()
    for k in SPLITS:
        h.update(k.encode())
        h.update(np.ascontiguousarray(split[k], dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


def split_content(split_path) -> str:
    """:func:`split_arrays_fingerprint` of a split file (checked by tsmlip.data.split.load_split where it is read)."""
    with np.load(split_path, allow_pickle=False) as z:
        return split_arrays_fingerprint({k: z[k] for k in SPLITS})


def check_model_data(model_path, dataset_path, split_path=None) -> None:
    """Refuse a model trained on another dataset or split than the ones given (:class:`ProvenanceError` naming
    both). A model that records neither (an older file) passes."""
    meta = _model_meta(model_path)
    want = meta.get("dataset_fingerprint")
    if want is not None and dataset_path is not None:
        have = content_fingerprint(dataset_path)
        if have != want:
            raise ProvenanceError(f"{model_path} was trained on a dataset of content {want}, but the dataset given, "
                                  f"{dataset_path}, has content {have}: a model of another run; retrain it on this "
                                  f"dataset (or give the dataset it was trained on)")
    want = meta.get("split_fingerprint")
    if want is not None and split_path is not None:
        have = split_content(split_path)
        if have != want:
            raise ProvenanceError(f"{model_path} was trained on a split of content {want}, but the split given, "
                                  f"{split_path}, has content {have}: its training configurations may be test "
                                  f"configurations here; retrain it on this split")


def carry(rec: dict, role: str, made_from) -> dict:
    """``rec`` with the ``role`` entry of the record inside ``made_from`` (e.g. the model an rdf_md.json was made
    from, carried into the rdf_error.json made of it), so a consumer of ``rec``'s file can check that input without
    reading the intermediate file. Files that record no such entry leave ``rec`` as it is."""
    inner = read_record(made_from) if made_from is not None else None
    entry = ((inner or {}).get("inputs") or {}).get(role)
    if entry and not isinstance(entry, list) and role not in rec["inputs"]:
        rec = {**rec, "inputs": {**rec["inputs"], role: entry}}
    return rec


def check_made_from(path, role: str, current) -> None:
    """Refuse ``path`` when its record says it was made from a ``role`` input other than ``current``, the file of
    that role now in place (e.g. an md_timing JSON and the model.pt beside it): :class:`ProvenanceError` naming both
    files. ``current`` is compared by content when it is the kind of file recorded (same name), else by the
    fingerprint it records (metrics.json records its model's). A file without a record, a record without that
    input, or no ``current`` in place pass (older files)."""
    path, current = Path(path), Path(current)
    rec = read_record(path)
    entry = ((rec or {}).get("inputs") or {}).get(role)
    if not entry or isinstance(entry, list) or not current.is_file():
        return
    if current.name == entry.get("file"):
        want, have, what = entry.get("content"), content_fingerprint(current), "content"
    else:
        cur = read_record(current)
        if not cur or "fingerprint" not in cur:
            return
        want, have, what = entry.get("fingerprint"), cur["fingerprint"], "fingerprint"
    if want != have:
        raise ProvenanceError(
            f"{path} was made from a {role} of {what} {want} ({entry.get('file')}), but the {role} now in place, "
            f"{current}, has {what} {have}: a stale result of another {role}; rerun the step that writes {path.name}")


def check_sidecar(path) -> None:
    """Refuse a table (or figure) changed after its step wrote it: its content is not the ``output_content`` its
    sidecar records (a hand edit, a copy from another run). Without a sidecar (an older file) it passes."""
    path = Path(path)
    side = sidecar_path(path)
    if not side.is_file() or not path.is_file():
        return
    try:
        want = json.loads(side.read_text()).get("output_content")
    except (OSError, ValueError, AttributeError):
        raise ProvenanceError(f"{side} is damaged (not a JSON object); rerun the step that writes {path.name}") from None
    have = content_fingerprint(path)
    if want is not None and want != have:
        raise ProvenanceError(f"{path} was changed after its step wrote it (content {have}, its record {side.name} says "
                              f"{want}); rerun the step that writes it, or delete {side.name} to use the file as it is")


def json_content(obj: dict) -> str:
    """The content hash of a JSON file's object without its record, as it reads back (NaN as null, numpy values as
    numbers): what ``output_content`` of a JSON record holds (:meth:`tsmlip.json_record.Record.write`)."""
    from .io_utils import json_safe

    return _sha(json.loads(json.dumps(json_safe(obj), allow_nan=False)))


def check_file(path) -> None:
    """Refuse a JSON output whose record is damaged (present but not an object with a fingerprint): a truncated or
    hand-edited file is not read as if it were valid. A file without a record passes."""
    path = Path(path)
    if path.suffix != ".json":
        return
    try:
        obj = json.loads(path.read_text())
    except ValueError as e:
        raise ProvenanceError(f"{path} is not valid JSON ({e}): a truncated or damaged file; delete it and rerun "
                              f"the step that writes it") from None
    rec = obj.get(JSON_KEY) if isinstance(obj, dict) else None
    if rec is not None and not (isinstance(rec, dict) and isinstance(rec.get("fingerprint"), str)):
        raise ProvenanceError(f"{path}: its provenance record ({JSON_KEY}) is damaged; rerun the step that writes it")
    want = rec.get("output_content") if rec else None
    if want is not None:
        have = json_content({k: v for k, v in obj.items() if k != JSON_KEY})
        if have != want:
            raise ProvenanceError(f"{path} was changed after its step wrote it (content {have}, its record says {want}): "
                                  f"a hand edit or a copy from another run; rerun the step that writes {path.name}")


# --- planning: a rerun of a stale file without Snakemake's metadata -----------------------------------------------
_PLANNED: dict = {}


def planned(step: str, settings, upstream: list[str]) -> str:
    """The fingerprint a rule's outputs will have, computed from the configuration alone when the workflow is
    planned: the step, the settings it reads (its --config-json), its code stamp and the planned fingerprints of
    its inputs (``upstream``: strings, e.g. planned fingerprints or source files' checksums).

    The workflow gives each fingerprinted rule an input ``<results>/stamps/<output>/<fingerprint>.stamp``,
    written when the workflow is planned if it is missing. Another setting, code or upstream file gives another
    stamp name: the new stamp is newer than the rule's outputs, so Snakemake reruns the rule and everything
    downstream by modification time, whether or not the checkout holds Snakemake's own records (a fresh clone, a
    copied results folder). The stamps live in the results folder, so a copied folder carries them.

    Cached for the life of the (planning) process: a workflow of hundreds of jobs plans each fingerprint once (the
    code stamps are cached in :func:`tsmlip.stamps.code_stamp`)."""
    key = (step, settings if isinstance(settings, str) else json.dumps(settings, sort_keys=True, default=str),
           tuple(upstream))
    if key not in _PLANNED:
        _PLANNED[key] = _sha({"step": step, "settings": settings_hash(settings), "code": step_code_stamp(step),
                              "inputs": list(upstream)})
    return _PLANNED[key]


def made_as_planned(path, step: str, settings) -> tuple[bool | None, str]:
    """Whether the output ``path`` is current, read from the record inside it, not from file times: ``(True, "")``
    when it records the plan's settings (their hash) and the step's code stamp as it is now, ``(False, why)`` when it
    records others (``why``: one phrase naming what differs, both hashes), ``(None, "")`` when the file cannot say:
    it is missing, records nothing (an older file), or records another step (not the file of this plan); then the
    planned stamp's time decides, as before.

    The upstream fingerprints are not compared here: an input that is planned again reruns its consumers (Snakemake
    follows the jobs it plans), and an input file replaced by hand is newer than its consumers."""
    rec = read_record(path) if path is not None and Path(path).is_file() else None
    if not isinstance(rec, dict) or rec.get("step") != step:
        return None, ""
    want = {"settings": settings_hash(settings), "code": step_code_stamp(step)}
    differ = [f"{k} {rec.get(k)} (planned {v})" for k, v in want.items() if rec.get(k) != v]
    if differ:
        return False, f"made with other {' and '.join(k for k in want if rec.get(k) != want[k])} than planned: " + \
            ", ".join(differ)
    return True, ""


def write_stamp(path, step: str, settings, upstream: list[str]) -> None:
    """The stamp file of a planned fingerprint (JSON: step, settings hash, code stamp, upstream), written
    atomically; older stamps of the same output (other fingerprints beside it) are removed."""
    from .io_utils import atomic_write_text

    path = Path(path)
    for old in path.parent.glob("*.stamp"):
        if old != path:
            old.unlink(missing_ok=True)
    atomic_write_text(path, json.dumps({"fingerprint": path.stem, "step": step, "settings": settings_hash(settings),
                                        "code": step_code_stamp(step), "inputs": list(upstream)}, indent=1))


_SCRATCH: list = []


def scratch_stamp(results_dir, name: str, fp: str, step: str, settings, upstream: list[str]) -> str:
    """The stamp a dry run would write, written instead to a scratch folder outside the results folder (under the
    system's temporary folder, removed when the planning process ends), so a dry run writes nothing into the
    results folder and still plans the reruns the stamp would cause (a new file is newer than any output)."""
    import atexit
    import shutil
    import tempfile

    if not _SCRATCH:
        _SCRATCH.append(tempfile.mkdtemp(prefix="tsmlip-plan-"))
        atexit.register(shutil.rmtree, _SCRATCH[0], True)
    path = Path(_SCRATCH[0], hashlib.sha256(str(Path(results_dir).resolve()).encode()).hexdigest()[:12], name,
                f"{fp}.stamp")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"fingerprint": fp, "step": step, "settings": settings_hash(settings),
                                    "code": step_code_stamp(step), "inputs": list(upstream)}, indent=1))
        t = plan_stamp_time(results_dir)  # newer than any output, also one from the future
        os.utime(path, (t, t))
    return str(path)


# --- file times that cannot pass a stale output -----------------------------------------------------------------
#: the folder of the planned stamps under the results folder (visible: `cp -a results/*` carries it)
STAMPS_DIR = "stamps"
#: where stamps lived before (hidden: a `cp -a results/*` dropped them); moved on first use, times kept
OLD_STAMPS_DIR = ".provenance"
#: a file time later than now by more than this is "in the future" (clock skew, a restored or touched copy)
FUTURE_SLACK_S = 2.0


def _files_of(results_dir):
    for root, _dirs, names in os.walk(results_dir):
        for n in names:
            yield os.path.join(root, n)


def newest_time(results_dir) -> float:
    """The latest modification time of a file under ``results_dir`` (0 when it holds none)."""
    times = [os.lstat(p).st_mtime for p in _files_of(results_dir)]
    return max(times, default=0.0)


def shift_future_times(results_dir, now: float | None = None, log=None) -> float:
    """When a file under ``results_dir`` carries a modification time in the future (a clock skew, a copy restored
    or touched with other times), move every file's time back by the same amount, so the newest is now and their
    order is kept; returns the shift in seconds (0: nothing was in the future).

    Snakemake decides that an output is current when it is newer than its inputs, the planned stamps among them;
    a stamp made now for a changed setting would be older than an output from the future, and the stale output
    would pass. Called when a run is planned, under the results folder's lock (never by a dry run)."""
    now = time.time() if now is None else now
    newest = newest_time(results_dir)
    if newest <= now + FUTURE_SLACK_S:
        return 0.0
    shift = newest - now + 1.0
    n = 0
    for p in _files_of(results_dir):
        st = os.lstat(p)
        if not os.path.islink(p):
            os.utime(p, (st.st_atime - shift, st.st_mtime - shift))
            n += 1
    if log:
        log(f"{results_dir}: {n} files carried times up to {shift:.0f} s in the future (a clock skew or a restored "
            f"copy): every file's time moved back by {shift:.0f} s, their order kept")
    return shift


def plan_stamp_time(results_dir, now: float | None = None) -> float:
    """The time a dry run gives the stamps it writes to its scratch folder: now, or just after the newest file of
    ``results_dir`` when that is in the future (what :func:`shift_future_times` makes of it in a real run)."""
    now = time.time() if now is None else now
    key = str(Path(results_dir).resolve())
    if key not in _NEWEST:  # once per planning process: a dry run writes hundreds of scratch stamps
        _NEWEST[key] = newest_time(results_dir) if os.path.isdir(results_dir) else 0.0
    return max(now, _NEWEST[key] + 1.0)


_NEWEST: dict = {}


def stamp_path(results_dir, name: str, fp: str, move: bool = True) -> Path:
    """The path of the stamp ``name``/``fp`` under :data:`STAMPS_DIR`. A stamp of the old hidden folder
    (:data:`OLD_STAMPS_DIR`) is moved there first, its time kept, so the outputs made after it stay current; with
    ``move`` False (a dry run, which writes nothing) the old stamp's own path is returned instead."""
    path = Path(results_dir, STAMPS_DIR, name, f"{fp}.stamp")
    old = Path(results_dir, OLD_STAMPS_DIR, name, f"{fp}.stamp")
    if not path.exists() and old.is_file():
        if not move:
            return old
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(old, path)
    return path
