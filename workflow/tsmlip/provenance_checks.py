"""Files handed on in pairs, checked against each other by their provenance records (:mod:`tsmlip.provenance`).

A step that writes several files writes one record into each (or beside each, for a CSV: its sidecar), so a
consumer that reads two of them can tell whether they are of the same run:

- a training curve (``curve.csv``) and the ``metrics.json`` beside it record the fingerprint of the training that
  wrote both (:func:`check_same_run`);
- a liquid's g(r) (``rdf.csv``) and its run record (``rdf_md.json``) likewise;
- a ``metrics.json`` records the content of the ``model.pt`` it scores (:func:`describing_model`), so metrics
  beside another model file (a retrained or copied model) are refused (:func:`check_model_files`).

Each refusal is a :class:`tsmlip.provenance.ProvenanceError` of one line naming both files and both fingerprints.
Files that record nothing (older runs, data made elsewhere) pass.
"""
from __future__ import annotations

from pathlib import Path

from .provenance import (ProvenanceError, check_file, check_made_from, check_sidecar, content_fingerprint,
                         read_record)


def describing_model(rec: dict | None, model_path) -> dict | None:
    """``rec`` (a training's record) with the model file it describes as its ``model`` input: the file's content
    and the fingerprint recorded inside it. The record of a ``metrics.json``, which scores that file."""
    if rec is None:
        return None
    model = {"file": Path(model_path).name, "fingerprint": rec["fingerprint"],
             "content": content_fingerprint(model_path)}
    return {**rec, "inputs": {**rec.get("inputs", {}), "model": model}}


def check_same_run(path, other) -> None:
    """Refuse ``path`` (e.g. a curve.csv, by its sidecar) and ``other`` (the JSON written with it) when they record
    different fingerprints: files of two runs put side by side. A file that records none passes."""
    a, b = read_record(path), read_record(other)
    fa, fb = (a or {}).get("fingerprint"), (b or {}).get("fingerprint")
    if fa and fb and fa != fb:
        raise ProvenanceError(f"{path} records the run of fingerprint {fa}, but {other} beside it records "
                              f"{fb}: files of two runs side by side; rerun the step that writes both")


def check_written_together(path, other) -> None:
    """:func:`check_same_run` after the hand-edit checks of both files (a CSV against its sidecar's content hash,
    a JSON against its own)."""
    check_sidecar(path)
    check_file(other)
    check_same_run(path, other)


def check_model_files(metrics, curve=None) -> None:
    """A model's ``metrics.json`` (not edited by hand; made from the ``model.pt`` beside it, by content) and its
    ``curve.csv`` (not edited; of the same training)."""
    metrics = Path(metrics)
    check_file(metrics)
    check_made_from(metrics, "model", metrics.parent / "model.pt")
    if curve is not None:
        check_written_together(curve, metrics)


def check_made_from_models(found: dict[str, dict], expect: dict[str, str] | None = None) -> None:
    """What ``tsmlip aggregate`` checks of each model's files before tabling them: its metrics.json and curve.csv
    (:func:`check_model_files`), and each per-model MD or RDF JSON: refused when made from another model file than
    the one now in place (the ``model.pt`` beside it, by content, else the ``metrics.json`` read with it, by the
    fingerprint both record) or when damaged. Files that record nothing (older runs) pass
    (:func:`tsmlip.provenance.check_made_from`).

    ``expect``: step -> the settings hash the configuration gives that step (``--expect-settings``); a file whose
    record names that step with other settings is refused (``rdf-md``: the liquid an rdf_error.json was made of)."""

    def settings_match(p, step, have):
        want = (expect or {}).get(step)
        if want is not None and have is not None and have != want:
            raise ProvenanceError(f"{p} was made by {step} with other settings (settings hash {have}) than this "
                                  f"configuration's ({want}): a result of another configuration; rerun the step "
                                  f"that writes {p.name}")

    for entry in found.values():
        paths = list(entry["md_timing"].values()) + [entry[n] for n in ("max_atoms.json", "rdf_error.json") if n in entry]
        if entry.get("metrics.json") is not None:  # a hand-edited metrics.json is refused, not tabled
            check_model_files(entry["metrics.json"], entry.get("curve.csv"))
        for p in paths:
            check_file(p)
            rec = read_record(p) or {}
            settings_match(p, rec.get("step"), rec.get("settings"))
            settings_match(p, "rdf-md", rec.get("liquid_settings"))
            model = p.parent / "model.pt"
            current = model if model.is_file() else entry.get("metrics.json")
            if current is not None:
                check_made_from(p, "model", current)


def check_gr(path) -> None:
    """A g(r) table read without its run record (a teacher's, the reference's): not edited by hand (its sidecar's
    content hash), and made from the ``model.pt`` now beside it (by content) where it records one."""
    path = Path(path)
    check_sidecar(path)
    check_made_from(path, "model", path.parent / "model.pt")
