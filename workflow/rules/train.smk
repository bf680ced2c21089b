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
        # the pre-computed pairs, shared by every model (keyed by dataset, split and cut-off: never stale)
        pair_cache=res("checkpoints", "_pairs"),
    shell:
        "tsmlip train --model-id {wildcards.kind}/{wildcards.arch}/seed{wildcards.seed}"
        " --settings {params.settings:q} --dataset {input.data:q} --split {input.split:q} {params.labels}"
        " --out-dir {params.out_dir:q} --checkpoint-dir {params.ckpt_dir:q} --pair-cache-dir {params.pair_cache:q}"
        " > {log:q} 2>&1"


# Convergence checked, not trusted: the models of budget_check: trained again from scratch with both patiences and
# the epoch cap times budget_check.scale (same data, labels, seed and initial weights as the model they check).
use rule train as train_budget_check with:
    output:
        model=res("budget_check", "{kind}", "{arch}", "seed{seed}", "model.pt"),
        metrics=res("budget_check", "{kind}", "{arch}", "seed{seed}", "metrics.json"),
        curve=res("budget_check", "{kind}", "{arch}", "seed{seed}", "curve.csv"),
    log:
        res("logs", "train_budget_check", "{kind}", "{arch}", "seed{seed}.log"),
    benchmark:
        res("benchmarks", "train_budget_check", "{kind}", "{arch}", "seed{seed}.tsv")
    resources:
        gpu=GPU_JOB,
        mem_mb=4000,
        runtime=1440,
    params:
        code=CODE_VERSION,
        settings=budget_check_settings,
        labels=train_labels_arg,
        out_dir=lambda w: res("budget_check", w.kind, w.arch, f"seed{w.seed}"),
        ckpt_dir=lambda w: res("checkpoints", "budget_check", w.kind, w.arch, f"seed{w.seed}"),
        pair_cache=res("checkpoints", "_pairs"),
