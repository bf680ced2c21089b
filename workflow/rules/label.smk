# The teacher's atom energies for every configuration (all splits): the students' extra targets.
rule label_atom_energies:
    input:
        teachers=label_teachers,
        data=DATASET,
    output:
        labels=LABELS,
        info=res("labels", "atom_energies.json"),
    log:
        res("logs", "label_atom_energies.log"),
    benchmark:
        res("benchmarks", "label_atom_energies.tsv")
    conda:
        CONDA_ENV
    threads: config["training"]["torch_threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        choice=config["labels"]["teacher"],
        tol=config["labels"]["sum_tolerance_eV"],
    shell:
        "tsmlip label --teacher {input.teachers} --choice {params.choice} --dataset {input.data}"
        " --tolerance {params.tol} --device cpu --out {output.labels} > {log} 2>&1"
