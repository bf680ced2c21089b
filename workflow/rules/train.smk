# Training: the teacher(s), then students / controls / control_fw over the sweep, and Born-Again.
# One rule per kind so the DAG reads like the paper; they all call `tsmlip train`.
# Checkpoints live under results/checkpoints/ (not a rule output, so Snakemake keeps them when a job
# dies); a rerun resumes from them.
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
    conda:
        CONDA_ENV
    shell:
        train_shell(with_labels=False)


rule train_student:
    input:
        data=DATASET,
        split=SPLIT,
        labels=LABELS,
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
    conda:
        CONDA_ENV
    shell:
        train_shell(with_labels=True)


# Controls never see the labels in their loss; they read them only to report the atom-energy error.
rule train_control:
    input:
        data=DATASET,
        split=SPLIT,
        labels=LABELS,
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
    conda:
        CONDA_ENV
    shell:
        train_shell(with_labels=True)


rule train_born_again:
    input:
        data=DATASET,
        split=SPLIT,
        labels=LABELS,
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
    conda:
        CONDA_ENV
    shell:
        train_shell(with_labels=True)


TARGETS.extend(model_file(m, "metrics.json") for m in tsconfig.all_model_ids(config))
