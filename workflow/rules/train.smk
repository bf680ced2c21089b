# Training: the teacher(s), then students / controls / control_fw over the sweep, and Born-Again.
# One rule for every kind (`tsmlip train`); the teacher reads no labels (common.smk: train_inputs).
# Checkpoints live under results/checkpoints/ (not a rule output, so Snakemake keeps them when a job
# dies); a rerun resumes from them.
rule train:
    input:
        unpack(train_inputs),
        stamp=train_stamp(),
    output:
        model=model_file(MODEL_ID, "model.pt"),
        metrics=model_file(MODEL_ID, "metrics.json"),
        curve=model_file(MODEL_ID, "curve.csv"),
    log:
        model_job_file("logs", "train"),
    benchmark:
        model_job_file("benchmarks", "train")
    conda:
        CONDA_ENV
    threads: config["training"]["torch_threads"]
    resources:
        gpu=GPU_JOB,
        mem_mb=4000,
        runtime=720,
    params:
        code=CODE_VERSION,
        cfg=TRAIN_CONFIG,
        model_id=MODEL_ID,
        labels=train_labels_arg,
        out_dir=model_dir(MODEL_ID),
        ckpt_dir=model_dir(MODEL_ID, "checkpoints"),
        # the pre-computed pairs, shared by every model (keyed by dataset, split and cut-off: never stale)
        pair_cache=res("checkpoints", "_pairs"),
    shell:
        "tsmlip train --config-json {params.cfg:q} --model-id {params.model_id:q}"
        " --dataset {input.data:q} --split {input.split:q} {params.labels}"
        " --out-dir {params.out_dir:q} --checkpoint-dir {params.ckpt_dir:q} --pair-cache-dir {params.pair_cache:q}"
        " > {log:q} 2>&1"


# Convergence checked, not trusted: the models of budget_check: trained again from scratch with both patiences and
# the epoch cap times budget_check.scale (same data, labels, seed and initial weights as the model they check).
use rule train as train_budget_check with:
    input:
        unpack(train_inputs),
        stamp=train_stamp(budget=True),
    output:
        model=model_file(MODEL_ID, "model.pt", "budget_check"),
        metrics=model_file(MODEL_ID, "metrics.json", "budget_check"),
        curve=model_file(MODEL_ID, "curve.csv", "budget_check"),
    log:
        model_job_file("logs", "train_budget_check"),
    benchmark:
        model_job_file("benchmarks", "train_budget_check")
    resources:
        gpu=GPU_JOB,
        mem_mb=4000,
        runtime=1440,
    params:
        code=CODE_VERSION,
        cfg=BUDGET_CHECK_CONFIG,
        model_id=MODEL_ID,
        labels=train_labels_arg,
        out_dir=model_dir(MODEL_ID, "budget_check"),
        ckpt_dir=model_dir(MODEL_ID, "checkpoints/budget_check"),
        pair_cache=res("checkpoints", "_pairs"),
