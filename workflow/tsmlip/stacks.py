"""Which models train together (``training.engine: fast`` with ``training.stack: true``): one stack per output folder
(``models`` or ``budget_check``), architecture and source of training data. A stack's models share the dataset
and split; the teachers stack apart from the models that learn their labels, and the kinds trained on
teacher-generated data (``student_synthetic``) apart from the rest."""
from __future__ import annotations

from dataclasses import dataclass

from .model_ids import all_model_ids, budget_check_ids, weight_estimate
from .ids import ModelId
from .kinds import REGISTRY

#: the output folders of trained models under results_dir
FOLDERS = ("models", "budget_check")


@dataclass(frozen=True)
class Stack:
    folder: str  # models | budget_check
    name: str  # <arch>-<group>, e.g. w8-s4-l1-sweep
    model_ids: tuple[ModelId, ...]


def _group(model_id: ModelId) -> str:
    source = REGISTRY[model_id.kind].labels
    return {"none": "teacher", "synthetic": "synthetic"}.get(source, "sweep")


def plan(cfg: dict) -> list[Stack]:
    """Every stack of the configuration (empty unless the fast engine stacks)."""
    tr = cfg["training"]
    if tr["engine"] != "fast" or not tr["stack"]:
        return []
    groups: dict[tuple, list] = {}
    for folder, ids in zip(FOLDERS, (all_model_ids(cfg), budget_check_ids(cfg))):
        for m in ids:
            groups.setdefault((folder, f"{m.arch.tag}-{_group(m)}"), []).append(m)
    return [Stack(folder, name, tuple(ids)) for (folder, name), ids in groups.items()]


def priority(stack: Stack, cfg: dict) -> int:
    """The stack's scheduling priority, its expected cost (higher first): models x weights, times the budget-check
    scale in that folder. The long stacks (the teacher-sized Born-Again students, the budget checks) start as soon
    as their labels exist instead of after the short ones, which would leave one core idle at the end."""
    scale = float(cfg["budget_check"]["scale"]) if stack.folder == "budget_check" else 1.0
    return int(scale * sum(weight_estimate(m.arch) for m in stack.model_ids))


@dataclass(frozen=True)
class LiquidStack:
    name: str  # the architecture's tag, e.g. w8-s4-l1
    model_ids: tuple[ModelId, ...]


def liquid_plan(cfg: dict) -> list[LiquidStack]:
    """Which models run their RDF liquids together (``rdf.stack: true``; ``tsmlip rdf-md-stack``): one stack per
    architecture of the trained models (kinds x seeds; the teacher's with the Born-Again models); empty with
    ``rdf.stack: false`` (one ``tsmlip rdf-md`` job per model)."""
    if not cfg["rdf"]["stack"]:
        return []
    groups: dict[str, list] = {}
    for m in all_model_ids(cfg):
        groups.setdefault(m.arch.tag, []).append(m)
    return [LiquidStack(name, tuple(ids)) for name, ids in groups.items()]
