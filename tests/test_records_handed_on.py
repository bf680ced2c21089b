"""Issue 36, item 2: every handed-on file carries its record and its consumers refuse a mismatch in one line naming
both fingerprints: the synthetic training set (dataset, split, labels), the training curve, the liquid's g(r); and a
model's metrics are tied to the model file they describe (aggregate refuses metrics beside another model.pt, a
hand-edited metrics.json, a curve of another run)."""
from __future__ import annotations

import numpy as np
import pytest

from tsmlip import provenance


def _one_line(text: str) -> str:
    text = text.strip()
    assert text and "\n" not in text and "Traceback" not in text, text
    return text


# --- synthetic/*.npz ---------------------------------------------------------------------------------------------
def _training_set(out, tiny_data, labels, seed):
    """The synthetic training set's writer on the tiny data (no teacher MD: the ground truth stands in for the
    synthetic part), with the split drawn with ``seed``."""
    from tsmlip.data.split import make_split
    from tsmlip.synthetic import write_training_set

    dataset, split, arrays = tiny_data
    out.mkdir(parents=True)
    sp = make_split(len(arrays["E"]), 0.17, 0.17, seed)
    lab = np.load(labels)
    return write_training_set(out, {k: arrays[k] for k in ("Z", "R", "cell", "E", "F", "n_atoms")}, sp,
                              {"atom_E": lab["atom_E"], "E": lab["E_teacher"]}, 1e-3, {"n_configs": 0},
                              {"ground_truth_dataset": dataset, "ground_truth_split": split,
                               "ground_truth_labels": labels}, {"n_synthetic": 0})


def test_synthetic_training_set_carries_records_and_a_split_of_another_run_is_refused(tiny_data, tmp_path):
    from tsmlip.label import oracle_labels

    oracle_labels(str(tiny_data[0]), str(tmp_path / "labels.npz"), 1e-3)
    a = tmp_path / "a"
    recs = _training_set(a, tiny_data, tmp_path / "labels.npz", seed=1)
    for name, role in (("dataset.npz", "dataset"), ("split.npz", "split"), ("atom_energies.npz", "labels")):
        assert provenance.read_record(a / name)["fingerprint"] == recs[role]["fingerprint"]
    assert recs["split"]["inputs"]["dataset"]["content"] == provenance.content_fingerprint(a / "dataset.npz")
    files = {"dataset": a / "dataset.npz", "split": a / "split.npz", "labels": a / "atom_energies.npz"}
    provenance.check_inputs(files)  # what train and train-stack check first
    # the same set written again with another split: its split and labels do not belong with run a's
    b = tmp_path / "b"
    _training_set(b, tiny_data, tmp_path / "labels.npz", seed=2)
    with pytest.raises(provenance.ProvenanceError) as e:
        provenance.check_inputs({**files, "split": b / "split.npz"})
    msg = _one_line(str(e.value))
    assert "atom_energies.npz was made from a split of content" in msg and str(b / "split.npz") in msg
    assert provenance.content_fingerprint(a / "split.npz") in msg and provenance.content_fingerprint(
        b / "split.npz") in msg
