"""Data stage: the embedded EMT aluminum set, user-supplied ANI-Al HDF5 / extended XYZ, the split."""
from .dataset import DataError, load_dataset, save_dataset, validate_arrays  # noqa: F401
from .split import load_split, make_split  # noqa: F401
