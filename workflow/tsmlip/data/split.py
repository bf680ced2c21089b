"""One fixed train/valid/test split, written once and read by every model ever trained.

The split is a seeded permutation of the configurations; ``split.npz`` holds integer index arrays
``train``, ``valid``, ``test`` (disjoint, covering every configuration). Teacher, students, controls and
Born-Again all read this file, so no test configuration reaches any training.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from ..io_utils import atomic_open, atomic_write_text
from .dataset import DataError, load_dataset

SPLITS = ("train", "valid", "test")


def make_split(n: int, valid_fraction: float, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    n_test = max(1, int(round(test_fraction * n)))
    n_valid = max(1, int(round(valid_fraction * n)))
    if n - n_test - n_valid < 1:
        raise DataError(f"{n} configurations are too few for valid/test fractions "
                        f"{valid_fraction}/{test_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    return {"test": np.sort(perm[:n_test]), "valid": np.sort(perm[n_test:n_test + n_valid]),
            "train": np.sort(perm[n_test + n_valid:])}


def load_split(path: str | Path, n_configs: int | None = None) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        split = {k: z[k] for k in SPLITS}
    all_idx = np.concatenate([split[k] for k in SPLITS])
    if len(np.unique(all_idx)) != len(all_idx):
        raise DataError(f"{path}: the splits overlap")
    if n_configs is not None and (len(all_idx) != n_configs or all_idx.max() >= n_configs):
        raise DataError(f"{path}: the split does not match a dataset of {n_configs} configurations")
    return split


def dataset_fingerprint(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="tsmlip split", description=__doc__)
    p.add_argument("--dataset", required=True)
    p.add_argument("--valid-fraction", type=float, required=True)
    p.add_argument("--test-fraction", type=float, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    n = len(load_dataset(a.dataset)["E"])
    split = make_split(n, a.valid_fraction, a.test_fraction, a.seed)
    with atomic_open(a.out, "wb") as fh:
        np.savez(fh, **split)
    info = {k: int(len(v)) for k, v in split.items()}
    info.update({"seed": a.seed, "dataset_sha256_16": dataset_fingerprint(a.dataset)})
    atomic_write_text(Path(a.out).with_suffix(".json"), json.dumps(info, indent=2))
    print(f"[split] {info}")
    return 0
