"""The campaign's plan: where its settings come from (the YAML configs or their JSON snapshot), the sections and
their budgets, the roles and their architectures, and the sizes, steps and limits of every measurement."""
from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASE_CONFIG = ROOT / "config" / "config.yaml"
PAPER_CONFIG = ROOT / "config" / "paper.yaml"  # an overlay on BASE_CONFIG
#: the JSON snapshot of both configs, for machines without PyYAML (written by ``--write-config-snapshot``)
DEFAULT_SNAPSHOT = ROOT / "gpu_wheels" / "campaign_config.json"

SECTIONS = ("data", "train", "train_throughput", "md_timing", "max_atoms")
#: GPU time budgets per section (s); their sum, with ~20 s of imports and start-up, stays under 8 minutes
GPU_BUDGET_S = {"data": 30.0, "train": 50.0, "train_throughput": 45.0, "md_timing": 170.0, "max_atoms": 155.0}
GPU_TOTAL_S = sum(GPU_BUDGET_S.values())
#: CPU smoke budgets (s): caps far above what the tiny sizes need (~40 s in all on one free core), so that a
#: loaded machine finishes every measurement too, only later
SMOKE_BUDGET_S = {"data": 60.0, "train": 120.0, "train_throughput": 60.0, "md_timing": 150.0, "max_atoms": 150.0}
#: the smoke run's limit per measurement (s)
SMOKE_LIMIT_S = 60.0

#: the models: role -> (which config, where its architecture comes from)
ROLES = ("paper_teacher", "paper_student_small", "paper_student_base", "default_teacher", "default_student")
TEACHERS = {"paper_teacher": None, "paper_student_small": "paper_teacher", "paper_student_base": "paper_teacher",
            "default_teacher": None, "default_student": "default_teacher"}  # role -> its teacher (ratios)
THROUGHPUT_ROLES = ("paper_student_small", "paper_teacher")
#: the smoke run's MD and probe roles (every role is trained; the table's other rows stay "-")
SMOKE_ROLES = ("paper_teacher", "paper_student_small")
SMALL_SIZE = 4000  # atoms: the second MD size (the first is the paper's, config/paper.yaml md.timing.n_atoms)
GB = 10 ** 9
MB = 1 << 20


def write_config_snapshot(path: str | Path) -> dict:
    """Write the validated config/config.yaml and its config/paper.yaml overlay as one JSON file
    (``{"default": ..., "paper": ...}``), for running where PyYAML is not installed."""
    from tsmlip.config import load_config
    from tsmlip.io_utils import atomic_write_json

    snap = {"default": load_config(BASE_CONFIG), "paper": load_config(BASE_CONFIG, PAPER_CONFIG),
            "sources": [str(BASE_CONFIG.relative_to(ROOT)), str(PAPER_CONFIG.relative_to(ROOT))]}
    atomic_write_json(path, snap)
    return snap


def load_configs(snapshot: str | Path | None = None) -> tuple[dict, dict, str]:
    """(default config, paper config, where they came from): the YAML files when PyYAML and jsonschema
    are importable and no ``snapshot`` is named, else the JSON snapshot (:func:`write_config_snapshot`)."""
    if snapshot is None:
        try:
            from tsmlip.config import load_config

            return load_config(BASE_CONFIG), load_config(BASE_CONFIG, PAPER_CONFIG), "config/*.yaml"
        except ImportError as exc:
            snapshot = DEFAULT_SNAPSHOT
            if not snapshot.exists():
                raise SystemExit(f"gpu_campaign: {exc.name} is not installed and there is no config snapshot at "
                                 f"{snapshot}: run `make gpu-wheels` (or --write-config-snapshot) where it is")
    snap = json.loads(Path(snapshot).read_text())
    return snap["default"], snap["paper"], str(snapshot)


def model_plan(default_cfg: dict, paper_cfg: dict, smoke: bool) -> dict:
    """role -> {"arch", "network"}: the paper's network (7.5 A) for the paper's models, the default's (6.0 A)
    for the default config's. Smoke: tiny architectures, same roles and networks."""
    from tsmlip.model_ids import teacher_arch
    from tsmlip.ids import Arch

    sw = paper_cfg["sweep"]
    archs = {
        "paper_teacher": teacher_arch(paper_cfg),
        "paper_student_small": Arch(min(sw["width"]), min(sw["n_sensitivities"]), min(sw["n_atom_layers"])),
        "paper_student_base": Arch.from_dict(sw["base"]),
        "default_teacher": teacher_arch(default_cfg),
        "default_student": Arch.from_dict(default_cfg["sweep"]["base"]),
    }
    if smoke:
        archs = {"paper_teacher": Arch(8, 4, 2), "paper_student_small": Arch(4, 2, 1),
                 "paper_student_base": Arch(6, 4, 1), "default_teacher": Arch(6, 4, 2),
                 "default_student": Arch(4, 2, 1)}
    return {role: {"arch": archs[role],
                   "network": (paper_cfg if role.startswith("paper") else default_cfg)["network"]}
            for role in ROLES}


def settings(default_cfg: dict, paper_cfg: dict, smoke: bool, args) -> dict:
    """Sizes, steps and per-measurement limits of the run (GPU or smoke), with the command line's overrides."""
    big = int(paper_cfg["md"]["timing"]["n_atoms"])
    s = {
        "md_sizes": [big, SMALL_SIZE],
        "md_steps": 10, "md_warmup": 3, "md_repeats": 3,
        "md_engines": md_engines(getattr(args, "md_engines", None)),
        "md_limit_s": {"ase": {big: 60.0, SMALL_SIZE: 15.0}, "torch": {big: 25.0, SMALL_SIZE: 12.0},
                       "lammps": {big: 25.0, SMALL_SIZE: 12.0}, "torchsim": {big: 25.0, SMALL_SIZE: 12.0}},
        "n_configs": 90, "train_s": 6.0, "train_reserve_s": 8.0, "throughput_batches": [8, 64], "throughput_steps": 20,
        "throughput_stacks": [1, 16],
        "probe": {"start_atoms": 16000, "growth_factor": 2.0, "resolution": 0.15, "max_atoms_cap": 20_000_000},
        "probe_limit_s": 15.0, "throughput_limit_s": 15.0, "cap_GB": float(default_cfg["paper_reference"]["md_cost"]["gpu_memory_GB"]),
        "fake_oom_above": None, "roles": list(ROLES),
    }
    if smoke:
        s.update(md_sizes=[64, 32], md_steps=2, md_warmup=1, md_repeats=2,
                 md_limit_s={e: {64: SMOKE_LIMIT_S, 32: SMOKE_LIMIT_S} for e in ("ase", "torch", "lammps", "torchsim")},
                 n_configs=10, train_s=0.2, train_reserve_s=5.0, throughput_batches=[2, 4], throughput_steps=2,
                 throughput_stacks=[1, 2],
                 probe={"start_atoms": 32, "growth_factor": 2.0, "resolution": 1.0, "max_atoms_cap": 4096},
                 probe_limit_s=SMOKE_LIMIT_S, throughput_limit_s=SMOKE_LIMIT_S, fake_oom_above=200,
                 roles=list(SMOKE_ROLES))
    for key in ("md_steps", "md_warmup", "md_repeats", "n_configs", "train_s", "probe_limit_s"):
        if getattr(args, key, None) is not None:
            s[key] = getattr(args, key)
    if getattr(args, "md_sizes", None):
        s["md_sizes"] = list(args.md_sizes)
    return s


#: the MD engines always timed; the deployed ones (LAMMPS, TorchSim: tsmlip.core.md.deployed) where installed
BASE_MD_ENGINES = ("ase", "torch")
DEPLOYED_MD_ENGINES = ("lammps", "torchsim")


def md_engines(asked=None) -> list[str]:
    """The engines the campaign times: ``asked`` (``--md-engines``; a deployed one that cannot run here is an
    error naming what to install), else ase and torch and every deployed engine whose packages and plugin are
    present (``make lammps`` / ``make deploy`` on the GPU machine)."""
    from tsmlip.core.md.deployed import EngineUnavailable, missing

    if asked:
        for e in asked:
            if e in DEPLOYED_MD_ENGINES and missing(e):
                raise EngineUnavailable(missing(e))
        return list(asked)
    return list(BASE_MD_ENGINES) + [e for e in DEPLOYED_MD_ENGINES if missing(e) is None]


def emt_settings(default_cfg: dict, n_configs: int, smoke: bool) -> dict:
    """The default config's EMT generator settings, shortened (a few MD steps per trajectory: the
    configurations only need to be aluminum-like)."""
    from tsmlip.config import deep_merge

    short = {"n_configs": int(n_configs), "equilibration_steps": 5 if smoke else 10,
             "steps_between_snapshots": 3 if smoke else 5, "snapshots_per_trajectory": 5 if smoke else 10,
             "liquid": {"melt_steps": 5 if smoke else 20}}
    if smoke:
        short["supercells"] = [[2, 2, 2]]
        short["liquid"]["supercells"] = [[2, 2, 2]]
    return deep_merge(default_cfg["data"]["emt"], short)


def md_settings(default_cfg: dict, s: dict, n_atoms: int, kernels: str = "auto") -> dict:
    """The default ``md:`` section for one measurement: the torch engine's pair search is ``cell_list`` on both
    device types (no vesin-torch needed), timing steps of the campaign."""
    from tsmlip.config import deep_merge

    return deep_merge(default_cfg["md"], {
        "kernels": kernels, "pair_finder": {"cpu": "cell_list", "cuda": "cell_list"},
        "timing": {"n_atoms": int(n_atoms), "steps": int(s["md_steps"]), "warmup_steps": int(s["md_warmup"]),
                   "repeats": int(s["md_repeats"]), "torch_threads": 1},
        "probe": {"engine": "torch", **s["probe"]}})
