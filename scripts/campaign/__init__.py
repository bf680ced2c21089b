"""The paper's GPU cost figures (Figs 2 and 5) in one call of at most 8 minutes on one GPU.

Sections, each with its own time budget (seconds, ``--budget SECTION=S``; the GPU defaults sum to
:data:`GPU_TOTAL_S`), in this order:

- ``data``: EMT aluminum configurations generated here (:func:`tsmlip.data.emt.generate`, shortened runs);
- ``train``: five models trained a few seconds each with the project's training step
  (:func:`tsmlip.train.train_step`, the teacher's ground-truth loss; accuracy does not matter here, cost
  depends only on the architecture), or loaded (``--model ROLE=model.pt``): the paper's teacher (128 / 40 / 4,
  config/paper.yaml ``teacher``), two paper-network students (every axis at the smallest value of
  config/paper.yaml's sweep, a corner its axes sweep does not train, and its base), the default config's teacher
  and its smallest student (config/config.yaml ``teacher``, ``sweep.base``);
- ``train_throughput``: ms per training step at batch 8 and 64 of the paper's smallest student and teacher;
- ``md_timing``: time per MD step per atom (:func:`tsmlip.md.timing.time_md`: warm-up excluded, median of
  repeated blocks, energy drift) at the paper's size (config/paper.yaml ``md.timing.n_atoms``: 48,000) and at
  4,000 atoms, with both engines (``ase``: ASE + HippynnCalculator as in the paper; ``torch``) and, where
  installed on the GPU machine (``make lammps`` / ``make deploy``; ``--md-engines`` to choose), the deployed
  model in LAMMPS (``lammps``) and TorchSim (``torchsim``), after ase and torch except for the headline pair;
- ``max_atoms``: the most atoms per GPU (:func:`tsmlip.md.probe.probe_max_atoms`, growing then bisecting) with
  hippynn's GPU kernels on (``auto``: its pick, e.g. triton) and off (``pytorch``), on the whole card and
  under the paper's card size (config/config.yaml ``paper_reference.md_cost.gpu_memory_GB``, enforced with
  ``torch.cuda.set_per_process_memory_fraction``); memory per atom as budget / max atoms and as the slope.

Every measurement has its own time limit (the smaller of its default and what its section has left): at
``SOFT_FRACTION`` of it the measurement stops where it can and keeps what it has (fewer MD blocks, a
probe's lower bound), at the limit an alarm ends it (``status: timed_out``). The JSON
(``<out>/gpu_campaign.json``) is rewritten atomically after every measurement and stays ``"partial": true``
until every measurement finished ``ok``; the markdown table (``<out>/gpu_campaign.md``) is written at the end
(and when the run is interrupted). Progress lines go to stdout. Memory: torch's default caching allocator
(``cudaMalloc``, no managed / unified memory) with the per-process fraction at most 1, so nothing is ever
requested beyond the card.

It needs only torch, numpy, scipy, hippynn and ase (no PyYAML, snakemake, vesin, pandas or matplotlib):
without PyYAML the settings come from a JSON snapshot of config/config.yaml and config/paper.yaml that the
prepare step writes (``--write-config-snapshot``). Prepare here, run on the GPU machine (docs/md.md, "GPU
campaign")::

    make gpu-wheels      # pip download --no-deps hippynn ase -> gpu_wheels/ + gpu_wheels/campaign_config.json
    python3 -m pip install --no-deps --target /tmp/site gpu_wheels/*.whl && \\
        PYTHONPATH=/tmp/site:workflow python3 scripts/gpu_campaign.py --out gpu_campaign_out

``--smoke``: tiny models and systems on the CPU (well under a minute; ``tests/test_gpu_campaign.py``): every
section and field, MD and the probe for two of the roles (:data:`SMOKE_ROLES`), ``"smoke": true``.
"""
from .command import main
from .plan import (GPU_TOTAL_S, ROLES, SECTIONS, SMOKE_BUDGET_S, SMOKE_ROLES, THROUGHPUT_ROLES, load_configs,
                   model_plan, write_config_snapshot)
from .runner import Campaign
from .sections import MD_FIELDS, PROBE_FIELDS, THROUGHPUT_EMPTY, TRAIN_EMPTY, md_order
