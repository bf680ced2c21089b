# Shared helpers (config validation, model ids, paths) for the rule files of each stage.
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))  # the tsmlip package, also when not installed

from snakemake.utils import validate

validate(config, schema="../../config/schema.yaml")

from tsmlip import config as tsconfig

tsconfig.validate(config)  # cross-field checks the JSON schema cannot express

RESULTS = tsconfig.results_dir(config)
KINDS_RE = "|".join(tsconfig.KINDS)
ARCH_RE = r"w\d+-s\d+-l\d+"


def res(*parts):
    """A path under results_dir."""
    return str(RESULTS.joinpath(*parts))


def model_file(model_id, name):
    return res("models", str(model_id), name)


#: one software environment for every rule (used with `--sdm conda`)
CONDA_ENV = "../../envs/tsmlip.yaml"

DATASET = res("data", "dataset.npz")
SPLIT = res("data", "split.npz")
LABELS = res("labels", "atom_energies.npz")


# --- training (train.smk) ---------------------------------------------------------------------------
def train_settings(wildcards=None):
    """The config sections training reads; a change to them (and only them) reruns training."""
    return json.dumps({k: config[k] for k in ("network", "training", "born_again")})


def _local_gpus():
    """GPUs this (planning) machine sees, from NVML; 0 when there is no NVIDIA driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return pynvml.nvmlDeviceGetCount()
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        return 0


#: the `gpu` resource of device jobs (training, MD, RDF): 1 where this machine has a GPU, so a local
#: run never puts two of them on one GPU; 0 on a CPU-only machine, where `threads` alone share the
#: cores. Cluster profiles set it per rule (profiles/slurm asks SLURM for one GPU per such job).
GPU_JOB = 1 if _local_gpus() > 0 else 0

#: resource hints for a cluster; the SLURM profile may override them per rule
TRAIN_RESOURCES = dict(gpu=GPU_JOB, mem_mb=4000, runtime=720)


def train_shell(with_labels):
    labels = "--labels {input.labels} " if with_labels else ""
    return (
        "tsmlip train --model-id {wildcards.kind}/{wildcards.arch}/seed{wildcards.seed}"
        " --settings '{params.settings}' --dataset {input.data} --split {input.split} "
        f"{labels}--out-dir {{params.out_dir}} --checkpoint-dir {{params.ckpt_dir}} > {{log}} 2>&1"
    )


def model_outputs():
    return dict(
        model=res("models", "{kind}", "{arch}", "seed{seed}", "model.pt"),
        metrics=res("models", "{kind}", "{arch}", "seed{seed}", "metrics.json"),
        curve=res("models", "{kind}", "{arch}", "seed{seed}", "curve.csv"),
    )


TRAIN_PARAMS = dict(
    settings=train_settings,
    out_dir=lambda w: res("models", w.kind, w.arch, f"seed{w.seed}"),
    ckpt_dir=lambda w: res("checkpoints", w.kind, w.arch, f"seed{w.seed}"),
)



# --- labels (label.smk) -----------------------------------------------------------------------------
def label_teachers(wildcards=None):
    choice = config["labels"]["teacher"]
    ids = tsconfig.teacher_ids(config)
    if choice != "mean":
        ids = [m for m in ids if m.seed == int(choice)]
    return [model_file(m, "model.pt") for m in ids]


#: every stage appends the files that the default target (`all`) must build
TARGETS = []


def all_targets():
    return TARGETS
