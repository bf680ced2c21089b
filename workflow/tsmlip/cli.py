"""Command-line entry: ``tsmlip <step> [options]``; one sub-command per workflow stage.

Every Snakemake rule is a ``shell:`` call of one of these, so any step can be run by hand. Every step takes
the part of the configuration it reads as one JSON object, ``--config-json '{"md": {...}}'`` (nested as in
config/config.yaml), and its input and output paths as flags. ``tsmlip <step> --help`` lists a step's
options and the config keys it reads.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from dataclasses import dataclass

@dataclass(frozen=True)
class Step:
    """One ``tsmlip <step>`` command."""

    #: "module:function"; the function takes argv (list of str) and returns an exit code
    target: str
    #: the config keys (dotted paths, nested as in config/config.yaml) every run of the step reads: its
    #: ``--config-json`` must hold them (:func:`step_parser`), and the rules pass them (workflow/rules/common.smk:
    #: ``step_cfg``). A mode of a step that reads more names those keys where it runs (:func:`require`).
    reads: tuple[str, ...]


#: every step: the one table of commands, their modules and the config keys each reads
STEPS: dict[str, Step] = {
    "generate-dataset": Step("tsmlip.data.emt:main", ("data.emt", "data.min_distance_A")),
    "prepare-dataset": Step("tsmlip.data.io:main", tuple(f"data.{k}" for k in (
        "source", "min_distance_A", "ani_energy_shift_eV_per_atom", "forces_are", "close_contacts", "duplicates",
        "checks"))),
    "split": Step("tsmlip.data.split:main", ("split", "training.train_eval_fraction")),
    "train": Step("tsmlip.train.step:main", ("network", "training", "born_again")),
    # the fast engine: a stack of models in one job (tsmlip.train.fast)
    "train-stack": Step("tsmlip.train.fast:main", ("network", "training", "born_again")),
    "label": Step("tsmlip.label:main", ("labels.teacher", "labels.sum_tolerance_eV")),
    "label-oracle": Step("tsmlip.label:main_oracle", ("labels.sum_tolerance_eV",)),
    "label-calculator": Step("tsmlip.foundation:main", (
        "foundation.calculator", "foundation.device", "foundation.chunk_size", "labels.sum_tolerance_eV")),
    "synthesize": Step("tsmlip.synthetic:main", (
        "synthetic", "data.min_distance_A", "data.source", "foundation.calculator", "rdf.blowup_temperature_K",
        "rdf.device", "labels.sum_tolerance_eV")),
    "md-timing": Step("tsmlip.md.timing:main", ("md",)),
    "calculator-cost": Step("tsmlip.md.calculator_cost:main", (
        "md", "foundation.calculator", "foundation.cost", "foundation.device")),
    "max-atoms": Step("tsmlip.md.probe:main", ("md",)),
    # the classical anchor (tsmlip.classical): its MD cost by the md: protocol, its test-split errors
    "classical-cost": Step("tsmlip.md.classical_cost:main", ("md", "classical")),
    "classical-errors": Step("tsmlip.classical:main_errors", ("classical",)),
    # its one-row table (tables/classical.csv) from those files
    "classical-table": Step("tsmlip.classical:main_table", ("classical.name",)),
    # the rdf: section (its experiment: part is not read); --reference also reads data.source, --calculator
    # foundation.calculator, --classical classical (the classical anchor)
    "rdf-md": Step("tsmlip.rdf.liquid:main_md", ("rdf",)),
    # the liquids of many models of one architecture in one process (rdf.stack; engine, kernels, pair_finder unread)
    "rdf-md-stack": Step("tsmlip.rdf.stacked:main", ("rdf",)),
    # with rdf.experiment.enabled also rdf.experiment.max_temperature_gap_K and rdf.peak_fit_halfwidth_A
    "rdf-error": Step("tsmlip.rdf.error:main_error", ("rdf.experiment.enabled",)),
    "aggregate": Step("tsmlip.aggregate:main", ("aggregate.learning_speed_factor",)),
    # the configurations the teacher fits worst (tsmlip.data_quality)
    "data-quality": Step("tsmlip.data_quality:main", ("training.eval_batch_size",)),
    "born-again-table": Step("tsmlip.born_again:main", ("paper_reference", "data.source")),
    # the statistics' settings and the teacher calculator (its name in the rows)
    "claims": Step("tsmlip.claims:main", tuple(f"aggregate.{k}" for k in (
        "confidence", "min_relative_effect", "equivalence_margin", "power", "pareto_cost_tolerance",
        "learning_speed_factor", "budget_check_max_relative_change")) + ("foundation.calculator",)),
    # learning_curves also aggregate.curves_arch and sweep.base (tsmlip.figures)
    "plot": Step("tsmlip.plots:main", ("aggregate.dpi",)),
    "plot-coverage": Step("tsmlip.coverage_plot:main", ("aggregate.dpi",)),
    # a trained model as a TorchScript module for LAMMPS and TorchSim (docs/deploy.md); reads no config
    "export": Step("tsmlip.core.export:main", ()),
}
#: sub-command -> "module:function"
COMMANDS = {name: step.target for name, step in STEPS.items()}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        print("\nsteps:\n  " + "\n  ".join(sorted(COMMANDS)))
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"tsmlip: unknown step {name!r}; one of: {', '.join(sorted(COMMANDS))}", file=sys.stderr)
        return 2
    mod, func = COMMANDS[name].split(":")
    try:
        return int(getattr(importlib.import_module(mod), func)(rest) or 0)
    except Exception as exc:
        # a model file that is not one of ours (or not the model of its id), a device this machine lacks, input
        # data or a setting that cannot be used: one line naming the file or key, not a traceback
        if isinstance(exc, _one_line_errors()):
            print(f"tsmlip {name}: error: {exc}", file=sys.stderr)
            return 1
        # a full disk, a file in place of a folder: the path and the cause, not a traceback
        from .io_utils import _full_disk, output_error

        if _full_disk(exc) or isinstance(exc, (NotADirectoryError, FileExistsError)):
            print(f"tsmlip {name}: error: {output_error(getattr(exc, 'filename', None) or '?', exc)}",
                  file=sys.stderr)
            return 1
        raise


def step_parser(step: str, description: str | None) -> argparse.ArgumentParser:
    """The parser of ``tsmlip <step>`` with its one config flag, ``--config-json``: a JSON object holding at
    least the config keys the step reads (:data:`STEPS`: dotted paths, e.g. ``md``, ``labels.sum_tolerance_eV``),
    nested as in the config; the rules pass it (workflow/rules/common.smk: ``step_cfg``). The step adds its
    paths."""
    reads = STEPS[step].reads
    p = argparse.ArgumentParser(prog=f"tsmlip {step}", description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-json", required=True, metavar="JSON", type=lambda text: config_subtree(text, reads),
                   help=f"the config keys {', '.join(reads)} as one JSON object, nested as in config/config.yaml")
    return p


def add_threads(p: argparse.ArgumentParser) -> None:
    """``--threads N``: the torch CPU threads of a training step, given by its rule from ``threads:`` (the config's
    training.torch_threads, which no result depends on, so it stays out of the step's settings and fingerprint:
    tsmlip.config.NO_RESULT_DEPENDS_ON); by hand, training.torch_threads in --config-json does the same."""
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: training.torch_threads of --config-json)")


def with_threads(p: argparse.ArgumentParser, a) -> dict:
    """``a.config_json`` with ``training.torch_threads`` from ``--threads`` (a usage error when neither gives it)."""
    cfg = a.config_json
    if a.threads is not None:
        return {**cfg, "training": {**cfg["training"], "torch_threads": int(a.threads)}}
    if "torch_threads" not in cfg["training"]:
        p.error("give --threads, or training.torch_threads in --config-json")
    return cfg


def config_subtree(text: str, reads: tuple[str, ...]) -> dict:
    """The JSON object ``text``; :class:`argparse.ArgumentTypeError` unless it holds every dotted key of
    ``reads``."""
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e})")
    if not isinstance(cfg, dict):
        raise argparse.ArgumentTypeError("not a JSON object")
    missing = missing_keys(cfg, reads)
    if missing:
        raise argparse.ArgumentTypeError(f"lacks the config keys {', '.join(missing)}")
    return cfg


def require(parser: argparse.ArgumentParser, cfg: dict, keys) -> None:
    """A usage error of ``parser`` unless its ``--config-json`` ``cfg`` holds the dotted ``keys`` (those one
    mode of the step reads)."""
    missing = missing_keys(cfg, keys)
    if missing:
        parser.error(f"argument --config-json: lacks the config keys {', '.join(missing)}")


def missing_keys(cfg: dict, keys) -> list[str]:
    """The dotted keys of ``keys`` that ``cfg`` does not hold."""
    missing = []
    for key in keys:
        node = cfg
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                missing.append(key)
                break
            node = node[part]
    return missing


def _one_line_errors() -> tuple:
    """The error classes a step reports in one line (only those of modules the step imported)."""
    found = []
    for mod, cls in (("tsmlip.core.model", "ModelFileError"), ("tsmlip.core.model", "DeviceError"),
                     ("tsmlip.data.dataset", "DataError"), ("tsmlip.ids", "ConfigError"),
                     ("tsmlip.io_utils", "OutputError"), ("tsmlip.provenance", "ProvenanceError"),
                     ("tsmlip.json_record", "RecordError")):
        m = sys.modules.get(mod)
        if m is not None and hasattr(m, cls):
            found.append(getattr(m, cls))
    return tuple(found)


if __name__ == "__main__":
    sys.exit(main())
