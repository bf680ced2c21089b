# Data stage: the dataset (generated with EMT, or converted from ANI-Al HDF5 / extended XYZ) and the
# one train/valid/test split that every model reads.
if config["data"]["source"] == "emt":

    rule generate_dataset:
        output:
            data=SOURCE_DATASET,
            provenance=os.path.join(os.path.dirname(SOURCE_DATASET), "provenance.json"),
        log:
            res("logs", "generate_dataset.log"),
        benchmark:
            res("benchmarks", "generate_dataset.tsv")
        conda:
            CONDA_ENV
        threads: 1
        resources:
            mem_mb=2000,
            runtime=60,
        params:
            emt=json.dumps(config["data"]["emt"]),
            min_distance=config["data"]["min_distance_A"],
        shell:
            "tsmlip generate-dataset --config-json '{params.emt}' --min-distance {params.min_distance}"
            " --out {output.data} > {log} 2>&1"

else:
    # stages that simulate one element and leave it to the data: a multi-element file stops at import
    SINGLE_ELEMENT_FOR = [
        f"{sec}.element"
        for sec, on in (("md", config["md"]["enabled"]), ("rdf", True))
        if on and config[sec].get("element") is None
    ]

    rule prepare_dataset:
        input:
            config["data"]["path"],
        output:
            data=SOURCE_DATASET,
            provenance=os.path.join(os.path.dirname(SOURCE_DATASET), "provenance.json"),
        log:
            res("logs", "prepare_dataset.log"),
        benchmark:
            res("benchmarks", "prepare_dataset.tsv")
        conda:
            CONDA_ENV
        threads: 1
        resources:
            mem_mb=8000,
            runtime=60,
        params:
            source=config["data"]["source"],
            min_distance=config["data"]["min_distance_A"],
            shift=config["data"]["ani_energy_shift_eV_per_atom"],
            # null = the source's default (io.DEFAULT_FORCES_ARE / DEFAULT_CLOSE_CONTACTS, docs/data.md)
            forces_are=(f"--forces-are {config['data']['forces_are']}" if config["data"].get("forces_are") else ""),
            close_contacts=(
                f"--close-contacts {config['data']['close_contacts']}" if config["data"].get("close_contacts") else ""
            ),
            single_element=" ".join(SINGLE_ELEMENT_FOR),
        shell:
            "tsmlip prepare-dataset --source {params.source} --path {input} --min-distance {params.min_distance}"
            " --ani-energy-shift {params.shift} {params.forces_are} {params.close_contacts}"
            " --single-element-for {params.single_element} --out {output.data} > {log} 2>&1"


rule split:
    input:
        DATASET,
    output:
        split=SPLIT,
        info=res("data", "split.json"),
    log:
        res("logs", "split.log"),
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        sp=config["split"],
    shell:
        "tsmlip split --dataset {input} --valid-fraction {params.sp[valid_fraction]}"
        " --test-fraction {params.sp[test_fraction]} --seed {params.sp[seed]} --out {output.split} > {log} 2>&1"
