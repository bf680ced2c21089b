"""One fixed train/valid/test split, written once and read by every model ever trained.

The split is a seeded permutation of the configurations; ``split.npz`` holds integer index arrays
``train``, ``valid``, ``test`` (disjoint, covering every configuration). Teacher, students, controls and
Born-Again all read this file, so no test configuration reaches any training.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

from ..io_utils import atomic_open, sha256_file
# the splits, in this order everywhere (split.npz's arrays, metrics.json, the tables' columns): defined with the
# split's content fingerprint, which the provenance of every model records
from ..provenance import SPLITS, split_arrays_fingerprint
from .dataset import DataError, duplicates_message, find_duplicates, load_dataset


def split_sizes(n: int, valid_fraction: float, test_fraction: float) -> dict[str, int]:
    """The one split arithmetic: the sizes :func:`make_split` gives ``n`` configurations (at least one test and
    one validation configuration; the training split may come out empty, which the callers refuse)."""
    n_test = max(1, int(round(test_fraction * n)))
    n_valid = max(1, int(round(valid_fraction * n)))
    return {"train": n - n_test - n_valid, "valid": n_valid, "test": n_test}


def train_eval_size(n_train: int, fraction: float) -> int:
    """Training configurations evaluated per curve point (``training.train_eval_fraction``; hippynn takes
    ``int(n_train * fraction)``)."""
    return int(n_train * fraction)


def make_split(n: int, valid_fraction: float, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    sizes = split_sizes(n, valid_fraction, test_fraction)
    if sizes["train"] < 1:
        raise DataError(f"{n} configurations are too few for valid/test fractions "
                        f"{valid_fraction}/{test_fraction} (config keys 'split.valid_fraction', "
                        f"'split.test_fraction'): no configuration left for training")
    n_test, n_valid = sizes["test"], sizes["valid"]
    perm = np.random.default_rng(seed).permutation(n)
    return {"test": np.sort(perm[:n_test]), "valid": np.sort(perm[n_test:n_test + n_valid]),
            "train": np.sort(perm[n_test + n_valid:])}


def load_split(path: str | Path, n_configs: int | None = None) -> dict[str, np.ndarray]:
    """The split's index arrays; :class:`DataError` naming ``path`` when it is not a split file."""
    path = Path(path)
    if not path.is_file():
        what = "a directory" if path.is_dir() else "missing"
        raise DataError(f"{path}: the split file is {what}; delete it and rerun the split rule")
    try:
        with np.load(path) as z:
            missing = [k for k in SPLITS if k not in z.files]
            if missing:
                raise DataError(f"{path}: not a split file (no {', '.join(missing)} array)")
            split = {k: z[k] for k in SPLITS}
    except (OSError, ValueError, EOFError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{path}: not a split file ({type(e).__name__}: {e})") from None
    all_idx = np.concatenate([split[k] for k in SPLITS])
    if len(np.unique(all_idx)) != len(all_idx):
        raise DataError(f"{path}: the splits overlap")
    if n_configs is not None and (len(all_idx) != n_configs or all_idx.max() >= n_configs):
        raise DataError(f"{path}: the split does not match a dataset of {n_configs} configurations")
    return split


def dataset_fingerprint(path: str | Path) -> str:
    """A file by content: the first 16 hex digits of its sha256 (:func:`tsmlip.io_utils.sha256_file`)."""
    return sha256_file(path)[:16]


def split_fingerprint(path: str | Path) -> str:
    """The split by content (:func:`tsmlip.provenance.split_arrays_fingerprint`) of a checked split file."""
    return split_arrays_fingerprint(load_split(path))


def check_train_eval_fraction(n_train: int, fraction: float) -> None:
    """:class:`DataError` when ``training.train_eval_fraction`` of ``n_train`` configurations evaluates none
    (hippynn takes ``int(n_train * fraction)`` of them each epoch)."""
    if train_eval_size(n_train, fraction) < 1:
        raise DataError(f"config key 'training.train_eval_fraction': {fraction} of the {n_train} training "
                        f"configurations is none (need at least 1/{n_train} = {1 / n_train:.3g})")


def main(argv=None) -> int:
    from ..cli import step_parser

    p = step_parser("split", __doc__ + "\n\nA training.train_eval_fraction that evaluates no training configuration "
                    "is refused.")
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    sp, train_eval_fraction = a.config_json["split"], a.config_json["training"]["train_eval_fraction"]
    try:
        arrays = load_dataset(a.dataset)
        dups = find_duplicates(arrays)
        if dups:  # the data stage refuses or drops them; a dataset made elsewhere could still hold some
            raise DataError(duplicates_message(a.dataset, dups) + ": twins must never straddle splits")
        n = len(arrays["E"])
        split = make_split(n, sp["valid_fraction"], sp["test_fraction"], sp["seed"])
        check_train_eval_fraction(len(split["train"]), train_eval_fraction)
    except DataError as e:
        print(f"tsmlip split: error: {e}", file=sys.stderr)
        return 1
    from ..provenance import npz_arrays, record
    from ..records import SplitInfo

    rec = record("split", a.config_json, {"dataset": a.dataset})
    with atomic_open(a.out, "wb") as fh:
        np.savez(fh, **split, **npz_arrays(rec))
    info = SplitInfo(**{k: int(len(v)) for k, v in split.items()}, seed=sp["seed"],
                     dataset_sha256_16=dataset_fingerprint(a.dataset)).with_provenance(rec)
    info = info.write(Path(a.out).with_suffix(".json"), indent=2)
    print(f"[split] {info}")
    return 0
