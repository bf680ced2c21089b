"""Training of every model kind (``tsmlip train``): :mod:`.step` runs one training and writes its outputs,
:mod:`.loop` holds the epoch loop, checkpoints and stopping rule, :mod:`.assembly` the data, the model and the
pair cache. The private pieces below are the ones ``scripts/bench_train.py`` and the tests drive one by one."""
from .assembly import TrainingError, assemble_training, TrainingData, load_training_data, quiet_hippynn, hippynn_arrays
from .loop import (CURVE_COLUMNS, LATE_FRACTION, Checkpoint, evaluate_epoch, run_fingerprint, make_optimizer,
                   train_one_epoch, convergence_summary, train_step)
from .step import finish_training, main, train
