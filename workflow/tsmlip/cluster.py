"""How a batch-system profile maps the jobs (profiles/, docs/resources.md), checked when the workflow is planned.

A profile's ``set-resources`` gives each GPU rule (``gpu: true`` in the config's ``resources:`` table) its GPU
request; a rule the profile leaves out falls back to the workflow's own ``gpu`` resource, which is 1 only where the
planning machine itself has a GPU (a local run). On a login node without one, a copied profile missing its GPU rows
would plan ``gpu=0`` for those rules and their jobs would run on CPU nodes without a word. :func:`check_gpu_rows`
refuses that plan in one line naming the rules.
"""
from __future__ import annotations

from .ids import ConfigError

#: resources through which a profile asks the batch system for a GPU (profiles/README.md): any of them, set for a
#: rule (also to 0, a deliberate choice), counts as the rule's GPU row
GPU_KEYS = frozenset({"gpu", "gpus", "gres"})
#: a profile that sets a resource named so maps the jobs onto SLURM (profiles/slurm's account and partition)
CLUSTER_PREFIX = "slurm_"


def maps_onto_cluster(default_keys, overwrite: dict, local_exec: bool = True) -> bool:
    """Whether the run's jobs go to a batch system: a non-local executor (a real run), or a profile that gives
    SLURM resources by default or to any rule (a dry run uses Snakemake's dry-run executor, whatever the profile's
    executor)."""
    keys = set(default_keys or ()) | {k for v in overwrite.values() for k in v}
    return not local_exec or any(str(k).startswith(CLUSTER_PREFIX) for k in keys)


def missing_gpu_rows(table: dict, rules, overwrite: dict) -> list[str]:
    """The GPU rules (``gpu: true`` rows of the resources ``table``) among ``rules`` (the workflow's) to which the
    profile's ``set-resources`` (``overwrite``: rule -> resource names) gives no GPU row."""
    return sorted(r for r in rules if r in table and table[r].get("gpu") is True and not GPU_KEYS & set(overwrite.get(r, ())))


def check_gpu_rows(table: dict, rules, default_keys, overwrite: dict, local_exec: bool = True) -> None:
    """:class:`tsmlip.ids.ConfigError` (one line) when the jobs go to a batch system and a GPU rule has no GPU
    row in the profile."""
    if not maps_onto_cluster(default_keys, overwrite, local_exec):
        return
    missing = missing_gpu_rows(table, rules, overwrite)
    if missing:
        raise ConfigError(
            f"the profile maps the jobs onto a cluster but gives the GPU rules {', '.join(missing)} no GPU (no gpu / "
            f"gres under its set-resources): they would be planned with gpu=0 and run on CPU nodes; add their rows "
            f"(gpu: 1, as profiles/slurm does), or give them gpu: false in the config's resources table to run them "
            f"on CPUs")
