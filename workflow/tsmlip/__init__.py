"""tsmlip: teacher-student training of HIPNN machine-learning interatomic potentials.

One module per stage of the workflow (data, model, losses, train, label, md, rdf, aggregate, plots);
each has a command-line entry in :mod:`tsmlip.cli`. Units: eV, Angstrom, fs unless a name says otherwise.
"""
import os as _os

# Numba custom kernels make CPU MD slower and print a warning at import; keep hippynn on plain torch
# unless the user asked otherwise.
_os.environ.setdefault("HIPPYNN_USE_CUSTOM_KERNELS", "False")
_os.environ.setdefault("HIPPYNN_PROGRESS", "none")

__version__ = "0.1.0"

import warnings as _warnings

# hippynn builds a small sparse tensor at import; torch's note about it is noise in every log
_warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")
