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
include: "workflow/rules/aggregate.smk"


# Cheap bookkeeping rules (this one, the RDF errors, tables and figures) say `localrule: True` where they
# are defined: they run inside the main Snakemake process, not as cluster jobs.
rule all:
    default_target: True
    input:
        all_targets(),
    localrule: True
