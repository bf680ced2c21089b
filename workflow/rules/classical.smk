# The classical anchor (config classical:, tsmlip.classical, docs/md.md "The classical anchor"): the potential a user
# runs when an MLIP is too slow (EAM in the default), in LAMMPS, beside the models in every table.
# classical_errors:    data/dataset.npz + split.npz -> classical/errors.json (test split vs the labels)
# classical_md_timing: classical/md_timing_<engine>.json (the md: protocol; engines classical.engines)
# classical_rdf_md:    classical/rdf.csv + rdf_md.json (the rdf: liquid, ASE Langevin with the models' seed)
# classical_rdf_error: classical/rdf_error.json (against the teachers' g(r), the reference's and experiment's)
# classical_table:     tables/classical.csv (one row: what the headline, claims and the Pareto figure read)
CLASSICAL_ID = f"classical:{config['classical']['name']}"
#: the data's fingerprint: the species the cost and the liquid read from data/provenance.json
CLASSICAL_SOURCE_FP = lambda w: [tsprov.planned(*PLAN["source"])]


if CLASSICAL:

    rule classical_errors:
        input:
            data=DATASET,
            split=SPLIT,
            stamp=rule_stamp(
                "classical_errors",
                "classical-errors",
                step_config("classical-errors"),
                lambda w: [_DATA_FP, _SPLIT_FP],
            ),
        output:
            CLASSICAL_FILES["errors"],
        log:
            res("logs", "classical", "errors.log"),
        benchmark:
            res("benchmarks", "classical", "errors.tsv")
        conda:
            CONDA_ENV
        threads: rule_threads("classical_errors")
        resources:
            **rule_resources("classical_errors"),
        params:
            code=code_stamp("classical-errors"),
            cfg=step_config("classical-errors"),
        shell:
            "tsmlip classical-errors --config-json {params.cfg:q} --dataset {input.data:q} --split {input.split:q}"
            " --out {output:q} > {log:q} 2>&1"

    rule classical_md_timing:
        input:
            provenance=res("data", "provenance.json"),
            stamp=rule_stamp(
                lambda w: f"classical_md_timing/{w.engine}",
                "classical-cost",
                step_config("classical-cost"),
                CLASSICAL_SOURCE_FP,
            ),
        output:
            res("classical", "md_timing_{engine}.json"),
        log:
            res("logs", "classical", "md_timing_{engine}.log"),
        benchmark:
            res("benchmarks", "classical", "md_timing_{engine}.tsv")
        wildcard_constraints:
            engine="ase|lammps",
        conda:
            CONDA_ENV
        threads: rule_threads("classical_md_timing")
        resources:
            **rule_resources("classical_md_timing", md_device=1),
        params:
            code=code_stamp("classical-cost"),
            cfg=step_config("classical-cost"),
        shell:
            "tsmlip classical-cost --config-json {params.cfg:q} --engine {wildcards.engine}"
            " --species-from {input.provenance:q} --out {output:q} > {log:q} 2>&1"

    rule classical_rdf_md:
        input:
            provenance=res("data", "provenance.json"),
            stamp=rule_stamp(
                "classical_rdf_md",
                "rdf-md",
                step_config("rdf-md", "classical", rdf=RDF_MD),
                CLASSICAL_SOURCE_FP,
            ),
        output:
            rdf=res("classical", "rdf.csv"),
            info=res("classical", "rdf_md.json"),
        log:
            res("logs", "classical", "rdf_md.log"),
        benchmark:
            res("benchmarks", "classical", "rdf_md.tsv")
        conda:
            CONDA_ENV
        threads: rule_threads("classical_rdf_md")
        resources:
            **rule_resources("classical_rdf_md"),
        params:
            code=code_stamp("rdf-md"),
            cfg=step_config("rdf-md", "classical", rdf=RDF_MD),
        shell:
            "tsmlip rdf-md --config-json {params.cfg:q} --classical --data-provenance {input.provenance:q}"
            " --out-csv {output.rdf:q} --out-json {output.info:q} > {log:q} 2>&1"

    rule classical_rdf_error:
        input:
            rdf=rules.classical_rdf_md.output.rdf,
            info=rules.classical_rdf_md.output.info,
            teachers=[model_file(t, "rdf.csv") for t in RDF_TEACHERS],
            reference=[REFERENCE_RDF] if REFERENCE_RDF else [],
            stamp=rule_stamp(
                "classical_rdf_error",
                "rdf-error",
                step_config("rdf-error", "rdf.experiment", "rdf.peak_fit_halfwidth_A"),
            ),
        output:
            CLASSICAL_FILES["rdf_error"],
        log:
            res("logs", "classical", "rdf_error.log"),
        localrule: True
        conda:
            CONDA_ENV
        threads: rule_threads("classical_rdf_error")
        resources:
            **rule_resources("classical_rdf_error"),
        params:
            code=code_stamp("rdf-error"),
            cfg=step_config("rdf-error", "rdf.experiment", "rdf.peak_fit_halfwidth_A"),
            model_id=CLASSICAL_ID,
            teacher_ids=" ".join(str(t) for t in RDF_TEACHERS),
            reference=lambda wildcards, input: (
                f"--reference-rdf {shlex.quote(input.reference[0])}" if REFERENCE_RDF else ""
            ),
        shell:
            "tsmlip rdf-error --config-json {params.cfg:q} --model-id {params.model_id:q} --rdf {input.rdf:q}"
            " --info {input.info:q} --teacher-rdf {input.teachers:q} --teacher-ids {params.teacher_ids}"
            " {params.reference} --out {output:q} > {log:q} 2>&1"

    rule classical_table:
        input:
            files=classical_files(),
            stamp=rule_stamp("classical_table", "classical-table", step_config("classical-table")),
        output:
            CLASSICAL_TABLE,
        log:
            res("logs", "classical", "table.log"),
        localrule: True
        conda:
            CONDA_ENV
        threads: rule_threads("classical_table")
        resources:
            **rule_resources("classical_table"),
        params:
            code=code_stamp("classical-table"),
            cfg=step_config("classical-table"),
        shell:
            "tsmlip classical-table --config-json {params.cfg:q} --files {input.files:q} --out {output:q} > {log:q} 2>&1"
