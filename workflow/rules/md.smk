# MD cost of every model (Figs 2 and 5): time per MD step per atom, and the most atoms one device holds.
# md_timing: models/<id>/model.pt -> models/<id>/md_timing_<engine>.json   (one job per engine: every measured
#   model timed in one process, their timed blocks interleaved, so a passing load falls on all alike)
# max_atoms: models/<id>/model.pt -> models/<id>/max_atoms.json
# Which models are measured (md.enabled, md.per_architecture): common.smk, md_models().
# Timings are only fair one job at a time on a device: every rule here asks for `md_device=1`; run with
#   snakemake --resources md_device=1 gpu=1 ...   (the default profile sets both)
MD_CFG = config["md"]
#: what both rules pass to `tsmlip`: the model's id and the md section
MD_PARAMS = dict(model_id=MODEL_ID, cfg=step_config("md-timing"))
#: both rules hold the device alone (md_device=1, beside their row of the config's resources table)


#: the models whose MD cost is measured (md.per_architecture: one per architecture), timed together per engine
MD_MODELS = md_models()


if MD_MODELS:

    rule md_timing:
        input:
            models=[model_file(m, "model.pt") for m in MD_MODELS],
            # the planned fingerprint (settings, code, every timed model's plan): a rerun without Snakemake's metadata
            stamp=rule_stamp(
                lambda w: f"md_timing_{w.engine}",
                "md-timing",
                MD_PARAMS["cfg"],
                lambda w: [train_fp(m) for m in MD_MODELS],
            ),
        output:
            [model_file(m, "md_timing_{engine}.json") for m in MD_MODELS],
        log:
            res("logs", "md_timing", "{engine}.log"),
        benchmark:
            res("benchmarks", "md_timing", "{engine}.tsv")
        wildcard_constraints:
            engine="ase|torch|lammps|torchsim",
        conda:
            CONDA_ENV
        threads: rule_threads("md_timing")
        resources:
            **rule_resources("md_timing", md_device=1),
        params:
            cfg=MD_PARAMS["cfg"],
            ids=" ".join(shlex.quote(str(m)) for m in MD_MODELS),
            code=code_stamp("md-timing"),
        shell:
            "tsmlip md-timing --config-json {params.cfg:q} --engine {wildcards.engine} --model {input.models:q}"
            " --model-id {params.ids} --out {output:q} > {log:q} 2>&1"


rule max_atoms:
    input:
        model=model_file(MODEL_ID, "model.pt"),
        stamp=model_step_stamp("max-atoms", MD_PARAMS["cfg"], recorded="max_atoms.json"),
    output:
        model_file(MODEL_ID, "max_atoms.json"),
    log:
        model_job_file("logs", "max_atoms"),
    benchmark:
        model_job_file("benchmarks", "max_atoms")
    conda:
        CONDA_ENV
    threads: rule_threads("max_atoms")
    resources:
        **rule_resources("max_atoms", md_device=1),
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
            stamp=rule_stamp(
                "calculator_cost",
                "calculator-cost",
                step_config("calculator-cost"),
                lambda w: [tsprov.planned(*PLAN["source"])],
            ),
        output:
            FOUNDATION_COST,
        log:
            res("logs", "calculator_cost.log"),
        benchmark:
            res("benchmarks", "calculator_cost.tsv")
        conda:
            CONDA_ENV
        threads: rule_threads("calculator_cost")
        resources:
            **rule_resources("calculator_cost", md_device=1),
        params:
            code=code_stamp("calculator-cost"),
            cfg=step_config("calculator-cost"),
        shell:
            "tsmlip calculator-cost --config-json {params.cfg:q} --species-from {input.provenance:q}"
            " --threads {threads} --out {output:q} > {log:q} 2>&1"
