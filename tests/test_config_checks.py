"""Config values that would crash a step are refused when the run is planned, each with one message naming
the key (issue 23, item 7 and "Weaker"): an empty training evaluation, a split without training
configurations, a device this machine lacks, a timing system smaller than one cell."""
import json

import pytest
import torch

from conftest import BASE_CONFIG, TEST_CONFIG, run_snakemake
from tsmlip.config import check_devices, check_split_sizes, deep_merge, load_config, validate
from tsmlip.ids import ConfigError


def _cfg(**overlay):
    base = load_config(BASE_CONFIG, TEST_CONFIG)
    return deep_merge(base, overlay)


@pytest.mark.parametrize("overlay, key", [
    ({"training": {"train_eval_fraction": 0.01}}, "training.train_eval_fraction"),
    ({"data": {"emt": {"n_configs": 2}}}, "split.valid_fraction"),
    ({"md": {"timing": {"n_atoms": 1}}}, "md.timing.n_atoms"),
    ({"md": {"timing": {"n_atoms": 4}, "element": "Si"}}, "md.timing.n_atoms"),  # diamond: 8 atoms a cell
    ({"training": {"device": "gpu0"}}, "training.device"),
    ({"rdf": {"device": "cuda:x"}}, "rdf.device"),
])
def test_crashing_values_are_refused_naming_the_key(overlay, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(_cfg(**overlay))


def test_valid_sizes_pass_and_file_counts_are_checked():
    cfg = validate(_cfg(md={"timing": {"n_atoms": 4}}))  # one fcc cell of aluminum is enough
    check_split_sizes(cfg, 24, "n")
    with pytest.raises(ConfigError, match="training.train_eval_fraction.*provenance"):
        check_split_sizes(dict(cfg, training=dict(cfg["training"], train_eval_fraction=0.05)), 12,
                          "data/provenance.json n_configs")
    with pytest.raises(ConfigError, match="leave none for training"):
        check_split_sizes(cfg, 1, "n")


def test_cuda_device_without_cuda():
    cfg = validate(_cfg(training={"device": "cuda"}))  # a cluster run may plan it on a login node
    check_devices(cfg, 1)
    with pytest.raises(ConfigError, match="'training.device': 'cuda' names no device on this machine"):
        check_devices(cfg, 0)
    with pytest.raises(ConfigError, match="'md.device': 'cuda:1'"):
        check_devices(validate(_cfg(md={"device": "cuda:1"})), 1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_local_run_with_cuda_on_a_cpu_machine_stops_before_any_job(tmp_path):
    out = run_snakemake("--cores", "1", "--configfile", "config/test.yaml", "--config",
                        f"results_dir={tmp_path / 'r'}", "training={'device': 'cuda'}")
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "'training.device': 'cuda' names no device on this machine" in text, text[-3000:]
    assert not (tmp_path / "r" / "data").exists()  # no job ran
    plan = run_snakemake("-n", "--configfile", "config/test.yaml", "--config", f"results_dir={tmp_path / 'r'}",
                         "training={'device': 'cuda'}")
    assert plan.returncode == 0, plan.stderr[-2000:]  # planning alone (e.g. for a cluster) is fine


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_job_given_cuda_on_a_cpu_machine_stops_with_one_message(tiny_cfg, tiny_data, tmp_path, capsys):
    from tsmlip.cli import main as cli

    ds, sp, _ = tiny_data
    s = {k: json.loads(json.dumps(tiny_cfg[k])) for k in ("network", "training", "born_again")}
    s["training"]["device"] = "cuda"
    rc = cli(["train", "--model-id", "control/w6-s6-l1/seed1", "--config-json", json.dumps(s), "--dataset", str(ds),
              "--split", str(sp), "--out-dir", str(tmp_path / "m"), "--checkpoint-dir", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert rc == 1 and "tsmlip train: error: device 'cuda' requested" in err and "Traceback" not in err


def test_timing_step_refuses_less_than_one_cell():
    from tsmlip.core.elements import ElementError
    from tsmlip.core.md.system import Crystal
    from tsmlip.md.timing import check_timing_size

    check_timing_size(4, Crystal("Al", "fcc", 4.05, None, "test"))
    with pytest.raises(ElementError, match="md.timing.n_atoms.*less than one fcc cell of Cu"):
        check_timing_size(1, Crystal("Cu", "fcc", 3.61, None, "test"))


def test_every_shipped_config_passes():
    from conftest import ROOT

    for overlay in sorted((ROOT / "config").glob("*.yaml")):
        if overlay.name != "config.yaml":
            load_config(BASE_CONFIG, overlay)


@pytest.mark.parametrize("config_json, message", [
    ('{"split": {"valid_fraction": 0.1, "test_fraction": 0.1, "seed": 1}}', "lacks the config keys "
                                                                            "training.train_eval_fraction"),
    ('{"split": ', "not valid JSON"),
    ("[1, 2]", "not a JSON object"),
])
def test_a_step_refuses_a_config_json_without_its_keys(tmp_path, capsys, config_json, message):
    """Every step's one config flag (tsmlip.cli.step_parser) names what is missing, before any work."""
    from tsmlip.cli import main as cli

    with pytest.raises(SystemExit) as stop:
        cli(["split", "--config-json", config_json, "--dataset", str(tmp_path / "d.npz"),
             "--out", str(tmp_path / "s.npz")])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "argument --config-json: " + message in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def _schema_nodes(node):
    """Every mapping inside the schema (definitions, properties, items, oneOf alternatives ...)."""
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _schema_nodes(v)
    elif isinstance(node, list):
        for v in node:
            yield from _schema_nodes(v)


def test_schema_holds_no_defaults():
    """config/config.yaml is the one home of every default; the schema has types, ranges and required keys."""
    from tsmlip.config import load_schema

    with_default = [n for n in _schema_nodes(load_schema()) if "default" in n]
    assert not with_default, with_default


def test_every_key_of_config_yaml_is_required():
    """The code reads config keys without fallbacks: each key config/config.yaml sets is required by the
    schema, so a config missing one fails when it is loaded rather than in a job."""
    import yaml
    from tsmlip.config import load_schema

    schema = load_schema()

    def walk(node, cfg, path):
        node = schema["definitions"][node["$ref"].split("/")[-1]] if "$ref" in node else node
        if not isinstance(cfg, dict) or "properties" not in node:
            return
        missing = set(cfg) - set(node.get("required", []))
        assert not missing, f"{path or '<top level>'}: {sorted(missing)} not required"
        for key, value in cfg.items():
            walk(node["properties"][key], value, f"{path}.{key}".lstrip("."))

    walk(schema, yaml.safe_load(BASE_CONFIG.read_text()), "")


@pytest.mark.parametrize("overlay, message", [
    ("rdf: {n_bins: 1}", "config key 'rdf.n_bins': 1 is less than the minimum of 2"),
    ("training: {batch_size: sixteen}", "config key 'training.batch_size': 'sixteen' is not of type 'integer'"),
    ("md: {probe: {engine: lammps}}", "config key 'md.probe.engine': 'lammps' is not one of ['ase', 'torch']"),
    ("rdf: {nbins: 80}", "config key 'rdf': Additional properties are not allowed ('nbins' was unexpected)"),
    ("budget_check: {seeds: [1, 7]}", "config key 'budget_check.seeds': [7] not among sweep.seeds [1, 2, 3, 4] (a check "
                                      "compares a seed with itself at the doubled budget); list sweep seeds or write all"),
])
def test_an_overlay_with_a_wrong_value_fails_naming_the_key(tmp_path, overlay, message):
    path = tmp_path / "overlay.yaml"
    path.write_text(overlay + "\n")
    with pytest.raises(ConfigError) as err:
        load_config(BASE_CONFIG, path)
    assert str(err.value) == message


def test_an_overlay_alone_is_refused_naming_a_missing_key():
    """Without config/config.yaml as the base nothing fills the keys an overlay leaves out."""
    with pytest.raises(ConfigError, match=r"config key '<top level>': '\w+' is a required property"):
        load_config(TEST_CONFIG)



def test_one_split_arithmetic():
    """The planning check and the split step share one arithmetic (tsmlip.data.split.split_sizes) and one list
    of splits."""
    from tsmlip import aggregate
    from tsmlip.data.split import SPLITS, make_split, split_sizes

    assert aggregate.SPLITS is SPLITS
    for n in (3, 7, 24, 120, 1001):
        for vf, tf in ((0.1, 0.1), (0.17, 0.17), (0.3, 0.05)):
            sizes = split_sizes(n, vf, tf)
            assert {k: len(v) for k, v in make_split(n, vf, tf, seed=1).items()} == sizes
    with pytest.raises(ConfigError, match="leave none for training"):
        check_split_sizes(validate(_cfg()), 2, "n")


def test_budget_check_seeds_all_checks_every_sweep_seed(tmp_path):
    from tsmlip.model_ids import budget_check_ids
    cfg = load_config(BASE_CONFIG)
    assert cfg["budget_check"]["seeds"] == "all"
    sweep_ids = [m for m in budget_check_ids(cfg) if m.kind in cfg["sweep"]["kinds"]]
    assert sorted({m.seed for m in sweep_ids}) == sorted(cfg["sweep"]["seeds"])
    path = tmp_path / "overlay.yaml"
    path.write_text("budget_check: {seeds: [2]}\n")
    one = [m for m in budget_check_ids(load_config(BASE_CONFIG, path)) if m.kind in cfg["sweep"]["kinds"]]
    assert {m.seed for m in one} == {2} and len(sweep_ids) == len(cfg["sweep"]["seeds"]) * len(one)
