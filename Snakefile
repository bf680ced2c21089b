# Teacher-student training of HIPNN interatomic potentials (see README.md).
# This file is a table of contents: the rules live in workflow/rules/*.smk, the science in the
# `tsmlip` package (workflow/tsmlip), the hyper-parameters in config/ (checked by workflow/tsmlip/schema.yaml).

from snakemake.utils import min_version

min_version("8.20")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


wildcard_constraints:
    kind=KINDS_RE,
    arch=ARCH_RE,
    seed=r"\d+",


include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/label.smk"
include: "workflow/rules/md.smk"
include: "workflow/rules/rdf.smk"
include: "workflow/rules/classical.smk"
include: "workflow/rules/aggregate.smk"


# A cluster profile (profiles/) that gives a GPU rule no GPU row would plan it with gpu=0 on a login node without a
# GPU: refused when planned, in one line naming the rules (tsmlip.cluster).
tscluster.check_gpu_rows(
    config["resources"],
    [r.name for r in workflow.rules],
    set((workflow.resource_settings.default_resources or {}).keys()),
    {r: set(m.keys()) for r, m in workflow.resource_settings.overwrite_resources.items()},
    workflow.local_exec,
)


# Checks that need this machine or the data stage's output, done when a run starts (a dry run reads neither):
# a device setting that names no device here stops a run whose jobs run on this machine before any job (a
# cluster job checks its own device when it starts and stops with one message); data read from files, whose
# number is known once the data stage has run (provenance.json): a split that leaves no training
# configuration, or a train_eval_fraction that evaluates none, is refused (the split step refuses them the
# first time).
onstart:
    if workflow.local_exec:
        tsconfig.check_devices(config, _local_gpus())
    _provenance = RESULTS.joinpath("data", "provenance.json")
    if config["data"]["source"] != "emt" and _provenance.is_file():
        try:
            _n_read = json.loads(_provenance.read_text())["n_configs"]
        except (ValueError, KeyError):
            _n_read = None
        if _n_read:
            tsconfig.check_split_sizes(config, int(_n_read), "data/provenance.json n_configs")
    # one run per results folder, from any checkout (tsmlip.run_lock): refused with one message
    tsrunlock.acquire(RESULTS)


onsuccess:
    tsrunlock.release(RESULTS)


onerror:
    tsrunlock.release(RESULTS)


# Cheap bookkeeping rules (this one, the RDF errors, tables and figures) say `localrule: True` where they
# are defined: they run inside the main Snakemake process, not as cluster jobs.
rule all:
    default_target: True
    input:
        all_targets(),
    localrule: True
