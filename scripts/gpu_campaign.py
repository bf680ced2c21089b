#!/usr/bin/env python
"""The paper's GPU cost figures in one call of at most 8 minutes on one GPU (the package
:mod:`campaign` beside this script; it calls the project's package ``tsmlip`` through public functions).

Prepare (here, with the project's environment) and run (on the GPU machine: torch, numpy, scipy, h5py; no
network, no other package of the project's pins)::

    make gpu-wheels
    python3 -m pip install --no-deps --target /tmp/site gpu_wheels/*.whl && \\
        PYTHONPATH=/tmp/site:workflow python3 scripts/gpu_campaign.py --out gpu_campaign_out

CPU smoke run (seconds): ``python scripts/gpu_campaign.py --smoke --out /tmp/campaign``. Everything else:
``--help`` and docs/md.md ("GPU campaign").
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "workflow"), str(HERE)]

from campaign import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
