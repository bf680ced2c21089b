"""Scheduler resources live in one place (issue 30, item 3): the `resources:` table of config/config.yaml, which
every rule reads through workflow/rules/common.smk (rule_resources, rule_threads); the profiles under profiles/
only map them onto a batch system (GPU request, partition, account) and hold no time or memory of their own."""
import re

import pytest
import yaml

from conftest import BASE_CONFIG, ROOT, TEST_CONFIG, run_snakemake
from tsmlip.config import deep_merge, load_config, rule_resources, validate
from tsmlip.ids import ConfigError

RULE_FILES = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
RULE_RE = re.compile(r"^[ \t]*(?:rule (\w+)|use rule (\w+) as (\w+) with):", re.M)
#: what a rule's `resources:` may hold besides its row: the MD rules' one-device-at-a-time token
EXTRA = {"md_timing": ", md_device=1", "max_atoms": ", md_device=1", "calculator_cost": ", md_device=1",
         "classical_md_timing": ", md_device=1"}
#: the keys a profile may set per rule or by default: the mapping onto the site, no time or memory
MAPPING_KEYS = {"gpu", "gpu_model", "slurm_partition", "slurm_account"}


def _table(*overlays):
    return load_config(BASE_CONFIG, *overlays)["resources"]


def _rule_blocks():
    """rule name -> (the rule it is derived from by `use rule`, or None; its text up to the next rule)."""
    blocks = {}
    for path in RULE_FILES:
        text = path.read_text()
        starts = list(RULE_RE.finditer(text))
        for m, nxt in zip(starts, [*starts[1:], None]):
            blocks[m.group(1) or m.group(3)] = (m.group(2), text[m.end():nxt.start() if nxt else len(text)])
    return blocks


def _directive(block, name):
    """The lines of directive ``name`` of a rule block: its own line's value and the deeper-indented lines below."""
    lines = block.splitlines()
    for i, line in enumerate(lines):
        m = re.match(rf"^(\s*){name}:(.*)$", line)
        if m:
            out = [m.group(2).strip()] if m.group(2).strip() else []
            for nxt in lines[i + 1:]:
                if not nxt.strip() or len(nxt) - len(nxt.lstrip()) <= len(m.group(1)):
                    break
                out.append(nxt.strip())
            return out
    return None


def test_every_rule_reads_its_resources_and_threads_from_the_table():
    """No number and no other config key in any rule's `threads:` or `resources:`: each is the helper call with the
    rule's own name (a `use rule` sets its own: it would inherit another rule's row); a rule that sets neither is
    a local rule; the table has a row for each such rule and none for a rule that does not exist."""
    table = _table()
    blocks = _rule_blocks()
    assert {"train", "train_stack", "md_timing", "split", "figure", "all", "train_budget_check"} <= set(blocks)
    with_resources = set()
    for rule, (parent, block) in blocks.items():
        threads, resources = _directive(block, "threads"), _directive(block, "resources")
        if threads is None and resources is None:
            local = block if parent is None else blocks[parent][1]
            assert re.search(r"^\s*localrule: True", local, re.M), f"rule {rule}: submitted without resources"
            if parent is not None:
                assert _directive(local, "resources") is None, f"rule {rule} inherits the resources of {parent}"
            continue
        assert threads == [f'rule_threads("{rule}")'], (rule, threads)
        assert resources == [f'**rule_resources("{rule}"{EXTRA.get(rule, "")}),'], (rule, resources)
        with_resources.add(rule)
    assert with_resources == set(table), (sorted(with_resources - set(table)), sorted(set(table) - with_resources))


def _profile(name):
    return yaml.safe_load((ROOT / "profiles" / name / "config.yaml").read_text())


@pytest.mark.parametrize("name", ["slurm", "slurm-ci"])
def test_slurm_profiles_only_map(name):
    """The SLURM profiles hold no runtime or memory (not per rule, not as a default); they ask for a GPU for
    exactly the rules the table marks `gpu: true`."""
    profile = _profile(name)
    assert set(profile["default-resources"]) <= MAPPING_KEYS, profile["default-resources"]
    per_rule = profile["set-resources"]
    for rule, res in per_rule.items():
        assert set(res) <= MAPPING_KEYS, (name, rule, res)
    gpu_rules = {rule for rule, row in _table().items() if row["gpu"] is True}
    assert {rule for rule, res in per_rule.items() if res.get("gpu") == 1} == gpu_rules
    assert not re.search(r"^\s*(runtime|mem_mb|mem|mem_mb_per_cpu)\s*:", (ROOT / "profiles" / name / "config.yaml")
                         .read_text(), re.M)


def test_workstation_profile_sets_no_rule_resources():
    profile = _profile("default")
    assert set(profile["resources"]) == {"gpu", "md_device"}
    assert "set-resources" not in profile and "default-resources" not in profile


def test_no_section_keeps_a_scheduler_key():
    """The per-section runtime_min / mem_mb keys are gone from every shipped config: the table holds them all."""
    def keys(node, path=""):
        if isinstance(node, dict):
            for k, v in node.items():
                yield f"{path}.{k}".lstrip("."), k
                yield from keys(v, f"{path}.{k}")

    for path in sorted((ROOT / "config").glob("*.yaml")):
        cfg = yaml.safe_load(path.read_text()) or {}
        stray = [p for p, k in keys({s: v for s, v in cfg.items() if s != "resources"})
                 if k in ("runtime_min", "mem_mb", "liquid_runtime_min")]
        assert not stray, (path.name, stray)


def test_rows_resolve_and_overlays_change_single_values():
    cfg = load_config(BASE_CONFIG, TEST_CONFIG)
    md = rule_resources(cfg, "md_timing")
    assert (md.runtime_min, md.mem_mb, md.gpu) == (5, 2000, True)  # config/test.yaml's row over the default's
    assert md.threads == cfg["md"]["timing"]["torch_threads"]
    assert rule_resources(cfg, "train_stack").threads == cfg["training"]["torch_threads"]
    assert rule_resources(cfg, "figure").threads == 1 and rule_resources(cfg, "figure").gpu is False
    # gpu: foundation.device -> the device it names (no GPU on cpu)
    assert rule_resources(cfg, "label_calculator").gpu == cfg["foundation"]["device"]
    cfg2 = validate(deep_merge(cfg, {"resources": {"split": {"mem_mb": 123}}, "foundation": {"device": "cuda"}}))
    assert rule_resources(cfg2, "split").mem_mb == 123 and rule_resources(cfg2, "split").runtime_min == 10
    assert rule_resources(cfg2, "label_calculator").gpu == "cuda"


@pytest.mark.parametrize("overlay, message", [
    ({"resources": {"split": {"threads": "training.no_such_key"}}},
     "config key 'resources.split.threads': 'training.no_such_key' names no config key"),
    ({"resources": {"split": {"threads": "training.device"}}},
     "config key 'resources.split.threads': training.device is 'auto', not a positive integer"),
    ({"resources": {"max_atoms": {"mem_mb": 70}}},
     "config key 'resources.max_atoms.mem_mb': 70 MB is below the size probe's 2 x md.probe.cpu_memory_budget_MB "
     "= 80 MB"),
    ({"resources": {"split": {"runtime_min": 0}}}, "config key 'resources.split.runtime_min': 0 is less than the "
                                                   "minimum of 1"),
    ({"resources": {"split": {"gpu": "rdf.device"}}}, "config key 'resources.split.gpu': 'rdf.device' is not one of "
                                                      "[True, False, 'foundation.device']"),
    ({"resources": {"split": {"time": 5}}}, "config key 'resources.split': Additional properties are not allowed "
                                            "('time' was unexpected)"),
])
def test_a_bad_row_is_refused_naming_the_key(overlay, message):
    with pytest.raises(ConfigError) as err:
        validate(deep_merge(load_config(BASE_CONFIG, TEST_CONFIG), overlay))
    assert str(err.value) == message


def test_a_rule_without_a_row_is_refused():
    cfg = load_config(BASE_CONFIG, TEST_CONFIG)
    with pytest.raises(ConfigError, match=r"config key 'resources': no row for rule 'new_rule'"):
        rule_resources(cfg, "new_rule")


PLAN_RE = re.compile(r"^(?:local)?rule (\w+):\n((?:    .*\n)*)", re.M)


def test_planned_jobs_carry_the_table(tmp_path):
    """A dry run of the tiny config with one row changed by an overlay: every planned job's runtime, mem_mb and
    threads are its rule's row (config/config.yaml, config/test.yaml, the overlay), the changed one included."""
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("resources: {train_stack: {runtime_min: 7, mem_mb: 777}}\n")
    out = run_snakemake("-n", "--configfile", "config/test.yaml", str(overlay), "--config",
                        f"results_dir={tmp_path / 'r'}")
    assert out.returncode == 0, out.stderr[-3000:]
    cfg = load_config(BASE_CONFIG, TEST_CONFIG, overlay)
    seen = set()
    for m in PLAN_RE.finditer(out.stdout + out.stderr):
        rule, body = m.group(1), m.group(2)
        if rule not in cfg["resources"]:
            continue
        row = rule_resources(cfg, rule)
        res = dict(kv.split("=", 1) for kv in re.search(r"resources: (.*)", body).group(1).split(", "))
        threads = re.search(r"threads: (\d+)", body)
        assert (int(res["runtime"]), int(res["mem_mb"])) == (row.runtime_min, row.mem_mb), (rule, res)
        assert (int(threads.group(1)) if threads else 1) == row.threads, (rule, body)
        assert ("gpu" in res) == (row.gpu is not False), (rule, res)
        seen.add((rule, int(res["runtime"]), int(res["mem_mb"])))
    assert {"train_stack", "md_timing", "max_atoms", "split", "figure", "rdf_md_stack"} <= {r for r, *_ in seen}
    assert {r for r in seen if r[0] == "train_stack"} == {("train_stack", 7, 777)}  # the overlay's row
