"""The kinds registry (tsmlip.kinds) is the one list of model kinds: the schema's kind lists and the default
configuration's loss weights agree with it."""
import yaml

from conftest import BASE_CONFIG
from tsmlip.config import load_schema
from tsmlip.kinds import (BORN_AGAIN_KINDS, BORN_AGAIN_TABLE_KINDS, DISTILLED_KINDS, KINDS, LABEL_SOURCES, PAPER_SWEEP_KINDS, REGISTRY,
                          SWEEP_KINDS)


def test_schema_kind_lists_are_the_registry():
    props = load_schema()["properties"]
    assert props["sweep"]["properties"]["kinds"]["items"]["enum"] == list(SWEEP_KINDS)
    # the budget check retrains the teacher, sweep kinds and Born-Again kinds (model_ids.budget_check_ids)
    born_again_kinds = [k.name for k in REGISTRY.values() if k.born_again]
    assert props["budget_check"]["properties"]["kinds"]["items"]["enum"] == ["teacher", *SWEEP_KINDS, *born_again_kinds]
    weights = props["training"]["properties"]["loss_weights"]
    assert set(weights["properties"]) == {k.loss_weights for k in REGISTRY.values() if k.loss_weights}
    assert set(weights["required"]) <= set(weights["properties"])
    born_again = props["paper_reference"]["properties"]["born_again"]["propertyNames"]["enum"]
    assert set(born_again) == set(BORN_AGAIN_TABLE_KINDS)


def test_default_config_has_every_kinds_loss_weights():
    weights = yaml.safe_load(BASE_CONFIG.read_text())["training"]["loss_weights"]
    assert {k.loss_weights for k in REGISTRY.values() if k.loss_weights} <= set(weights)
    for name in DISTILLED_KINDS:  # a distilled kind learns atom energies: its loss weighs them
        entry = REGISTRY[name].loss_weights
        assert entry is None or weights[entry]["w_A"] > 0, name
    for name in set(KINDS) - set(DISTILLED_KINDS):
        assert weights[REGISTRY[name].loss_weights]["w_A"] == 0, name


def test_registry_is_consistent():
    assert KINDS[0] == "teacher" and REGISTRY["teacher"].labels == "none"
    for k in REGISTRY.values():
        assert k.labels in LABEL_SOURCES, k.name
        assert not k.distilled or k.labels != "none", k.name  # atom energies come from somewhere
    assert set(PAPER_SWEEP_KINDS) < set(SWEEP_KINDS) and not any(REGISTRY[k].opt_in for k in PAPER_SWEEP_KINDS)
    assert BORN_AGAIN_TABLE_KINDS == ("teacher", "born_again_static", "born_again")
    styles = [(k.color, k.marker) for k in REGISTRY.values()]
    assert len(set(styles)) == len(styles) and len({k.label for k in REGISTRY.values()}) == len(KINDS)


def test_born_again_kinds_follow_the_registry_flag(tiny_cfg):
    """The Born-Again students are the kinds flagged so (no kind name is spelled out elsewhere): not in the sweep,
    on the teacher's labels; the config trains the scheduled one, and the static ones with born_again.static."""
    from tsmlip.model_ids import born_again_ids, teacher_arch

    assert BORN_AGAIN_KINDS == ("born_again", "born_again_static")
    for name in BORN_AGAIN_KINDS:
        assert not REGISTRY[name].sweep and REGISTRY[name].labels == "teacher" and REGISTRY[name].born_again_label
    ba = tiny_cfg["born_again"]
    both = born_again_ids(dict(tiny_cfg, born_again=dict(ba, enabled=True, static=True)))
    assert sorted({m.kind for m in both}) == sorted(BORN_AGAIN_KINDS)
    assert {m.arch for m in both} == {teacher_arch(tiny_cfg)}
    scheduled = born_again_ids(dict(tiny_cfg, born_again=dict(ba, enabled=True, static=False)))
    assert {m.kind for m in scheduled} == {k for k in BORN_AGAIN_KINDS if REGISTRY[k].scheduled}
    assert born_again_ids(dict(tiny_cfg, born_again=dict(ba, enabled=False))) == []
