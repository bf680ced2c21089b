# Data stage: the dataset (generated with EMT, or converted from ANI-Al HDF5 / extended XYZ) and the
# one train/valid/test split that every model reads. Their messages (warnings included) go to the log and
# to the console (stderr).
if config["data"]["source"] == "emt":

    rule generate_dataset:
        input:
            stamp=stamp_input("source"),
        output:
            data=SOURCE_DATASET,
            provenance=os.path.join(os.path.dirname(SOURCE_DATASET), "provenance.json"),
        log:
            res("logs", "generate_dataset.log"),
        benchmark:
            res("benchmarks", "generate_dataset.tsv")
        conda:
            CONDA_ENV
        threads: rule_threads("generate_dataset")
        resources:
            **rule_resources("generate_dataset"),
        params:
            code=code_stamp("generate-dataset"),
            cfg=step_config("generate-dataset"),
        shell:
            "tsmlip generate-dataset --config-json {params.cfg:q} --out {output.data:q} 2>&1 | tee {log:q} >&2"

else:
    # stages that simulate one element and leave it to the data (their null `element` key goes to the step): a
    # multi-element file stops at import
    SINGLE_ELEMENT_FOR = [
        f"{sec}.element"
        for sec, on in (("md", config["md"]["enabled"]), ("rdf", True))
        if on and config[sec].get("element") is None
    ]

    from tsmlip.data.io import source_files

    # the source's files (an ani_h5 folder expanded to its *.h5 / *.hdf5), with their sha256 in the params
    # (common.smk: data_sources)
    DATA_FILES = [str(f) for f in source_files(config["data"]["source"], config["data"]["path"])]

    rule prepare_dataset:
        input:
            DATA_FILES,
            stamp=stamp_input("source"),
        output:
            data=SOURCE_DATASET,
            provenance=os.path.join(os.path.dirname(SOURCE_DATASET), "provenance.json"),
        log:
            res("logs", "prepare_dataset.log"),
        benchmark:
            res("benchmarks", "prepare_dataset.tsv")
        conda:
            CONDA_ENV
        threads: rule_threads("prepare_dataset")
        resources:
            **rule_resources("prepare_dataset"),
        params:
            code=code_stamp("prepare-dataset"),
            sources=data_sources,
            cfg=step_config(
                "prepare-dataset",
                *SINGLE_ELEMENT_FOR,
            ),
            path=config["data"]["path"],
        shell:
            "tsmlip prepare-dataset --config-json {params.cfg:q} --path {params.path:q}"
            " --out {output.data:q} 2>&1 | tee {log:q} >&2"


rule split:
    input:
        data=DATASET,
        stamp=stamp_input("split"),
    output:
        split=SPLIT,
        info=res("data", "split.json"),
    log:
        res("logs", "split.log"),
    conda:
        CONDA_ENV
    threads: rule_threads("split")
    resources:
        **rule_resources("split"),
    params:
        code=code_stamp("split"),
        cfg=step_config("split"),
    shell:
        "tsmlip split --config-json {params.cfg:q} --dataset {input.data:q} --out {output.split:q} 2>&1 | tee {log:q} >&2"
