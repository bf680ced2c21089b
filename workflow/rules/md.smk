# MD cost of every model (Figs 2 and 5): time per MD step per atom, and the most atoms one device holds.
# md_timing: models/<id>/model.pt -> models/<id>/md_timing_<engine>.json   (one job per model and engine)
# max_atoms: models/<id>/model.pt -> models/<id>/max_atoms.json
# Timings are only fair one job at a time on a device: every rule here asks for `md_device=1`; run with
#   snakemake --resources md_device=1 gpu=1 ...   (the default profile sets both)
import json

MD_CFG = config["md"]
MD_CFG_JSON = json.dumps(MD_CFG, sort_keys=True)
MD_ENGINES = MD_CFG["engines"]
MD_ID = "{kind}/{arch}/seed{seed}"


rule md_timing:
    input:
        model=model_file(MD_ID, "model.pt"),
    output:
        model_file(MD_ID, "md_timing_{engine}.json"),
    log:
        res("logs", "md_timing", "{kind}", "{arch}", "seed{seed}_{engine}.log"),
    benchmark:
        res("benchmarks", "md_timing", "{kind}", "{arch}", "seed{seed}_{engine}.tsv")
    wildcard_constraints:
        engine="ase|torch",
    params:
        model_id=MD_ID,
        cfg=MD_CFG_JSON,
    threads: MD_CFG["timing"]["torch_threads"]
    resources:
        mem_mb=MD_CFG["timing"]["mem_mb"],
        runtime=MD_CFG["timing"]["runtime_min"],
        gpu=GPU_JOB,
        md_device=1,
    conda:
        CONDA_ENV
    shell:
        "tsmlip md-timing --model {input.model} --engine {wildcards.engine} --model-id {params.model_id}"
        " --config-json {params.cfg:q} --out {output} > {log} 2>&1"


rule max_atoms:
    input:
        model=model_file(MD_ID, "model.pt"),
    output:
        model_file(MD_ID, "max_atoms.json"),
    log:
        res("logs", "max_atoms", "{kind}", "{arch}", "seed{seed}.log"),
    benchmark:
        res("benchmarks", "max_atoms", "{kind}", "{arch}", "seed{seed}.tsv")
    params:
        model_id=MD_ID,
        cfg=MD_CFG_JSON,
    threads: 1
    resources:
        # CPU: the probe's children may reach about 2 budgets before they are stopped
        mem_mb=int(2 * MD_CFG["probe"]["cpu_memory_budget_MB"]) + 2000,
        runtime=MD_CFG["probe"]["runtime_min"],
        gpu=GPU_JOB,
        md_device=1,
    conda:
        CONDA_ENV
    shell:
        "tsmlip max-atoms --model {input.model} --model-id {params.model_id} --config-json {params.cfg:q}"
        " --out {output} > {log} 2>&1"


# Cost depends only on the architecture: with md.per_architecture one model per architecture is
# measured (the first of teacher, student, control, ... in the config's order) and the tables share it.
MD_MODELS = tsconfig.all_model_ids(config)
if MD_CFG.get("per_architecture", False):
    MD_MODELS = list({m.arch: m for m in reversed(MD_MODELS)}.values())

if MD_CFG["enabled"]:
    for _mid in MD_MODELS:
        TARGETS.extend(model_file(_mid, f"md_timing_{engine}.json") for engine in MD_ENGINES)
        TARGETS.append(model_file(_mid, "max_atoms.json"))
