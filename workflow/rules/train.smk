# Training: the teacher(s), then students / controls / control_fw over the sweep, and Born-Again.
# One rule per kind so the DAG reads like the paper; they all call `tsmlip train`.
# Checkpoints live under results/checkpoints/ (not a rule output, so Snakemake keeps them when a job
# dies); a rerun resumes from them.
import json


def train_settings(wildcards=None):
    """The config sections training reads; a change to them (and only them) reruns training."""
    return json.dumps({k: config[k] for k in ("network", "training", "born_again")})


# resource hints for a cluster; the SLURM profile may override them per rule
TRAIN_RESOURCES = dict(gpu=1, mem_mb=4000, runtime=720)


def labels_input(wildcards):
    return LABELS


def train_shell(with_labels):
    labels = " --labels {input.labels}" if with_labels else ""
    return (
        "tsmlip train --model-id {wildcards.kind}/{wildcards.arch}/seed{wildcards.seed}"
        " --settings '{params.settings}' --dataset {input.data} --split {input.split}" + labels +
        " --out-dir {params.out_dir} --checkpoint-dir {params.ckpt_dir} > {log} 2>&1"
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


rule train_teacher:
    input:
        data=DATASET,
        split=SPLIT,
    output:
        **model_outputs(),
    wildcard_constraints:
        kind="teacher",
    params:
        **TRAIN_PARAMS,
    log:
        res("logs", "train", "{kind}", "{arch}", "seed{seed}.log"),
    benchmark:
        res("benchmarks", "train", "{kind}", "{arch}", "seed{seed}.tsv")
    threads: config["training"]["torch_threads"]
    resources:
        **TRAIN_RESOURCES,
    shell:
        train_shell(with_labels=False)


rule train_student:
    input:
        data=DATASET,
        split=SPLIT,
        labels=labels_input,
    output:
        **model_outputs(),
    wildcard_constraints:
        kind="student",
    params:
        **TRAIN_PARAMS,
    log:
        res("logs", "train", "{kind}", "{arch}", "seed{seed}.log"),
    benchmark:
        res("benchmarks", "train", "{kind}", "{arch}", "seed{seed}.tsv")
    threads: config["training"]["torch_threads"]
    resources:
        **TRAIN_RESOURCES,
    shell:
        train_shell(with_labels=True)


# Controls never see the labels in their loss; they read them only to report the atom-energy error.
rule train_control:
    input:
        data=DATASET,
        split=SPLIT,
        labels=labels_input,
    output:
        **model_outputs(),
    wildcard_constraints:
        kind="control|control_fw",
    params:
        **TRAIN_PARAMS,
    log:
        res("logs", "train", "{kind}", "{arch}", "seed{seed}.log"),
    benchmark:
        res("benchmarks", "train", "{kind}", "{arch}", "seed{seed}.tsv")
    threads: config["training"]["torch_threads"]
    resources:
        **TRAIN_RESOURCES,
    shell:
        train_shell(with_labels=True)


rule train_born_again:
    input:
        data=DATASET,
        split=SPLIT,
        labels=labels_input,
    output:
        **model_outputs(),
    wildcard_constraints:
        kind="born_again|born_again_static",
    params:
        **TRAIN_PARAMS,
    log:
        res("logs", "train", "{kind}", "{arch}", "seed{seed}.log"),
    benchmark:
        res("benchmarks", "train", "{kind}", "{arch}", "seed{seed}.tsv")
    threads: config["training"]["torch_threads"]
    resources:
        **TRAIN_RESOURCES,
    shell:
        train_shell(with_labels=True)


TARGETS.extend(model_file(m, "metrics.json") for m in tsconfig.all_model_ids(config))
