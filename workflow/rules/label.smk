# The teacher's atom energies for every configuration (all splits): the students' extra targets; and the
# labels and data of the two kinds beyond the paper (docs/beyond.md).
# A calculator as the teacher (foundation.calculator, docs/foundation.md): the data stage's geometries relabelled
# with its energies, forces and per-atom energies (dataset.npz, which every later rule reads) and its atom energies
# as labels; resumable in chunks under scratch/, the outputs written only when every configuration is labelled.
if FOUNDATION:

    rule label_calculator:
        input:
            data=SOURCE_DATASET,
            stamp=stamp_input("dataset"),
        output:
            data=DATASET,
            provenance=res("data", "provenance.json"),
            labels=CALCULATOR_LABELS,
            info=CALCULATOR_LABELS.replace(".npz", ".json"),
        log:
            res("logs", "label_calculator.log"),
        benchmark:
            res("benchmarks", "label_calculator.tsv")
        conda:
            CONDA_ENV
        threads: rule_threads("label_calculator")
        resources:
            **rule_resources("label_calculator"),
        params:
            code=code_stamp("label-calculator"),
            cfg=step_config("label-calculator"),
            scratch=res("scratch", "label_calculator"),
        shell:
            "tsmlip label-calculator --config-json {params.cfg:q} --dataset {input.data:q} --threads {threads}"
            " --scratch {params.scratch:q} --out-dataset {output.data:q} --out-labels {output.labels:q} > {log:q} 2>&1"


# the HIPNN teacher(s) label the students, unless the calculator does (foundation.students_learn: calculator)
if HIPNN_LABELS:

    rule label_atom_energies:
        input:
            teachers=label_teachers,
            data=DATASET,
            split=SPLIT,
            stamp=stamp_input("labels"),
        output:
            labels=LABELS,
            info=res("labels", "atom_energies.json"),
        log:
            res("logs", "label_atom_energies.log"),
        benchmark:
            res("benchmarks", "label_atom_energies.tsv")
        conda:
            CONDA_ENV
        threads: rule_threads("label_atom_energies")
        resources:
            **rule_resources("label_atom_energies"),
        params:
            code=code_stamp("label"),
            cfg=step_config("label"),
            teacher_ids=[str(m) for m in LABEL_TEACHERS],
        shell:
            "tsmlip label --config-json {params.cfg:q} --teacher {input.teachers:q}"
            " --teacher-ids {params.teacher_ids:q} --dataset {input.data:q} --split {input.split:q}"
            " --device cpu --out {output.labels:q} > {log:q} 2>&1"


# student_oracle: the reference potential's own per-atom energies (config.validate refuses data without them)
rule label_oracle:
    input:
        data=DATASET,
        stamp=stamp_input("oracle"),
    output:
        labels=ORACLE_LABELS,
        info=res("labels", "oracle_atom_energies.json"),
    log:
        res("logs", "label_oracle.log"),
    conda:
        CONDA_ENV
    threads: rule_threads("label_oracle")
    resources:
        **rule_resources("label_oracle"),
    params:
        code=code_stamp("label-oracle"),
        cfg=step_config("label-oracle"),
    shell:
        "tsmlip label-oracle --config-json {params.cfg:q} --dataset {input.data:q} --out {output.labels:q} > {log:q} 2>&1"


# student_synthetic: configurations from the teacher's own MD, labelled by the teacher(s), appended to the
# ground truth (training split only)
rule synthesize:
    input:
        teachers=label_teachers,
        data=DATASET,
        split=SPLIT,
        labels=LABELS,
        stamp=stamp_input("synthetic"),
    output:
        **SYNTHETIC,
        info=res("synthetic", "synthetic.json"),
        provenance=res("synthetic", "provenance.json"),
    log:
        res("logs", "synthesize.log"),
    benchmark:
        res("benchmarks", "synthesize.tsv")
    conda:
        CONDA_ENV
    threads: rule_threads("synthesize")
    resources:
        **rule_resources("synthesize"),
    params:
        code=code_stamp("synthesize"),
        cfg=step_config("synthesize"),
        teacher_ids=[str(m) for m in LABEL_TEACHERS],
        out_dir=lambda w, output: os.path.dirname(output.dataset),
    shell:
        "tsmlip synthesize --config-json {params.cfg:q} --teacher {input.teachers:q}"
        " --teacher-ids {params.teacher_ids:q} --dataset {input.data:q}"
        " --split {input.split:q} --labels {input.labels:q} --threads {threads} --out-dir {params.out_dir:q}"
        " > {log:q} 2>&1"
