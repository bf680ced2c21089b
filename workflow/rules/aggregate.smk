# Aggregation: per-model files -> tidy tables -> the paper's figures, the claims table, the HTML report.
# `aggregate` reads every model's files once; each figure is its own rule reading only the tables, so
# `snakemake results/figures/<name>.pdf` after a full run replans nothing but that figure.
# This file must be included after the stage files: it reads which per-model MD/RDF files they put in
# TARGETS (a stage that is off, e.g. md.enabled: false, adds none: its figures are not targets and its
# columns are NaN).
import json
import os

from tsmlip import aggregate as tsaggregate

AGG = config.get("aggregate", {})
AGG_JSON = json.dumps(AGG, sort_keys=True)
MODELS_DIR = res("models")
TABLES = res("tables")
FIGURES_DIR = res("figures")
AGG_MODEL_IDS = tsconfig.all_model_ids(config)
#: per-model MD/RDF outputs that the stage files (included before this one) declared for `rule all`
AGG_ANALYSIS_FILES = tsaggregate.analysis_files(TARGETS, MODELS_DIR)
AGG_INPUTS = [model_file(m, name) for m in AGG_MODEL_IDS for name in ("metrics.json", "curve.csv")]
AGG_INPUTS += AGG_ANALYSIS_FILES
HAVE_TIMING = any(tsaggregate.MD_TIMING_RE.match(os.path.basename(f)) for f in AGG_ANALYSIS_FILES)
HAVE_MAX_ATOMS = any(os.path.basename(f) == "max_atoms.json" for f in AGG_ANALYSIS_FILES)
HAVE_SWEEP = any(m.kind in ("student", "control", "control_fw") for m in AGG_MODEL_IDS)
HAVE_BORN_AGAIN = any(m.kind.startswith("born_again") for m in AGG_MODEL_IDS)
#: the teacher's labels (with their check against the reference's atom energies) exist when some model reads them
CLAIMS_LABELS = (
    [res("labels", "atom_energies.json")] if any(m.kind in tsconfig.DISTILLED_KINDS for m in AGG_MODEL_IDS) else []
)
#: the RDF error's seed noise floor (rdf.smk), stated on the RDF rows, when the RDF stage runs
CLAIMS_NOISE_FLOOR = [f for f in TARGETS if f == res("rdf_noise", "noise_floor.json")]


rule aggregate:
    input:
        files=AGG_INPUTS,
    output:
        models=os.path.join(TABLES, "models.csv"),
        summary=os.path.join(TABLES, "summary.csv"),
        curves=os.path.join(TABLES, "curves.csv"),
        models_html=report(
            os.path.join(TABLES, "models.html"),
            caption="../report/models.rst",
            category="Tables",
            labels={"table": "models", "shows": "every trained model, one row each"},
        ),
        summary_html=report(
            os.path.join(TABLES, "summary.html"),
            caption="../report/summary.rst",
            category="Tables",
            labels={"table": "summary", "shows": "mean and std over seeds per kind and architecture"},
        ),
    params:
        models_dir=RESULTS / "models",
        ids=" ".join(str(m) for m in AGG_MODEL_IDS),
        optional=" ".join(sorted({os.path.basename(f) for f in AGG_ANALYSIS_FILES})),
        factor=AGG["learning_speed_factor"],
        max_late=AGG["convergence_max_late_improvement"],
    log:
        res("logs", "aggregate", "aggregate.log"),
    benchmark:
        res("benchmarks", "aggregate", "aggregate.tsv")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    conda:
        CONDA_ENV
    shell:
        "tsmlip aggregate --models-dir {params.models_dir} --model-ids {params.ids} --optional {params.optional}"
        " --learning-speed-factor {params.factor} --convergence-max-late-improvement {params.max_late}"
        " --out-models {output.models} --out-summary {output.summary}"
        " --out-curves {output.curves} --out-models-html {output.models_html}"
        " --out-summary-html {output.summary_html} > {log} 2>&1"


rule claims:
    input:
        models=rules.aggregate.output.models,
        labels=CLAIMS_LABELS,
        noise_floor=CLAIMS_NOISE_FLOOR,
    output:
        csv=os.path.join(TABLES, "claims.csv"),
        md=os.path.join(TABLES, "claims.md"),
        html=report(
            os.path.join(TABLES, "claims.html"),
            caption="../report/claims.rst",
            category="Tables",
            labels={"table": "claims", "shows": "the paper's claims tested on this run, with verdicts"},
        ),
        headline_csv=os.path.join(TABLES, "headline.csv"),
        headline_md=os.path.join(TABLES, "headline.md"),
        headline_html=report(
            os.path.join(TABLES, "headline.html"),
            caption="../report/headline.rst",
            category="Tables",
            labels={"table": "headline", "shows": "best student vs the teacher and its control: speed, memory, accuracy"},
        ),
    params:
        cfg=AGG_JSON,
        labels=lambda wildcards, input: f"--labels {input.labels}" if input.labels else "",
        noise_floor=lambda wildcards, input: (
            f"--rdf-noise-floor {input.noise_floor}" if input.noise_floor else ""
        ),
    log:
        res("logs", "aggregate", "claims.log"),
    benchmark:
        res("benchmarks", "aggregate", "claims.tsv")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        CONDA_ENV
    shell:
        "tsmlip claims --models {input.models} {params.labels} {params.noise_floor} --config-json {params.cfg:q}"
        " --out-csv {output.csv} --out-md {output.md} --out-html {output.html}"
        " --out-headline-csv {output.headline_csv} --out-headline-md {output.headline_md}"
        " --out-headline-html {output.headline_html} > {log} 2>&1"


rule born_again_table:
    input:
        models=rules.aggregate.output.models,
    output:
        csv=os.path.join(TABLES, "born_again.csv"),
        md=os.path.join(TABLES, "born_again.md"),
        html=report(
            os.path.join(TABLES, "born_again.html"),
            caption="../report/born_again_table.rst",
            category="Tables",
            labels={"table": "born_again", "shows": "teacher vs Born-Again students (Sec. 3.5)"},
        ),
    params:
        # the published numbers live once, in config (paper_reference)
        paper=json.dumps(config.get("paper_reference", {}), sort_keys=True),
        data_source=config["data"]["source"],
    log:
        res("logs", "aggregate", "born_again_table.log"),
    benchmark:
        res("benchmarks", "aggregate", "born_again_table.tsv")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        CONDA_ENV
    shell:
        "tsmlip born-again-table --models {input.models} --out-csv {output.csv} --out-md {output.md}"
        " --out-html {output.html} --paper-reference {params.paper:q} --data-source {params.data_source}"
        " > {log} 2>&1"


# ---- figures: one rule each; `tsmlip plot <name>` ----
PLOT_RESOURCES = dict(mem_mb=1500, runtime=5)


rule figure_pareto_time:
    input:
        models=rules.aggregate.output.models,
    output:
        pdf=os.path.join(FIGURES_DIR, "pareto_time.pdf"),
        png=report(
            os.path.join(FIGURES_DIR, "pareto_time.png"),
            caption="../report/pareto_time.rst",
            category="Figures",
            labels={"figure": "Fig. 2A", "shows": "test force RMSE vs MD time per step per atom (Pareto fronts)"},
        ),
    params:
        dpi=AGG["dpi"],
    log:
        res("logs", "figures", "pareto_time.log"),
    benchmark:
        res("benchmarks", "figures", "pareto_time.tsv")
    threads: 1
    resources:
        **PLOT_RESOURCES,
    conda:
        CONDA_ENV
    shell:
        "tsmlip plot pareto_time --models {input.models} --pdf {output.pdf} --png {output.png}"
        " --dpi {params.dpi} > {log} 2>&1"


rule figure_pareto_memory:
    input:
        models=rules.aggregate.output.models,
    output:
        pdf=os.path.join(FIGURES_DIR, "pareto_memory.pdf"),
        png=report(
            os.path.join(FIGURES_DIR, "pareto_memory.png"),
            caption="../report/pareto_memory.rst",
            category="Figures",
            labels={"figure": "Fig. 2B", "shows": "test force RMSE vs memory per atom (Pareto fronts)"},
        ),
    params:
        dpi=AGG["dpi"],
    log:
        res("logs", "figures", "pareto_memory.log"),
    benchmark:
        res("benchmarks", "figures", "pareto_memory.tsv")
    threads: 1
    resources:
        **PLOT_RESOURCES,
    conda:
        CONDA_ENV
    shell:
        "tsmlip plot pareto_memory --models {input.models} --pdf {output.pdf} --png {output.png}"
        " --dpi {params.dpi} > {log} 2>&1"


rule figure_capacity:
    input:
        models=rules.aggregate.output.models,
    output:
        pdf=os.path.join(FIGURES_DIR, "capacity.pdf"),
        png=report(
            os.path.join(FIGURES_DIR, "capacity.png"),
            caption="../report/capacity.rst",
            category="Figures",
            labels={"figure": "Fig. 3", "shows": "force, energy and RDF errors vs number of weights"},
        ),
    params:
        dpi=AGG["dpi"],
    log:
        res("logs", "figures", "capacity.log"),
    benchmark:
        res("benchmarks", "figures", "capacity.tsv")
    threads: 1
    resources:
        **PLOT_RESOURCES,
    conda:
        CONDA_ENV
    shell:
        "tsmlip plot capacity --models {input.models} --pdf {output.pdf} --png {output.png}"
        " --dpi {params.dpi} > {log} 2>&1"


rule figure_learning_curves:
    input:
        models=rules.aggregate.output.models,
        curves=rules.aggregate.output.curves,
    output:
        pdf=os.path.join(FIGURES_DIR, "learning_curves.pdf"),
        png=report(
            os.path.join(FIGURES_DIR, "learning_curves.png"),
            caption="../report/learning_curves.rst",
            category="Figures",
            labels={"figure": "Fig. 4", "shows": "training and validation force RMSE vs epoch"},
        ),
    params:
        dpi=AGG["dpi"],
        arch=AGG["curves_arch"] or tsconfig.Arch.from_dict(config["sweep"]["base"]).tag,
    log:
        res("logs", "figures", "learning_curves.log"),
    benchmark:
        res("benchmarks", "figures", "learning_curves.tsv")
    threads: 1
    resources:
        **PLOT_RESOURCES,
    conda:
        CONDA_ENV
    shell:
        "tsmlip plot learning_curves --models {input.models} --curves {input.curves} --arch {params.arch}"
        " --pdf {output.pdf} --png {output.png} --dpi {params.dpi} > {log} 2>&1"


rule figure_scaling:
    input:
        models=rules.aggregate.output.models,
    output:
        pdf=os.path.join(FIGURES_DIR, "scaling.pdf"),
        png=report(
            os.path.join(FIGURES_DIR, "scaling.png"),
            caption="../report/scaling.rst",
            category="Figures",
            labels={"figure": "Fig. 5", "shows": "MD time per step per atom and maximum atoms vs number of weights"},
        ),
    params:
        dpi=AGG["dpi"],
    log:
        res("logs", "figures", "scaling.log"),
    benchmark:
        res("benchmarks", "figures", "scaling.tsv")
    threads: 1
    resources:
        **PLOT_RESOURCES,
    conda:
        CONDA_ENV
    shell:
        "tsmlip plot scaling --models {input.models} --pdf {output.pdf} --png {output.png}"
        " --dpi {params.dpi} > {log} 2>&1"


rule figure_born_again:
    input:
        table=rules.born_again_table.output.csv,
    output:
        pdf=os.path.join(FIGURES_DIR, "born_again.pdf"),
        png=report(
            os.path.join(FIGURES_DIR, "born_again.png"),
            caption="../report/born_again.rst",
            category="Figures",
            labels={"figure": "Sec. 3.5", "shows": "teacher vs Born-Again students (bar plot)"},
        ),
    params:
        dpi=AGG["dpi"],
    log:
        res("logs", "figures", "born_again.log"),
    benchmark:
        res("benchmarks", "figures", "born_again.tsv")
    threads: 1
    resources:
        **PLOT_RESOURCES,
    conda:
        CONDA_ENV
    shell:
        "tsmlip plot born_again --born-again {input.table} --pdf {output.pdf} --png {output.png}"
        " --dpi {params.dpi} > {log} 2>&1"


#: figures of this run: a figure whose data the configuration does not produce is not a target
FIGURE_NAMES = (
    (["pareto_time"] if HAVE_TIMING and HAVE_SWEEP else [])
    + (["pareto_memory"] if HAVE_MAX_ATOMS and HAVE_SWEEP else [])
    + (["capacity", "learning_curves"] if HAVE_SWEEP else [])
    + (["scaling"] if HAVE_TIMING or HAVE_MAX_ATOMS else [])
    + (["born_again"] if HAVE_BORN_AGAIN else [])
)
TARGETS.extend(os.path.join(FIGURES_DIR, f"{name}.{ext}") for name in FIGURE_NAMES for ext in ("pdf", "png"))
TARGETS.extend(rules.aggregate.output)
TARGETS.extend(rules.claims.output)
if HAVE_BORN_AGAIN:
    TARGETS.extend(rules.born_again_table.output)
