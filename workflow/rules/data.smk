# Data stage: the dataset (generated with EMT, or converted from ANI-Al HDF5 / extended XYZ) and the
# one train/valid/test split that every model reads.
if config["data"]["source"] == "emt":

    rule generate_dataset:
        output:
            data=DATASET,
            provenance=res("data", "provenance.json"),
        params:
            emt=json.dumps(config["data"]["emt"]),
            min_distance=config["data"]["min_distance_A"],
        log:
            res("logs", "generate_dataset.log"),
        benchmark:
            res("benchmarks", "generate_dataset.tsv")
        threads: 1
        resources:
            mem_mb=2000,
            runtime=60,
        conda:
            CONDA_ENV
        shell:
            "tsmlip generate-dataset --config-json '{params.emt}' --min-distance {params.min_distance}"
            " --out {output.data} > {log} 2>&1"

else:

    rule prepare_dataset:
        input:
            config["data"]["path"],
        output:
            data=DATASET,
            provenance=res("data", "provenance.json"),
        params:
            source=config["data"]["source"],
            min_distance=config["data"]["min_distance_A"],
            shift=config["data"]["ani_energy_shift_eV_per_atom"],
        log:
            res("logs", "prepare_dataset.log"),
        benchmark:
            res("benchmarks", "prepare_dataset.tsv")
        threads: 1
        resources:
            mem_mb=8000,
            runtime=60,
        conda:
            CONDA_ENV
        shell:
            "tsmlip prepare-dataset --source {params.source} --path {input} --min-distance {params.min_distance}"
            " --ani-energy-shift {params.shift} --out {output.data} > {log} 2>&1"


rule split:
    input:
        DATASET,
    output:
        split=SPLIT,
        info=res("data", "split.json"),
    params:
        sp=config["split"],
    log:
        res("logs", "split.log"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        CONDA_ENV
    shell:
        "tsmlip split --dataset {input} --valid-fraction {params.sp[valid_fraction]}"
        " --test-fraction {params.sp[test_fraction]} --seed {params.sp[seed]} --out {output.split} > {log} 2>&1"


TARGETS.extend([DATASET, SPLIT])
