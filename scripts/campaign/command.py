"""The paper's GPU cost figures (Figs 2 and 5) in one call of at most 8 minutes on one GPU.

The command line of :mod:`campaign` (``scripts/gpu_campaign.py``): the plan, the sections in order,
the table at the end (also when the run is interrupted)."""
from __future__ import annotations

import argparse
import signal
import sys
import time

from tsmlip.core.md.deployed import EngineUnavailable
from .plan import (GPU_BUDGET_S, GPU_TOTAL_S, ROLES, SECTIONS, SMOKE_BUDGET_S, TEACHERS, load_configs,
                   model_plan, settings, write_config_snapshot)
from .report import markdown
from .runner import Campaign
from .sections import device_facts, make_data, max_atoms, md_timing, train_models, train_throughput


def parse_budgets(items, smoke: bool) -> dict:
    budgets = dict(SMOKE_BUDGET_S if smoke else GPU_BUDGET_S)
    for item in items or []:
        name, _, value = item.partition("=")
        if name not in budgets or not value:
            raise SystemExit(f"--budget {item!r}: expected SECTION=SECONDS with SECTION one of {', '.join(SECTIONS)}")
        budgets[name] = float(value)
    return budgets


def parse_models(items) -> dict:
    out = {}
    for item in items or []:
        role, _, path = item.partition("=")
        if role not in ROLES or not path:
            raise SystemExit(f"--model {item!r}: expected ROLE=model.pt with ROLE one of {', '.join(ROLES)}")
        out[role] = path
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gpu_campaign", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", help="output folder (gpu_campaign.json, gpu_campaign.md, models/)")
    p.add_argument("--smoke", action="store_true", help="tiny models and systems on the CPU (seconds)")
    p.add_argument("--device", help="cuda (default when present), cuda:1, cpu")
    p.add_argument("--budget", action="append", metavar="SECTION=S",
                   help=f"a section's time budget in s (GPU defaults: "
                        f"{', '.join(f'{k}={v:g}' for k, v in GPU_BUDGET_S.items())}; sum {GPU_TOTAL_S:g})")
    p.add_argument("--total-s", type=float, help="overall limit in s (default: the sum of the budgets)")
    p.add_argument("--model", action="append", metavar="ROLE=PATH",
                   help=f"use this model.pt for a role instead of training one ({', '.join(ROLES)})")
    p.add_argument("--md-sizes", type=int, nargs="+", help="MD sizes (atoms), the paper's first (default 48000 4000)")
    p.add_argument("--md-engines", nargs="+", choices=("ase", "torch", "lammps", "torchsim"),
                   help="MD engines (default: ase, torch and lammps / torchsim where installed)")
    p.add_argument("--md-steps", type=int, help="timed steps per block (default 10)")
    p.add_argument("--md-warmup", type=int, help="untimed warm-up steps (default 3)")
    p.add_argument("--md-repeats", type=int, help="timed blocks, median reported (default 3)")
    p.add_argument("--n-configs", type=int, help="EMT configurations generated (default 90)")
    p.add_argument("--train-s", type=float, help="training seconds per model (default 6)")
    p.add_argument("--probe-limit-s", type=float, help="time limit of one max-atoms probe in s (default 15)")
    p.add_argument("--config-snapshot", help="settings from this JSON (default: config/*.yaml, or "
                                             "gpu_wheels/campaign_config.json without PyYAML)")
    p.add_argument("--write-config-snapshot", metavar="PATH", help="write the settings snapshot and exit")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.write_config_snapshot:
        write_config_snapshot(args.write_config_snapshot)
        print(f"config snapshot -> {args.write_config_snapshot}")
        return 0
    if not args.out:
        raise SystemExit("gpu_campaign: --out is required")
    t_start = time.perf_counter()
    import torch

    from tsmlip.core.md import common
    from tsmlip.core.model import resolve_device

    common.QUIET = True
    default_cfg, paper_cfg, source = load_configs(args.config_snapshot)
    device = resolve_device(args.device or ("cpu" if args.smoke else "auto"))
    if device.type == "cpu":
        torch.set_num_threads(1)
    budgets = parse_budgets(args.budget, args.smoke)
    given = parse_models(args.model)
    plan = model_plan(default_cfg, paper_cfg, args.smoke)
    try:
        s = settings(default_cfg, paper_cfg, args.smoke, args)
    except EngineUnavailable as exc:
        print(f"gpu_campaign: error: {exc}", file=sys.stderr)
        return 2
    header = {"smoke": bool(args.smoke), "device_type": device.type, "config_source": source,
              "command": " ".join(sys.argv if argv is None else ["gpu_campaign", *argv]),
              "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "import_s": round(time.perf_counter() - t_start, 3),
              "settings": {**s, "md_limit_s": {e: {str(n): v for n, v in d.items()} for e, d in s["md_limit_s"].items()}},
              "models": {r: {"arch": p["arch"].tag, "network_cutoff_A": p["network"]["dist_hard_max"],
                             "teacher": TEACHERS[r]} for r, p in plan.items()},
              "paper_reference": default_cfg["paper_reference"].get("md_cost"), "device": None}
    # a SIGTERM (e.g. an outer `timeout`) ends the run through the finally below, which writes the table; set
    # before the first write of the JSON, so that no signal after it can skip the table
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    camp = Campaign(args.out, budgets, header, total_s=args.total_s or sum(budgets.values()))
    camp.say(f"device {device}; budgets {budgets} (sum {sum(budgets.values()):.0f} s); out {camp.json_path}")
    state: dict = {}
    try:
        try:
            camp.doc["device"] = device_facts(device)
        except Exception as exc:  # the measurements still stand without the device's description
            camp.doc["device"] = {k: None for k in ("device_name", "driver_version", "torch", "hippynn", "ase",
                                                    "kernels_on", "kernels_off")}
            camp.doc["device"].update(device_type=device.type, error=f"{type(exc).__name__}: {exc}",
                                      torch=torch.__version__)
        camp.say(f"{camp.doc['device']['device_name']}: kernels on = {camp.doc['device']['kernels_on']}")
        camp.write()
        with camp.section("data"):
            make_data(camp, default_cfg, s, args.smoke, state)
        with camp.section("train"):
            train_models(camp, default_cfg, plan, s, given, state, device)
        with camp.section("train_throughput"):
            if "arrays" in state:
                train_throughput(camp, default_cfg, plan, s, state, device)
        with camp.section("md_timing"):
            md_timing(camp, default_cfg, s, state, device)
        with camp.section("max_atoms"):
            max_atoms(camp, default_cfg, s, state, device)
        camp.finish()
    finally:
        from tsmlip.io_utils import atomic_write_text

        atomic_write_text(camp.md_path, markdown(camp.doc, default_cfg["paper_reference"]))
        camp.say(f"{'partial' if camp.doc['partial'] else 'complete'}: {camp.json_path}, {camp.md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
