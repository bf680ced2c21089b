# MD cost of every model (Figs 2 and 5): time per MD step per atom, and the most atoms one device holds.
# md_timing: models/<id>/model.pt -> models/<id>/md_timing_<engine>.json   (one job per model and engine)
# max_atoms: models/<id>/model.pt -> models/<id>/max_atoms.json
# Which models are measured (md.enabled, md.per_architecture): common.smk, md_models().
# Timings are only fair one job at a time on a device: every rule here asks for `md_device=1`; run with
#   snakemake --resources md_device=1 gpu=1 ...   (the default profile sets both)
MD_CFG = config["md"]
#: what both rules pass to `tsmlip`: the model's id and the md section
MD_PARAMS = dict(model_id=MODEL_ID, cfg=step_config("md-timing"))
#: both rules hold the device alone (md_device) and, where this machine has one, the GPU
MD_DEVICE = dict(gpu=gpu_job, md_device=1)


rule md_timing:
    input:
        model=model_file(MODEL_ID, "model.pt"),
        # the planned fingerprint (settings, code, the model's plan): a rerun without Snakemake's metadata
        stamp=model_step_stamp("md-timing", MD_PARAMS["cfg"], lambda w: f"md_timing_{w.engine}"),
    output:
        model_file(MODEL_ID, "md_timing_{engine}.json"),
    log:
        model_job_file("logs", "md_timing", "_{engine}"),
    benchmark:
        model_job_file("benchmarks", "md_timing", "_{engine}")
    wildcard_constraints:
        engine="ase|torch|lammps|torchsim",
    conda:
        CONDA_ENV
    threads: MD_CFG["timing"]["torch_threads"]
    resources:
        **MD_DEVICE,
        mem_mb=MD_CFG["timing"]["mem_mb"],
        runtime=MD_CFG["timing"]["runtime_min"],
    params:
        **MD_PARAMS,
        code=code_stamp("md-timing"),
    shell:
        "tsmlip md-timing --config-json {params.cfg:q} --model {input.model:q} --engine {wildcards.engine}"
        " --model-id {params.model_id:q} --out {output:q} > {log:q} 2>&1"


rule max_atoms:
    input:
        model=model_file(MODEL_ID, "model.pt"),
        stamp=model_step_stamp("max-atoms", MD_PARAMS["cfg"]),
    output:
        model_file(MODEL_ID, "max_atoms.json"),
    log:
        model_job_file("logs", "max_atoms"),
    benchmark:
        model_job_file("benchmarks", "max_atoms")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **MD_DEVICE,
        # CPU: the probe's children may reach about 2 budgets before they are stopped
        mem_mb=int(2 * MD_CFG["probe"]["cpu_memory_budget_MB"]) + 2000,
        runtime=MD_CFG["probe"]["runtime_min"],
    params:
        **MD_PARAMS,
        code=code_stamp("max-atoms"),
    shell:
        "tsmlip max-atoms --config-json {params.cfg:q} --model {input.model:q} --model-id {params.model_id:q}"
        " --out {output:q} > {log:q} 2>&1"


# The teacher calculator's own MD cost (foundation.cost, docs/foundation.md): time per atom-step and memory per
# atom by the models' protocol on a smaller system; the headline table's student-vs-foundation ratios.
if FOUNDATION and config["foundation"]["cost"]["enabled"]:

    rule calculator_cost:
        input:
            provenance=res("data", "provenance.json"),
            stamp=rule_stamp("calculator_cost", "calculator-cost", step_config("calculator-cost"),
                             lambda w: [tsprov.planned(*PLAN["source"])]),
        output:
            FOUNDATION_COST,
        log:
            res("logs", "calculator_cost.log"),
        benchmark:
            res("benchmarks", "calculator_cost.tsv")
        conda:
            CONDA_ENV
        threads: config["foundation"]["torch_threads"]
        resources:
            gpu=gpu_job_on(config["foundation"]["device"]),
            md_device=1,
            mem_mb=config["foundation"]["mem_mb"],
            runtime=config["foundation"]["cost"]["runtime_min"],
        params:
            code=code_stamp("calculator-cost"),
            cfg=step_config("calculator-cost"),
        shell:
            "tsmlip calculator-cost --config-json {params.cfg:q} --species-from {input.provenance:q}"
            " --threads {threads} --out {output:q} > {log:q} 2>&1"
