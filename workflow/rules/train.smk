# Training: the teacher(s), then students / controls / control_fw over the sweep, and Born-Again.
# One rule for every kind (`tsmlip train`); the teacher reads no labels (common.smk: train_inputs).
# Checkpoints live under results/checkpoints/ (not a rule output, so Snakemake keeps them when a job
# dies); a rerun resumes from them.
rule train:
    input:
        unpack(train_inputs),
    output:
        model=res("models", "{kind}", "{arch}", "seed{seed}", "model.pt"),
        metrics=res("models", "{kind}", "{arch}", "seed{seed}", "metrics.json"),
        curve=res("models", "{kind}", "{arch}", "seed{seed}", "curve.csv"),
    log:
        res("logs", "train", "{kind}", "{arch}", "seed{seed}.log"),
    benchmark:
        res("benchmarks", "train", "{kind}", "{arch}", "seed{seed}.tsv")
    conda:
        CONDA_ENV
    threads: config["training"]["torch_threads"]
    resources:
        gpu=GPU_JOB,
        mem_mb=4000,
        runtime=720,
    params:
        code=CODE_VERSION,
        settings=train_settings,
        labels=train_labels_arg,
        out_dir=lambda w: res("models", w.kind, w.arch, f"seed{w.seed}"),
        ckpt_dir=lambda w: res("checkpoints", w.kind, w.arch, f"seed{w.seed}"),
    shell:
        "tsmlip train --model-id {wildcards.kind}/{wildcards.arch}/seed{wildcards.seed}"
        " --settings {params.settings:q} --dataset {input.data:q} --split {input.split:q} {params.labels}"
        " --out-dir {params.out_dir:q} --checkpoint-dir {params.ckpt_dir:q} > {log:q} 2>&1"
