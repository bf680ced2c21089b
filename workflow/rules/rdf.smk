# Liquid g(r) of every model and of the reference potential, and the RDF error (Fig. 3C). The element is
# rdf.element or the model's single element (the reference: the dataset's, from provenance.json); the
# density rdf.density_g_cm3 or ASE's reference solid density x rdf.liquid_density_ratio (tsmlip.rdf).
# rdf_md: models/<id>/model.pt -> models/<id>/rdf.csv (+ rdf_md.json run information); with rdf.stack,
#   rdf_md_stack (every model of an architecture in one job) + collect_rdf instead
# rdf_reference: the reference potential (EMT data only) -> reference/rdf.csv + reference/rdf_peak.json
# rdf_error: the model's g(r) against the teachers' mean g(r) and the reference's -> rdf_error.json
RDF_CFG = config["rdf"]
# the MD reads every rdf: key but the comparison with experiment (a change there reruns rdf_error only) and
# rdf.stack (which job runs it; either writes the same liquid)
RDF_MD = {k: v for k, v in RDF_CFG.items() if k not in ("experiment", "stack")}
RDF_TEACHERS = tsmodel_ids.teacher_ids(config)


if RDF_STACKS:
    # rdf.stack: every model of an architecture runs its liquid in one job (tsmlip rdf-md-stack: one stacked
    # force call per MD step for all of them) into results/rdf_stacks/<arch>/<model id>/, and `collect_rdf` puts
    # each model's files in place (a copy; a local rule), as train_stack + collect_model do for training.

    rule rdf_md_stack:
        input:
            models=lambda w: [model_file(m, "model.pt") for m in RDF_STACKS[w.stack].model_ids],
            stamp=rule_stamp(
                lambda w: f"rdf_md_stack/{w.stack}",
                "rdf-md-stack",
                step_config("rdf-md-stack", rdf=RDF_MD),
                lambda w: [train_fp(m) for m in RDF_STACKS[w.stack].model_ids],
            ),
        output:
            directory(res("rdf_stacks", "{stack}")),
        log:
            res("logs", "rdf_md_stack", "{stack}.log"),
        benchmark:
            res("benchmarks", "rdf_md_stack", "{stack}.tsv")
        wildcard_constraints:
            stack=r"w\d+-s\d+-l\d+",
        conda:
            CONDA_ENV
        threads: rule_threads("rdf_md_stack")
        resources:
            **rule_resources("rdf_md_stack"),
        params:
            code=code_stamp("rdf-md-stack"),
            ids=lambda w: " ".join(shlex.quote(str(m)) for m in RDF_STACKS[w.stack].model_ids),
            cfg=step_config("rdf-md-stack", rdf=RDF_MD),
        shell:
            "tsmlip rdf-md-stack --config-json {params.cfg:q} --models {input.models:q} --model-ids {params.ids}"
            " --threads {threads} --out-root {output:q} > {log:q} 2>&1"

    rule collect_rdf:
        input:
            lambda w: res("rdf_stacks", RDF_STACK_OF[f"{w.kind}/{w.arch}/seed{w.seed}"]),
        output:
            rdf=model_file(MODEL_ID, "rdf.csv"),
            info=model_file(MODEL_ID, "rdf_md.json"),
        log:
            model_job_file("logs", "collect_rdf"),
        localrule: True
        conda:
            CONDA_ENV
        params:
            src=lambda w, input: os.path.join(input[0], f"{w.kind}/{w.arch}/seed{w.seed}"),
        shell:
            "(cp -v {params.src:q}/rdf.csv {output.rdf:q} && cp -v {params.src:q}/rdf_md.json {output.info:q}"
            " && cp -v {params.src:q}/rdf.csv.provenance.json {output.rdf:q}.provenance.json) > {log:q} 2>&1"

else:

    rule rdf_md:
        input:
            model=model_file(MODEL_ID, "model.pt"),
            stamp=model_step_stamp("rdf-md", step_config("rdf-md", rdf=RDF_MD)),
        output:
            rdf=model_file(MODEL_ID, "rdf.csv"),
            info=model_file(MODEL_ID, "rdf_md.json"),
        log:
            model_job_file("logs", "rdf_md"),
        benchmark:
            model_job_file("benchmarks", "rdf_md")
        conda:
            CONDA_ENV
        threads: rule_threads("rdf_md")
        resources:
            **rule_resources("rdf_md"),
        params:
            code=code_stamp("rdf-md"),
            model_id=MODEL_ID,
            cfg=step_config("rdf-md", rdf=RDF_MD),
        shell:
            "tsmlip rdf-md --config-json {params.cfg:q} --model {input.model:q} --model-id {params.model_id:q}"
            " --threads {threads} --out-csv {output.rdf:q} --out-json {output.info:q} > {log:q} 2>&1"


rule rdf_reference:
    input:
        provenance=res("data", "provenance.json"),
    output:
        rdf=res("reference", "rdf.csv"),
        peak=res("reference", "rdf_peak.json"),
    log:
        res("logs", "rdf_reference.log"),
    benchmark:
        res("benchmarks", "rdf_reference.tsv")
    conda:
        CONDA_ENV
    threads: rule_threads("rdf_reference")
    resources:
        **rule_resources("rdf_reference"),
    params:
        code=code_stamp("rdf-md"),
        cfg=step_config("rdf-md", "data.source", rdf=RDF_MD),
    shell:
        "tsmlip rdf-md --config-json {params.cfg:q} --reference --data-provenance {input.provenance:q}"
        " --out-csv {output.rdf:q} --out-json {output.peak:q} > {log:q} 2>&1"


rule rdf_error:
    # one job for every model: a few sums per model against a few seconds of start-up per job
    input:
        rdf=[model_file(m, "rdf.csv") for m in MODEL_IDS],
        info=[model_file(m, "rdf_md.json") for m in MODEL_IDS],
        teachers=[model_file(t, "rdf.csv") for t in RDF_TEACHERS],
        reference=[REFERENCE_RDF] if REFERENCE_RDF else [],
        # its own settings and code; the liquids' reruns reach it through their newer g(r) files
        stamp=rule_stamp(
            "rdf_error",
            "rdf-error",
            step_config("rdf-error", "rdf.experiment", "rdf.peak_fit_halfwidth_A"),
            lambda wildcards: [train_fp(m) for m in MODEL_IDS],
        ),
    output:
        [model_file(m, "rdf_error.json") for m in MODEL_IDS],
    log:
        res("logs", "rdf_error.log"),
    benchmark:
        res("benchmarks", "rdf_error.tsv")
    localrule: True
    conda:
        CONDA_ENV
    threads: rule_threads("rdf_error")
    resources:
        **rule_resources("rdf_error"),
    params:
        code=code_stamp("rdf-error"),
        cfg=step_config("rdf-error", "rdf.experiment", "rdf.peak_fit_halfwidth_A"),
        model_ids=" ".join(shlex.quote(str(m)) for m in MODEL_IDS),
        teacher_ids=" ".join(str(t) for t in RDF_TEACHERS),
        reference=lambda wildcards, input: (
            f"--reference-rdf {shlex.quote(input.reference[0])}" if REFERENCE_RDF else ""
        ),
    shell:
        "tsmlip rdf-error --config-json {params.cfg:q} --model-id {params.model_ids} --rdf {input.rdf:q}"
        " --info {input.info:q} --teacher-rdf {input.teachers:q} --teacher-ids {params.teacher_ids} {params.reference}"
        " --out {output:q} > {log:q} 2>&1"


# The teacher calculator's own liquid (foundation.liquid, docs/foundation.md): the same MD as the models' with the
# calculator on foundation.device; its g(r) is then the reference of every error_vs_reference. Slow on a CPU
# (CHGNet: hours for the default liquid): meant for GPU nodes.
if CALCULATOR_LIQUID:

    rule rdf_calculator:
        input:
            provenance=res("data", "provenance.json"),
        output:
            rdf=res("foundation", "rdf.csv"),
            info=res("foundation", "rdf_md.json"),
        log:
            res("logs", "rdf_calculator.log"),
        benchmark:
            res("benchmarks", "rdf_calculator.tsv")
        conda:
            CONDA_ENV
        threads: rule_threads("rdf_calculator")
        resources:
            **rule_resources("rdf_calculator"),
        params:
            code=code_stamp("rdf-md"),
            # the liquid of the models, on the calculator's device
            cfg=step_config("rdf-md", "foundation.calculator", rdf=dict(RDF_MD, device=config["foundation"]["device"])),
        shell:
            "tsmlip rdf-md --config-json {params.cfg:q} --calculator --data-provenance {input.provenance:q}"
            " --threads {threads} --out-csv {output.rdf:q} --out-json {output.info:q} > {log:q} 2>&1"


# the dataset's coverage (closest pairs, densities, temperatures) against every liquid run
rule figure_coverage:
    input:
        data=DATASET,
        runs=[model_file(m, "rdf_md.json") for m in MODEL_IDS]
        + ([res("reference", "rdf_peak.json")] if RDF_REFERENCE else []),
        stamp=rule_stamp("figure_coverage", "plot-coverage", step_config("plot-coverage")),
    output:
        pdf=res("figures", "coverage.pdf"),
        png=report(
            res("figures", "coverage.png"),
            caption="../report/coverage.rst",
            category="Figures",
            labels={"figure": "coverage", "shows": "training data vs the liquid-RDF runs"},
        ),
    log:
        res("logs", "figures", "coverage.log"),
    localrule: True
    conda:
        CONDA_ENV
    threads: rule_threads("figure_coverage")
    resources:
        **rule_resources("figure_coverage"),
    params:
        code=code_stamp("plot-coverage"),
        cfg=step_config("plot-coverage"),
    shell:
        "tsmlip plot-coverage --config-json {params.cfg:q} --dataset {input.data:q} --rdf-info {input.runs:q}"
        " --pdf {output.pdf:q} --png {output.png:q} > {log:q} 2>&1"


# The seed noise floor of the RDF error: the first teacher runs the same liquid again with
# rdf.noise_seed; the error of that g(r) against the teacher's own (rdf.seed) is what two runs of one
# potential differ by, the resolution of every model-to-teacher RDF error.
NOISE_TEACHER = RDF_TEACHERS[0]


rule rdf_md_noise_seed:
    input:
        model=model_file(NOISE_TEACHER, "model.pt"),
        stamp=rule_stamp(
            "rdf_md_noise_seed",
            "rdf-md",
            step_config("rdf-md", rdf=dict(RDF_MD, seed=RDF_CFG["noise_seed"])),
            lambda w: [train_fp(NOISE_TEACHER)],
        ),
    output:
        rdf=res("rdf_noise", "rdf.csv"),
        info=res("rdf_noise", "rdf_md.json"),
    log:
        res("logs", "rdf_md_noise_seed.log"),
    conda:
        CONDA_ENV
    threads: rule_threads("rdf_md_noise_seed")
    resources:
        **rule_resources("rdf_md_noise_seed"),
    params:
        code=code_stamp("rdf-md"),
        model_id=f"{NOISE_TEACHER} (seed {RDF_CFG['noise_seed']})",
        # the teacher's liquid again, with rdf.noise_seed as its seed
        cfg=step_config("rdf-md", rdf=dict(RDF_MD, seed=RDF_CFG["noise_seed"])),
    shell:
        "tsmlip rdf-md --config-json {params.cfg:q} --model {input.model:q} --model-id {params.model_id:q}"
        " --threads {threads} --out-csv {output.rdf:q} --out-json {output.info:q} > {log:q} 2>&1"


rule rdf_noise_floor:
    input:
        rdf=rules.rdf_md_noise_seed.output.rdf,
        info=rules.rdf_md_noise_seed.output.info,
        teacher=model_file(NOISE_TEACHER, "rdf.csv"),
        stamp=rule_stamp(
            "rdf_noise_floor", "rdf-error", step_config("rdf-error", rdf={"experiment": {"enabled": False}})
        ),
    output:
        RDF_NOISE_FLOOR,
    log:
        res("logs", "rdf_noise_floor.log"),
    localrule: True
    conda:
        CONDA_ENV
    threads: rule_threads("rdf_noise_floor")
    resources:
        **rule_resources("rdf_noise_floor"),
    params:
        code=code_stamp("rdf-error"),
        # two runs of one potential: no comparison with experiment
        cfg=step_config("rdf-error", rdf={"experiment": {"enabled": False}}),
        teacher_id=str(NOISE_TEACHER),
    shell:
        "tsmlip rdf-error --config-json {params.cfg:q} --model-id noise_floor --rdf {input.rdf:q} --info {input.info:q}"
        " --teacher-rdf {input.teacher:q} --teacher-ids {params.teacher_id:q} --out {output:q} > {log:q} 2>&1"
