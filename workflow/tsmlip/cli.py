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

#: sub-command -> "module:function"; each function takes argv (list of str) and returns an exit code
COMMANDS = {
    "generate-dataset": "tsmlip.data.emt:main",
    "prepare-dataset": "tsmlip.data.io:main",
    "split": "tsmlip.data.split:main",
    "train": "tsmlip.train.step:main",
    "train-stack": "tsmlip.train.fast:main",
    "label": "tsmlip.label:main",
    "label-oracle": "tsmlip.label:main_oracle",
    "label-calculator": "tsmlip.foundation:main",
    "synthesize": "tsmlip.synthetic:main",
    "md-timing": "tsmlip.md.timing:main",
    "calculator-cost": "tsmlip.md.calculator_cost:main",
    "max-atoms": "tsmlip.md.probe:main",
    "rdf-md": "tsmlip.rdf.liquid:main_md",
    "rdf-md-stack": "tsmlip.rdf.stacked:main",
    "rdf-error": "tsmlip.rdf.error:main_error",
    "aggregate": "tsmlip.aggregate:main",
    "born-again-table": "tsmlip.born_again:main",
    "claims": "tsmlip.claims:main",
    "plot": "tsmlip.plots:main",
    "plot-coverage": "tsmlip.coverage_plot:main",
    "export": "tsmlip.export:main",
}


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
        raise


def step_parser(step: str, description: str | None, reads: tuple[str, ...]) -> argparse.ArgumentParser:
    """The parser of ``tsmlip <step>`` with its one config flag, ``--config-json``: a JSON object holding at
    least the config keys ``reads`` (dotted paths, e.g. ``md``, ``labels.sum_tolerance_eV``), nested as in the
    config; the rules pass it (workflow/rules/common.smk: ``step_config``). The step adds its paths."""
    p = argparse.ArgumentParser(prog=f"tsmlip {step}", description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-json", required=True, metavar="JSON", type=lambda text: config_subtree(text, reads),
                   help=f"the config keys {', '.join(reads)} as one JSON object, nested as in config/config.yaml")
    return p


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
    for mod, cls in (("tsmlip.model", "ModelFileError"), ("tsmlip.model", "DeviceError"),
                     ("tsmlip.data.dataset", "DataError"), ("tsmlip.config", "ConfigError")):
        m = sys.modules.get(mod)
        if m is not None and hasattr(m, cls):
            found.append(getattr(m, cls))
    return tuple(found)


if __name__ == "__main__":
    sys.exit(main())
