"""Configuration: loading, schema validation and the checks made when the workflow is planned.

The ids themselves (:class:`tsmlip.ids.ModelId`, :class:`tsmlip.ids.Arch`) and the error a configuration raises
(:class:`tsmlip.ids.ConfigError`) live in the base layer, :mod:`tsmlip.ids`; what the plain-torch HIPNN computes in
:mod:`tsmlip.network_support`; the models a configuration plans (the teacher, the sweep, Born-Again, the budget
check) in :mod:`tsmlip.model_ids`.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from .ids import ConfigError
from .network_support import unsupported_network

#: the configuration's schema (types, ranges, allowed values, required keys; no defaults: every value lives in
#: config/config.yaml), package data that :func:`validate` checks against. The package reads no configuration
#: file of its own: a step gets its settings from its caller (a rule passes the sections it needs;
#: :func:`load_config` reads only the files it is named).
SCHEMA = "schema.yaml"

def load_schema() -> dict:
    """The schema, read through the installed package (:data:`SCHEMA`)."""
    from importlib import resources

    import yaml  # here, not at import: the MD layer and scripts/gpu_campaign.py run without PyYAML

    return yaml.safe_load(resources.files(__package__).joinpath(SCHEMA).read_text())


def validate(cfg: dict) -> dict:
    """Check ``cfg`` against the schema (:func:`load_schema`) and cross-check values; ``cfg`` unchanged.

    The one validation of a run: the workflow calls it when it is planned, :func:`load_config` on loading.
    Raises :class:`ConfigError` naming the offending key.
    """
    import jsonschema

    _check_finite(cfg)
    schema = load_schema()
    cls = jsonschema.validators.validator_for(schema)
    # an integer is an integer: JSON Schema's "integer" also takes 1.0 (and Python's bool is an int); a seed of 1.0
    # or an epoch count of true would plan and fail in the step
    strict = cls.TYPE_CHECKER.redefine(
        "integer", lambda _, x: isinstance(x, int) and not isinstance(x, bool))
    validator = jsonschema.validators.extend(cls, type_checker=strict)(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        key = ".".join(str(p) for p in e.absolute_path) or "<top level>"
        raise ConfigError(f"config key '{key}': {e.message}")
    _cross_check(cfg)
    return cfg


#: config keys no result depends on (how many CPU threads a training job uses): left out of a step's settings (the
#: --config-json of its rule's params, its fingerprint), so a change reruns nothing; the rule passes them as flags
NO_RESULT_DEPENDS_ON = ("training.torch_threads",)

#: lists whose order means nothing (sets of seeds): :func:`canonical` sorts them, so a reordered list plans the same
#: jobs with the same settings and reruns nothing
ORDERLESS_KEYS = ("teacher.seeds", "sweep.seeds", "born_again.seeds", "budget_check.seeds")


def canonical(cfg: dict) -> dict:
    """``cfg`` with each list of :data:`ORDERLESS_KEYS` sorted and the widths of ``training.learning_rate_by_width`` as
    strings (in place; returned): the workflow applies it when it is planned, before any step's settings are taken
    from the config."""
    for dotted in ORDERLESS_KEYS:
        *parents, last = dotted.split(".")
        node = cfg
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(last), list):
            node[last] = sorted(node[last])
    # the widths of training.learning_rate_by_width as the strings JSON makes of them (YAML reads 48 as a number): the
    # config, a step's --config-json and every fingerprint hold the same keys
    tr = cfg.get("training")
    if isinstance(tr, dict) and isinstance(tr.get("learning_rate_by_width"), dict):
        tr["learning_rate_by_width"] = {str(k): v for k, v in tr["learning_rate_by_width"].items()}
    return cfg


def _check_finite(cfg, path=()) -> None:
    """:class:`ConfigError` naming the first NaN or infinite number (YAML's ``.nan`` / ``.inf``): a range check
    does not stop a NaN (every comparison with it is false), and no setting of the workflow means infinity."""
    import math

    items = cfg.items() if isinstance(cfg, dict) else enumerate(cfg) if isinstance(cfg, list) else ()
    for k, v in items:
        if isinstance(v, float) and not math.isfinite(v):
            key = ".".join(str(p) for p in (*path, k))
            raise ConfigError(f"config key '{key}': {v} is not a finite number")
        _check_finite(v, (*path, k))


def check_results_dir(cfg: dict) -> None:
    """:class:`ConfigError` when ``results_dir`` names something that is not a folder (a file)."""
    path = results_dir(cfg)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"config key 'results_dir': {str(path)!r} is a file, not a folder; name a folder (it is "
                          f"made when missing)")


def _strict_loader():
    """A YAML safe loader that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"{node.start_mark.name}: line {key_node.start_mark.line + 1}: the key {key!r} is "
                                  f"given twice in one mapping (first on line {seen[key] + 1}); YAML would keep the "
                                  f"last silently: remove one")
            seen[key] = key_node.start_mark.line
        return loader.construct_mapping(node, deep=deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return Loader


def load_yaml_file(path) -> dict:
    """A config file read as YAML, refusing keys given twice (:class:`ConfigError` naming the file and line)."""
    import yaml

    with open(path) as fh:
        return yaml.load(fh, Loader=_strict_loader()) or {}


def check_config_files(paths) -> None:
    """Read each of the config files ``paths`` (the workflow's base and its --configfile overlays) once more,
    refusing a key given twice in one of them (Snakemake's own reading keeps the last silently)."""
    for p in paths:
        if str(p).endswith((".yaml", ".yml")) and Path(p).is_file():
            load_yaml_file(p)


def _cross_check(cfg: dict) -> None:
    net = cfg["network"]
    if not net["dist_soft_min"] < net["dist_soft_max"] < net["dist_hard_max"]:
        raise ConfigError("config key 'network': need dist_soft_min < dist_soft_max < dist_hard_max")
    sp = cfg["split"]
    if sp["valid_fraction"] + sp["test_fraction"] >= 1.0:
        raise ConfigError("config key 'split': valid_fraction + test_fraction must be below 1")
    tr = cfg.get("training") or {}
    if tr.get("engine") == "hippynn" and tr.get("ema_decay", 0) > 0:
        raise ConfigError("config key 'training.ema_decay': the weight average is the fast engine's; set "
                          "training.ema_decay: 0 with training.engine: hippynn")
    for width in (tr.get("learning_rate_by_width") or {}):
        if not str(width).isdigit() or int(width) < 1:
            raise ConfigError(f"config key 'training.learning_rate_by_width': {width!r} is not a network width (a "
                              f"positive integer, e.g. 48: 2.0e-3)")
    if tr.get("min_learning_rate") is not None and tr["min_learning_rate"] > tr["learning_rate"]:
        raise ConfigError(f"config key 'training.min_learning_rate': the floor ({tr['min_learning_rate']:g}) is above "
                          f"training.learning_rate ({tr['learning_rate']:g}); lower it or set it to null (no floor)")
    bc_seeds = (cfg.get("budget_check") or {}).get("seeds")
    if isinstance(bc_seeds, list) and set(bc_seeds) - set(cfg["sweep"]["seeds"]):
        raise ConfigError(f"config key 'budget_check.seeds': {sorted(set(bc_seeds) - set(cfg['sweep']['seeds']))} not "
                          f"among sweep.seeds {cfg['sweep']['seeds']} (a check compares a seed with itself at the doubled "
                          f"budget); list sweep seeds or write all")
    src = cfg["data"]["source"]
    if src != "emt" and not cfg["data"]["path"]:
        raise ConfigError(f"config key 'data.path': required when data.source is {src!r}")
    if src == "emt":
        # the generator stores ASE's forces and refuses close contacts; these keys are for files
        if cfg["data"]["forces_are"] not in (None, "forces"):
            raise ConfigError("config key 'data.forces_are': the EMT generator stores forces; "
                              "the key applies to data.source ani_h5 / extxyz")
        if cfg["data"]["close_contacts"] not in (None, "error"):
            raise ConfigError("config key 'data.close_contacts': the EMT generator refuses close contacts; "
                              "drop / keep apply to data.source ani_h5 / extxyz")
    from ase.data import atomic_numbers
    for section in ("md", "rdf"):
        el = cfg[section]["element"]
        if el is not None and el not in atomic_numbers:
            raise ConfigError(f"config key '{section}.element': {el!r} is not a chemical element symbol")
    ba = cfg["born_again"]
    if ba["enabled"]:
        from .loss_weights import BornAgainSchedule, max_epochs_for
        try:
            sched = BornAgainSchedule(ba["schedule"], 0, 0, ba["epoch_scale"], ba["interpolation"])
        except ValueError as e:
            raise ConfigError(f"config key 'born_again': {e}") from None
        max_ep = max_epochs_for("born_again", cfg)
        if max_ep < sched.final_epoch:
            raise ConfigError(f"config key 'born_again.max_epochs': {max_ep} ends before the schedule's "
                              f"last row (epoch {sched.final_epoch})")
    _check_network_users(cfg)
    calc_labels = cfg["foundation"]["calculator"] is not None  # the calculator's atom energies
    if "student_oracle" in cfg["sweep"]["kinds"] and not calc_labels and not has_reference_atom_energies(cfg["data"]):
        raise ConfigError("config key 'sweep.kinds': student_oracle learns the reference's own per-atom energies, "
                          f"which data.source {src!r} does not carry (the embedded EMT data do; an extended XYZ "
                          "file does when its frames hold an 'energies' per-atom array); remove student_oracle")
    _check_calculator(cfg["foundation"]["calculator"])
    lab = cfg["labels"]["teacher"]
    if lab != "mean" and int(lab) not in cfg["teacher"]["seeds"]:
        raise ConfigError(f"config key 'labels.teacher': seed {lab} is not in teacher.seeds")
    if src == "emt":  # the size of the data is known before they exist
        check_split_sizes(cfg, int(cfg["data"]["emt"]["n_configs"]), "data.emt.n_configs")
    _check_timing_size(cfg)
    _check_resources(cfg)


def _check_network_users(cfg: dict) -> None:
    """ConfigError naming the first ``network:`` setting that a planned user of the plain-torch HIPNN does not
    compute (:data:`tsmlip.network_support.NETWORK_SUPPORT`): the fast training engine, the stacked liquid, a
    deployed engine."""
    md, rdf = cfg["md"], cfg["rdf"]
    deployed = [f"md.engines: {e}" for e in md["engines"] if e in ("lammps", "torchsim") and md["enabled"]]
    deployed += ["rdf.engine: lammps"] if not rdf["stack"] and rdf["engine"] == "lammps" else []
    users = [("stacked", "the fast training engine (training.engine: fast)", "set training.engine: hippynn",
              cfg["training"]["engine"] == "fast"),
             ("stacked", "the stacked liquid (rdf.stack: true)", "set rdf.stack: false", rdf["stack"]),
             ("plain", f"the exported model ({', '.join(deployed)})", "use the ase or torch engine", bool(deployed))]
    for layout, who, advice, planned in users:
        found = unsupported_network(cfg["network"], layout) if planned else None
        if found is not None:
            raise ConfigError(f"config key 'network.{found[0]}': {who} {found[1]}; {advice} for this network")


def config_value(cfg: dict, dotted: str):
    """The value under the dotted key ``dotted`` (e.g. ``md.timing.torch_threads``); :class:`KeyError` naming the
    first missing part."""
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(part)
        node = node[part]
    return node


@dataclass(frozen=True)
class RuleResources:
    """A rule's row of the ``resources:`` table, references resolved: ``gpu`` is False (no GPU), True (one GPU)
    or the device a GPU job runs on (``gpu: foundation.device``: one GPU unless that device is ``cpu``)."""

    runtime_min: int
    mem_mb: int
    threads: int
    gpu: bool | str


def rule_resources(cfg: dict, rule: str) -> RuleResources:
    """The scheduler resources of ``rule`` (a Snakemake rule name) from the config's ``resources:`` table, the one
    place they live (the rules read them through workflow/rules/common.smk). :class:`ConfigError` naming the key
    when the table has no row for the rule or a reference names no value."""
    table = cfg["resources"]
    if rule not in table:
        raise ConfigError(f"config key 'resources': no row for rule {rule!r} (runtime_min, mem_mb, gpu, threads)")
    row = table[rule]
    threads = row["threads"]
    if isinstance(threads, str):
        try:
            threads = config_value(cfg, threads)
        except KeyError:
            raise ConfigError(f"config key 'resources.{rule}.threads': {row['threads']!r} "
                              "names no config key") from None
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ConfigError(f"config key 'resources.{rule}.threads': {row['threads']} is {threads!r}, "
                              "not a positive integer")
    gpu = row["gpu"]
    if isinstance(gpu, str):  # the schema allows only foundation.device
        gpu = str(config_value(cfg, gpu))
    return RuleResources(int(row["runtime_min"]), int(row["mem_mb"]), int(threads), gpu)


def _check_resources(cfg: dict) -> None:
    """Every row's references resolve; the size probe's memory holds what its children may reach (about two
    budgets above the parent, md.probe.cpu_memory_budget_MB)."""
    for rule in cfg["resources"]:
        rule_resources(cfg, rule)
    probe = cfg["resources"].get("max_atoms")
    need = 2 * cfg["md"]["probe"]["cpu_memory_budget_MB"]
    if probe is not None and probe["mem_mb"] < need:
        raise ConfigError(f"config key 'resources.max_atoms.mem_mb': {probe['mem_mb']} MB is below the size probe's "
                          f"2 x md.probe.cpu_memory_budget_MB = {need:g} MB")


def check_split_sizes(cfg: dict, n_configs: int, n_from: str) -> None:
    """:class:`ConfigError` naming the key when the split of ``n_configs`` configurations (``n_from``: where the
    number comes from) leaves no training configuration, or when ``training.train_eval_fraction`` of the
    training split is no configuration (hippynn evaluates ``int(n_train * fraction)`` each epoch)."""
    from .data.split import split_sizes, train_eval_size

    sp = cfg["split"]
    sizes = split_sizes(n_configs, sp["valid_fraction"], sp["test_fraction"])
    if sizes["train"] < 1:
        raise ConfigError(f"config key 'split.valid_fraction' / 'split.test_fraction': {n_configs} configurations "
                          f"({n_from}) leave none for training after {sizes['valid']} validation and "
                          f"{sizes['test']} test configurations")
    f = cfg["training"]["train_eval_fraction"]
    if train_eval_size(sizes["train"], f) < 1:
        raise ConfigError(f"config key 'training.train_eval_fraction': {f} of the {sizes['train']} training "
                          f"configurations ({n_from}: {n_configs}) is none; need at least 1/{sizes['train']} = "
                          f"{1 / sizes['train']:.3g}")


#: atoms in the conventional cell the MD cost stage builds (tsmlip.core.elements.unit_cell; hcp: orthorhombic)
ATOMS_PER_CELL = {"fcc": 4, "bcc": 2, "hcp": 4, "diamond": 8, "sc": 1}


def _check_timing_size(cfg: dict) -> None:
    """``md.timing.n_atoms`` must hold one cell of the crystal timed, where the crystal is known when the run
    is planned (``md.crystal_structure``, the reference state of ``md.element``, or aluminum for the embedded
    EMT data); else the step checks it (:func:`tsmlip.md.timing.check_timing_size`)."""
    md = cfg["md"]
    if not md["enabled"]:
        return
    struct = md["crystal_structure"]
    el = md["element"] or ("Al" if cfg["data"]["source"] == "emt" else None)
    if struct is None and el is not None:
        from ase.data import atomic_numbers, reference_states

        struct = (reference_states[atomic_numbers[el]] or {}).get("symmetry")
    per_cell = ATOMS_PER_CELL.get(struct)
    n = int(md["timing"]["n_atoms"])
    if per_cell and n < per_cell:
        raise ConfigError(f"config key 'md.timing.n_atoms': {n} atoms is less than one {struct} cell "
                          f"({per_cell} atoms) of the crystal timed; time at least {per_cell}")


#: the config keys that name a device
DEVICE_KEYS = (("training", "device"), ("md", "device"), ("rdf", "device"))


def check_devices(cfg: dict, n_gpus: int) -> None:
    """:class:`ConfigError` naming the key when a device setting names a CUDA device this machine does not have
    (``n_gpus`` CUDA devices). Called when the jobs run on the planning machine; a cluster job checks its own
    device when it starts (:func:`tsmlip.core.model.resolve_device`) and stops with one message."""
    for sec, key in DEVICE_KEYS:
        dev = str(cfg[sec][key])
        if dev.startswith("cuda"):
            index = int(dev.split(":")[1]) if ":" in dev else 0
            if index >= n_gpus:
                raise ConfigError(f"config key '{sec}.{key}': {dev!r} names no device on this machine "
                                  f"({n_gpus} CUDA devices); use auto or cpu, or run the jobs on a GPU cluster")


def _check_calculator(spec) -> None:
    """``foundation.calculator``: its package (or factory module) must be importable, so that a missing one stops
    the run before any job (tsmlip.foundation refuses the rest: per-atom energies, sums, elements, NaN)."""
    if spec is None:
        return
    import importlib.util

    module = {"chgnet": "chgnet", "emt": "ase.calculators.emt"}.get(spec) if isinstance(spec, str) and ":" not in spec \
        else (spec if isinstance(spec, str) else spec["factory"]).split(":")[0]
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        name = spec if isinstance(spec, str) else spec.get("name") or spec["factory"]
        hint = " (pip install -e '.[foundation]' installs chgnet==0.4.2)" if spec == "chgnet" else ""
        raise ConfigError(f"config key 'foundation.calculator': calculator '{name}': cannot import {module!r}{hint}")


def calculator_name(cfg: dict) -> str | None:
    """The teacher calculator's display name (``foundation.calculator``), None when there is none."""
    spec = cfg["foundation"]["calculator"]
    if spec is None or isinstance(spec, str):
        return spec
    return str(spec.get("name") or spec["factory"])


def reference_potential(cfg: dict) -> str | None:
    """The data's reference potential that runs MD itself (``emt`` for the embedded data), None when there
    is none: external data, or a calculator as the teacher (then the calculator is the reference). Reads
    ``data.source`` and ``foundation.calculator``."""
    if cfg["data"]["source"] == "emt" and cfg["foundation"]["calculator"] is None:
        return "emt"
    return None


def has_reference_atom_energies(data_cfg: dict) -> bool:
    """Whether the configured data carry the reference potential's per-atom energies (``ref_atom_E``): the
    embedded EMT set always, an extended XYZ file when its first frame has an ``energies`` array (as ASE
    writes a calculator's per-atom energies), ANI-Al never (DFT has no unique per-atom energies)."""
    if data_cfg["source"] == "emt":
        return True
    if data_cfg["source"] == "extxyz":
        from ase.io import read

        try:
            first = read(data_cfg["path"], index=0, format="extxyz")
        except Exception:  # a missing or unreadable file: the data stage reports it
            return True
        from .data.io import per_atom_energies

        return per_atom_energies(first) is not None
    return False


def deep_merge(base: dict, overlay: dict) -> dict:
    """``overlay`` on top of ``base``: dicts merge key by key, anything else is replaced (as Snakemake
    merges ``--configfile`` over the Snakefile's ``configfile:``)."""
    out = copy.deepcopy(base)
    for k, v in overlay.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_config(*paths: str | Path) -> dict:
    """The config files ``paths`` merged in order, validated (:func:`validate`): the first is the base
    (e.g. config/config.yaml), each later one an overlay merged on top, as Snakemake merges ``--configfile``
    over the Snakefile's ``configfile:``. Nothing is read that the caller did not name."""
    if not paths:
        raise TypeError("load_config: name the config files (the base first, then any overlays)")
    cfg: dict = {}
    for path in paths:
        cfg = deep_merge(cfg, load_yaml_file(path))
    return canonical(validate(cfg))


def results_dir(cfg: dict) -> Path:
    return Path(cfg["results_dir"])
