# Training: the teacher(s), then students / controls / control_fw over the sweep, and Born-Again.
# The fast engine with training.stack (the default): `train_stack` trains every model of a stack (tsmlip.stacks:
# one architecture and source of data, kinds x seeds) in one job into results/stacks/<folder>/<stack>/, and
# `collect_model` puts each model's files in place (a copy; a local rule). Otherwise one job per model, `train`
# (`tsmlip train`, engine training.engine). The teacher reads no labels (common.smk: train_inputs).
# Checkpoints live under results/checkpoints/ (not a rule output, so Snakemake keeps them when a job
# dies); a rerun resumes from them.
if STACKS:

    rule train_stack:
        input:
            unpack(stack_inputs),
            stamps=stack_stamps,
        output:
            directory(res("stacks", "{folder}", "{stack}")),
        log:
            res("logs", "train_stack", "{folder}", "{stack}.log"),
        benchmark:
            res("benchmarks", "train_stack", "{folder}", "{stack}.tsv")
        wildcard_constraints:
            folder="models|budget_check",
            stack=r"w\d+-s\d+-l\d+-(teacher|sweep|synthetic)",
        priority: lambda w: tsstacks.priority(STACKS_BY_NAME[(w.folder, w.stack)], config)
        conda:
            CONDA_ENV
        threads: rule_threads("train_stack")
        resources:
            **rule_resources("train_stack"),
        params:
            code=code_stamp("train-stack"),
            cfg=lambda w: BUDGET_CHECK_CONFIG if w.folder == "budget_check" else TRAIN_CONFIG,
            ids=lambda w: " ".join(shlex.quote(str(m)) for m in STACKS_BY_NAME[(w.folder, w.stack)].model_ids),
            labels=stack_labels_arg,
            ckpt_root=lambda w: res("checkpoints", *([] if w.folder == "models" else [w.folder])),
        shell:
            "tsmlip train-stack --config-json {params.cfg:q} --threads {threads}"
            " --name {wildcards.folder}/{wildcards.stack:q}"
            " --model-ids {params.ids} --dataset {input.data:q} --split {input.split:q} {params.labels}"
            " --out-root {output:q} --checkpoint-root {params.ckpt_root:q} > {log:q} 2>&1"

    rule collect_model:
        input:
            lambda w: res("stacks", "models", STACK_OF[("models", f"{w.kind}/{w.arch}/seed{w.seed}")]),
        output:
            model=model_file(MODEL_ID, "model.pt"),
            metrics=model_file(MODEL_ID, "metrics.json"),
            curve=model_file(MODEL_ID, "curve.csv"),
        log:
            model_job_file("logs", "collect_model"),
        localrule: True
        conda:
            CONDA_ENV
        params:
            src=lambda w, input: os.path.join(input[0], f"{w.kind}/{w.arch}/seed{w.seed}"),
        shell:
            "(cp -v {params.src:q}/model.pt {output.model:q} && cp -v {params.src:q}/metrics.json {output.metrics:q}"
            " && cp -v {params.src:q}/curve.csv {output.curve:q}"
            " && cp -v {params.src:q}/curve.csv.provenance.json {output.curve:q}.provenance.json) > {log:q} 2>&1"

    use rule collect_model as collect_budget_check_model with:
        input:
            lambda w: res("stacks", "budget_check", STACK_OF[("budget_check", f"{w.kind}/{w.arch}/seed{w.seed}")]),
        output:
            model=model_file(MODEL_ID, "model.pt", "budget_check"),
            metrics=model_file(MODEL_ID, "metrics.json", "budget_check"),
            curve=model_file(MODEL_ID, "curve.csv", "budget_check"),
        log:
            model_job_file("logs", "collect_budget_check_model"),

else:

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
        threads: rule_threads("train")
        resources:
            **rule_resources("train"),
        params:
            code=code_stamp("train"),
            cfg=TRAIN_CONFIG,
            model_id=MODEL_ID,
            labels=train_labels_arg,
            out_dir=model_dir(MODEL_ID),
            ckpt_dir=model_dir(MODEL_ID, "checkpoints"),
            # the pre-computed pairs, shared by every model (keyed by dataset, split and cut-off: never stale)
            pair_cache=res("checkpoints", "_pairs"),
        shell:
            "tsmlip train --config-json {params.cfg:q} --threads {threads} --model-id {params.model_id:q}"
            " --dataset {input.data:q} --split {input.split:q} {params.labels}"
            " --out-dir {params.out_dir:q} --checkpoint-dir {params.ckpt_dir:q} --pair-cache-dir {params.pair_cache:q}"
            " > {log:q} 2>&1"

    # Convergence checked, not trusted: the models of budget_check: trained again from scratch with both patiences, the
    # warm-up (min_epochs) and the epoch cap times budget_check.scale (same data, labels, seed and initial weights as
    # the model they check).
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
        threads: rule_threads("train_budget_check")
        resources:
            **rule_resources("train_budget_check"),
        params:
            code=code_stamp("train"),
            cfg=BUDGET_CHECK_CONFIG,
            model_id=MODEL_ID,
            labels=train_labels_arg,
            out_dir=model_dir(MODEL_ID, "budget_check"),
            ckpt_dir=model_dir(MODEL_ID, "checkpoints/budget_check"),
            pair_cache=res("checkpoints", "_pairs"),
