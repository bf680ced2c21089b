# Aggregation: per-model files -> tidy tables -> the paper's figures, the claims table, the HTML report.
# `aggregate` reads every model's files once, exactly the files its rule names as input (common.smk:
# analysis_files; a stage that is off, e.g. md.enabled: false, adds none and leaves its columns NaN);
# every figure is a job of the one `figure` rule reading only the tables, so
# `snakemake results/figures/<name>.pdf` after a full run replans nothing but that figure.
import os

FIGURES_DIR = res("figures")
#: the teacher's labels (with their check against the reference's atom energies) exist when some model reads them
CLAIMS_LABELS = (
    [res("labels", "atom_energies.json")] if any(m.kind in tskinds.DISTILLED_KINDS for m in MODEL_IDS) else []
)


rule aggregate:
    input:
        files=[model_file(m, name) for m in MODEL_IDS for name in ("metrics.json", "curve.csv")] + analysis_files(),
        budget_check=budget_check_metrics(),
        # its settings and code, and the plans of the models it tabulates
        stamp=rule_stamp("aggregate", "aggregate", step_config("aggregate"), lambda w: [train_fp(m) for m in MODEL_IDS]),
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
    log:
        res("logs", "aggregate", "aggregate.log"),
    benchmark:
        res("benchmarks", "aggregate", "aggregate.tsv")
    localrule: True
    conda:
        CONDA_ENV
    threads: rule_threads("aggregate")
    resources:
        **rule_resources("aggregate"),
    params:
        code=code_stamp("aggregate"),
        cfg=step_config("aggregate"),
        # the settings the per-model MD and RDF files must record (a copied-in file of other settings is refused)
        expect=" ".join(
            f"{step}={tsprov.settings_hash(cfg)}"
            for step, cfg in (
                ("md-timing", step_config("md-timing")),
                ("max-atoms", step_config("md-timing")),
                ("rdf-error", step_config("rdf-error", "rdf.experiment", "rdf.peak_fit_halfwidth_A")),
                ("rdf-md", step_config("rdf-md", rdf=RDF_MD)),
            )
        ),
        budget_check=lambda wildcards, input: (
            f"--budget-check-files {' '.join(shlex.quote(f) for f in input.budget_check)}"
            if input.budget_check
            else ""
        ),
    shell:
        "tsmlip aggregate --config-json {params.cfg:q} --files {input.files:q} {params.budget_check}"
        " --expect-settings {params.expect}"
        " --out-models {output.models:q} --out-summary {output.summary:q}"
        " --out-curves {output.curves:q} --out-models-html {output.models_html:q}"
        " --out-summary-html {output.summary_html:q} > {log:q} 2>&1"


rule claims:
    input:
        models=rules.aggregate.output.models,
        labels=CLAIMS_LABELS,
        noise_floor=RDF_NOISE_FLOOR,
        foundation_cost=[FOUNDATION_COST] if FOUNDATION_COST_ON else [],
        classical=[CLASSICAL_TABLE] if CLASSICAL else [],
        stamp=rule_stamp("claims", "claims", step_config("claims")),
    output:
        csv=os.path.join(TABLES, "claims.csv"),
        md=os.path.join(TABLES, "claims.md"),
        budget_check=os.path.join(TABLES, "budget_check.csv"),
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
            labels={
                "table": "headline",
                "shows": "best student vs the teacher and its control: speed, memory, accuracy",
            },
        ),
    log:
        res("logs", "aggregate", "claims.log"),
    benchmark:
        res("benchmarks", "aggregate", "claims.tsv")
    localrule: True
    conda:
        CONDA_ENV
    threads: rule_threads("claims")
    resources:
        **rule_resources("claims"),
    params:
        code=code_stamp("claims"),
        cfg=step_config("claims"),
        labels=lambda wildcards, input: f"--labels {shlex.quote(input.labels[0])}" if input.labels else "",
        foundation_cost=lambda wildcards, input: (
            f"--foundation-cost {shlex.quote(input.foundation_cost[0])}" if input.foundation_cost else ""
        ),
        classical=lambda wildcards, input: (f"--classical {shlex.quote(input.classical[0])}" if input.classical else ""),
    shell:
        "tsmlip claims --config-json {params.cfg:q} --models {input.models:q} {params.labels}"
        " --rdf-noise-floor {input.noise_floor:q} {params.foundation_cost} {params.classical}"
        " --out-csv {output.csv:q} --out-md {output.md:q} --out-html {output.html:q}"
        " --out-budget-check {output.budget_check:q} --out-headline-csv {output.headline_csv:q} --out-headline-md {output.headline_md:q}"
        " --out-headline-html {output.headline_html:q} > {log:q} 2>&1"


rule born_again_table:
    input:
        models=rules.aggregate.output.models,
        stamp=rule_stamp(
            "born_again_table",
            "born-again-table",
            step_config(
                "born-again-table",
                paper_reference={k: v for k, v in config.get("paper_reference", {}).items() if k != "md_cost"},
            ),
        ),
    output:
        csv=os.path.join(TABLES, "born_again.csv"),
        md=os.path.join(TABLES, "born_again.md"),
        html=report(
            os.path.join(TABLES, "born_again.html"),
            caption="../report/born_again_table.rst",
            category="Tables",
            labels={"table": "born_again", "shows": "teacher vs Born-Again students (Sec. 3.5)"},
        ),
    log:
        res("logs", "aggregate", "born_again_table.log"),
    benchmark:
        res("benchmarks", "aggregate", "born_again_table.tsv")
    localrule: True
    conda:
        CONDA_ENV
    threads: rule_threads("born_again_table")
    resources:
        **rule_resources("born_again_table"),
    params:
        code=code_stamp("born-again-table"),
        # the published numbers live once, in config (paper_reference); the MD-cost entry is the GPU
        # campaign's (scripts/gpu_campaign.py), not this table's
        cfg=step_config(
            "born-again-table",
            paper_reference={k: v for k, v in config.get("paper_reference", {}).items() if k != "md_cost"},
        ),
    shell:
        "tsmlip born-again-table --config-json {params.cfg:q} --models {input.models:q} --out-csv {output.csv:q}"
        " --out-md {output.md:q} --out-html {output.html:q} > {log:q} 2>&1"


# ---- figures: one job each of the `figure` rule; `tsmlip plot <name>` ----
rule figure:
    input:
        unpack(figure_tables),
        stamp=rule_stamp(lambda w: f"figure/{w.figure}", "plot", figure_config),
    output:
        pdf=os.path.join(FIGURES_DIR, "{figure}.pdf"),
        png=report(
            os.path.join(FIGURES_DIR, "{figure}.png"),
            caption="../report/figures.rst",
            category="Figures",
            labels=figure_labels,
        ),
    log:
        res("logs", "figures", "{figure}.log"),
    benchmark:
        res("benchmarks", "figures", "{figure}.tsv")
    wildcard_constraints:
        figure="|".join(FIGURES),
    localrule: True
    conda:
        CONDA_ENV
    threads: rule_threads("figure")
    resources:
        **rule_resources("figure"),
    params:
        code=code_stamp("plot"),
        cfg=figure_config,
        options=figure_options,
    shell:
        "tsmlip plot {wildcards.figure:q} --config-json {params.cfg:q} {params.options} --pdf {output.pdf:q}"
        " --png {output.png:q} > {log:q} 2>&1"


# The configurations the teacher cannot fit (tsmlip.data_quality): the first teacher's per-configuration errors
# against the dataset's spread, worst first; candidates for labelling faults the data checks let through.
rule data_quality:
    input:
        teacher=model_file(tsmodel_ids.teacher_ids(config)[0], "model.pt"),
        data=DATASET,
        split=SPLIT,
    output:
        csv=report(
            os.path.join(TABLES, "data_quality.csv"),
            caption="../report/data_quality.rst",
            category="Tables",
            labels={"table": "data_quality", "shows": "the configurations the teacher fits worst"},
        ),
    log:
        res("logs", "aggregate", "data_quality.log"),
    conda:
        CONDA_ENV
    threads: rule_threads("data_quality")
    resources:
        **rule_resources("data_quality"),
    params:
        code=code_stamp("data-quality"),
        cfg=step_config("data-quality"),
    shell:
        "tsmlip data-quality --config-json {params.cfg:q} --teacher {input.teacher:q} --dataset {input.data:q}"
        " --split {input.split:q} --out {output.csv:q} > {log:q} 2>&1"
