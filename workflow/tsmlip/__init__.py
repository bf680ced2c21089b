"""tsmlip: teacher-student training of HIPNN machine-learning interatomic potentials.

Layers, from the bottom: the house (config, records, io_utils, kinds, provenance, stamps, registries), the core
(:mod:`tsmlip.core`: model, losses, batches, elements, the training engine's stacked model, the MD engines) and one
module per workflow step (data, train, label, synthetic, foundation, md, rdf, aggregate, claims, plots), each a
``tsmlip <command>`` (:data:`tsmlip.cli.STEPS`). Units: eV, Angstrom, fs unless a name says otherwise.
"""
import os as _os

# hippynn's import-time kernel choice: plain torch (training and labelling use it, on every device) unless
# the user asked otherwise; "auto" would warn at import where no custom kernels are installed. The MD
# commands choose per device at run time (md.kernels / rdf.kernels, tsmlip.core.md.engines.set_kernels: pytorch
# on the CPU, where numba's kernels are 10x slower, hippynn's recommended ones on CUDA).
_os.environ.setdefault("HIPPYNN_USE_CUSTOM_KERNELS", "False")
_os.environ.setdefault("HIPPYNN_PROGRESS", "none")

__version__ = "0.1.0"

import warnings as _warnings

# hippynn builds a small sparse tensor at import; torch's note about it is noise in every log
_warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")
