"""Training of every model kind (``tsmlip train``): :mod:`.step` runs one training and writes its outputs,
:mod:`.loop` holds the epoch loop, checkpoints and stopping rule, :mod:`.assembly` the data, the model and the
pair cache. The private pieces below are the ones ``scripts/bench_train.py`` and the tests drive one by one."""
from .assembly import TrainingError, _assemble, _Data, _load_data, _quiet, hippynn_arrays
from .loop import (CURVE_COLUMNS, LATE_FRACTION, _Checkpoint, _evaluate_epoch, _fingerprint, _optimizer,
                   _train_one_epoch, convergence_summary, train_step)
from .step import _finish, main, train
