"""A step's settings: the one definition of what of the configuration a run of ``tsmlip <step>`` reads and its
result depends on, and the one fingerprint of them.

Every place that asks "were these the same settings?" uses :func:`step_settings` (or its hash,
:func:`settings_fingerprint`):

* the rules' params: each rule passes ``--config-json`` = :func:`settings_json` (workflow/rules/common.smk:
  ``step_config``), so Snakemake's params trigger reruns a job when its settings change;
* the planned stamps (:func:`tsmlip.provenance.planned`): the settings of a per-model step with its model id;
* a training checkpoint's fingerprint (:func:`tsmlip.train.loop.run_fingerprint`): a checkpoint resumes only under
  the settings it was made with;
* the provenance record inside a trained model (:func:`tsmlip.train.step.made_of`).

The settings are the config under each dotted key the step reads (:data:`tsmlip.cli.STEPS`) and the ``extra`` keys a
mode of the step reads besides, with ``sections`` replacing whole sections (e.g. the budget check's training), less
the keys no result depends on (:data:`tsmlip.config.NO_RESULT_DEPENDS_ON`: the rules pass them as flags), with the
model id for a per-model step. A step run by hand with more of the configuration in its ``--config-json`` (or with
``training.torch_threads`` in it) has the same settings as the planned job.
"""
from __future__ import annotations

import copy
import json

from .cli import STEPS
from .config import NO_RESULT_DEPENDS_ON
from .provenance import settings_hash


def step_settings(step: str, cfg: dict, *extra: str, model_id=None, **sections) -> dict:
    """The settings of one run of ``tsmlip <step>`` on the configuration ``cfg`` (see the module's doc); a new
    object (``cfg`` is not changed)."""
    tree: dict = {}
    for key in (*STEPS[step].reads, *extra):
        *parents, last = key.split(".")
        src, dst = cfg, tree
        for part in parents:
            src, dst = src[part], dst.setdefault(part, {})
        dst[last] = copy.deepcopy(src[last])
    tree.update(copy.deepcopy(sections))
    for key in NO_RESULT_DEPENDS_ON:  # e.g. training.torch_threads: the rule passes it as --threads
        *parents, last = key.split(".")
        node = tree
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return {"model_id": str(model_id), **tree} if model_id is not None else tree


def settings_json(step: str, cfg: dict, *extra: str, model_id=None, **sections) -> str:
    """:func:`step_settings` as canonical JSON: the ``--config-json`` a rule passes (without a model id: the rule
    passes it as its own flag)."""
    return json.dumps(step_settings(step, cfg, *extra, model_id=model_id, **sections), sort_keys=True)


def settings_fingerprint(step: str, cfg: dict, *extra: str, model_id=None, **sections) -> str:
    """The hash of :func:`step_settings` (:func:`tsmlip.provenance.settings_hash`): the ``settings`` of a planned
    stamp, of a provenance record and of a training checkpoint."""
    return settings_hash(step_settings(step, cfg, *extra, model_id=model_id, **sections))
