# Helpers shared by every rule file: config validation, model ids, paths.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))  # the tsmlip package, also when not installed

from snakemake.utils import validate

validate(config, schema="../../config/schema.yaml")

from tsmlip import config as tsconfig

tsconfig.validate(config)  # cross-field checks the JSON schema cannot express

RESULTS = tsconfig.results_dir(config)
KINDS_RE = "|".join(tsconfig.KINDS)
ARCH_RE = r"w\d+-s\d+-l\d+"


wildcard_constraints:
    kind=KINDS_RE,
    arch=ARCH_RE,
    seed=r"\d+",


def res(*parts):
    """A path under results_dir."""
    return str(RESULTS.joinpath(*parts))


def model_file(model_id, name):
    return res("models", str(model_id), name)


#: every stage appends the files that `rule all` must build
TARGETS = []


def all_targets():
    return TARGETS
