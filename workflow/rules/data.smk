# Data stage: the dataset (generated with EMT, or converted from ANI-Al HDF5 / extended XYZ) and the
# one train/valid/test split that every model reads. Their messages (warnings included) go to the log and
# to the console (stderr).
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
            code=CODE_VERSION,
            emt=json.dumps(config["data"]["emt"]),
            min_distance=config["data"]["min_distance_A"],
        shell:
            "tsmlip generate-dataset --config-json {params.emt:q} --min-distance {params.min_distance}"
            " --out {output.data:q} 2>&1 | tee {log:q} >&2"

else:
    # stages that simulate one element and leave it to the data: a multi-element file stops at import
    SINGLE_ELEMENT_FOR = [
        f"{sec}.element"
        for sec, on in (("md", config["md"]["enabled"]), ("rdf", True))
        if on and config[sec].get("element") is None
    ]

    from tsmlip.data.io import source_checksums, source_files

    # the source's files (an ani_h5 folder expanded to its *.h5 / *.hdf5) and their sha256: an edit or a swap
    # of any of them reruns this rule (params trigger), whatever the files' or the folder's mtimes say
    DATA_FILES = [str(f) for f in source_files(config["data"]["source"], config["data"]["path"])]
    DATA_SOURCES = source_checksums(config["data"]["source"], config["data"]["path"])

    rule prepare_dataset:
        input:
            DATA_FILES,
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
            code=CODE_VERSION,
            source=config["data"]["source"],
            path=config["data"]["path"],
            sources=json.dumps(DATA_SOURCES, sort_keys=True),
            min_distance=config["data"]["min_distance_A"],
            shift=config["data"]["ani_energy_shift_eV_per_atom"],
            # null = the source's default (io.DEFAULT_FORCES_ARE / DEFAULT_CLOSE_CONTACTS, docs/data.md)
            forces_are=(f"--forces-are {config['data']['forces_are']}" if config["data"].get("forces_are") else ""),
            close_contacts=(
                f"--close-contacts {config['data']['close_contacts']}" if config["data"].get("close_contacts") else ""
            ),
            single_element=" ".join(SINGLE_ELEMENT_FOR),
            duplicates=config["data"]["duplicates"],
            checks="" if config["data"]["checks"] else "--no-checks",
        shell:
            "tsmlip prepare-dataset --source {params.source:q} --path {params.path:q} --min-distance {params.min_distance}"
            " --ani-energy-shift {params.shift} {params.forces_are} {params.close_contacts}"
            " --single-element-for {params.single_element} --duplicates {params.duplicates} {params.checks}"
            " --out {output.data:q} 2>&1 | tee {log:q} >&2"


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
        code=CODE_VERSION,
        sp=config["split"],
        train_eval=config["training"]["train_eval_fraction"],
    shell:
        "tsmlip split --dataset {input:q} --valid-fraction {params.sp[valid_fraction]}"
        " --test-fraction {params.sp[test_fraction]} --seed {params.sp[seed]} --train-eval-fraction {params.train_eval}"
        " --out {output.split:q} 2>&1 | tee {log:q} >&2"
