"""Command-line entry: ``tsmlip <step> [options]``; one sub-command per workflow stage.

Every Snakemake rule is a ``shell:`` call of one of these, so any step can be run by hand.
``tsmlip <step> --help`` lists a step's options.
"""
from __future__ import annotations

import importlib
import sys

#: sub-command -> "module:function"; each function takes argv (list of str) and returns an exit code
COMMANDS = {
    "generate-dataset": "tsmlip.data.emt:main",
    "prepare-dataset": "tsmlip.data.io:main",
    "split": "tsmlip.data.split:main",
    "train": "tsmlip.train:main",
    "label": "tsmlip.label:main",
    "label-oracle": "tsmlip.label:main_oracle",
    "label-calculator": "tsmlip.foundation:main",
    "synthesize": "tsmlip.synthetic:main",
    "md-timing": "tsmlip.md.timing:main",
    "calculator-cost": "tsmlip.md.calculator_cost:main",
    "max-atoms": "tsmlip.md.probe:main",
    "rdf-md": "tsmlip.rdf:main_md",
    "rdf-error": "tsmlip.rdf:main_error",
    "aggregate": "tsmlip.aggregate:main",
    "born-again-table": "tsmlip.aggregate:born_again_main",
    "claims": "tsmlip.claims:main",
    "plot": "tsmlip.plots:main",
    "plot-coverage": "tsmlip.coverage_plot:main",
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
