"""The campaign's sections, each a series of measurements run by :class:`.runner.Campaign`: the device's facts,
the EMT data, the models, training throughput, MD timing and the most atoms per GPU."""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from .plan import GB, MB, ROLES, THROUGHPUT_ROLES, emt_settings, md_settings
from .runner import Campaign


def device_facts(device) -> dict:
    """The device and software: name, memory, driver (NVML, else nvidia-smi, else /proc), torch, hippynn and
    ase versions, the kernels hippynn picks with ``auto``, the allocator."""
    import torch

    from tsmlip.core.md.engines import set_kernels
    from tsmlip.core.md.hardware import hardware_info

    info = hardware_info(device)
    gpu = info.get("gpu", {})
    facts = {
        "device_type": device.type, "device_name": info["device_name"],
        "total_memory_bytes": gpu.get("total_memory_bytes"), "compute_capability": gpu.get("compute_capability"),
        "driver_version": gpu.get("driver_version") or (_driver_version() if device.type == "cuda" else None),
        "torch": info["torch"], "torch_cuda": torch.version.cuda, "hippynn": info["hippynn"], "ase": info["ase"],
        "numpy": info["numpy"], "python": info["python"], "triton": _version("triton"),
        "kernels_on": set_kernels("auto", device), "kernels_off": set_kernels("pytorch", device),
        "allocator": (torch.cuda.get_allocator_backend() if device.type == "cuda" else None),
        "PYTORCH_CUDA_ALLOC_CONF": os.environ.get("PYTORCH_CUDA_ALLOC_CONF"),
        "cpu": info["cpu"]["model"], "hardware": info,
    }
    return facts


def _version(name: str):
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _driver_version():
    import subprocess

    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return Path("/proc/driver/nvidia/version").read_text().splitlines()[0]
    except OSError:
        return None


def make_data(camp: Campaign, default_cfg: dict, s: dict, smoke: bool, state: dict) -> None:
    def run(soft):
        from tsmlip.data.emt import generate, to_arrays
        from tsmlip.data.split import make_split

        configs, summary = generate(emt_settings(default_cfg, s["n_configs"], smoke), progress=False)
        arrays = to_arrays(configs)
        state["arrays"] = arrays
        state["split"] = make_split(len(arrays["E"]), 0.1, 0.1, seed=0)
        return {"n_configs": len(configs), "n_atoms_per_config": sorted({int(n) for n in (arrays["Z"] != 0).sum(1)}),
                "n_train": int(len(state["split"]["train"]))}

    camp.measure({"what": "emt_data"}, run, camp.budgets["data"],
                 {"n_configs": None, "n_atoms_per_config": None, "n_train": None})


TRAIN_EMPTY = {"arch": None, "n_weights": None, "network_cutoff_A": None, "source": None, "train_steps": None,
               "train_s": None, "last_loss": None, "model_path": None}


def assemble(default_cfg: dict, spec: dict, state: dict, device):
    """The project's training set-up (:func:`tsmlip.train.assembly.assemble_training`) for one role: teacher loss,
    seed 0."""
    from tsmlip.config import deep_merge
    from tsmlip.ids import ModelId
    from tsmlip.train.assembly import assemble_training, TrainingData

    cfg = deep_merge(default_cfg, {"network": spec["network"]})
    data = TrainingData(state["arrays"], state["split"], None, False)
    return assemble_training(ModelId("teacher", spec["arch"], 0), cfg, data, device), cfg


def train_models(camp: Campaign, default_cfg: dict, plan: dict, s: dict, given: dict, state: dict, device) -> None:
    """Train (a few seconds each) or load every role's model; ``state["models"][role]`` = its model.pt."""
    import torch

    from tsmlip.core.model import build_model, count_weights, read_model_payload, save_model

    state["models"], state["runs"] = {}, {}
    model_dir = camp.out_dir / "models"
    for i, role in enumerate(ROLES):
        spec = plan[role]

        def run(soft, role=role, spec=spec):
            path = model_dir / f"{role}.pt"
            if role in given:
                payload = read_model_payload(given[role])
                state["models"][role] = Path(given[role])
                return {"arch": "w{width}-s{n_sensitivities}-l{n_atom_layers}".format(**payload["arch"]),
                        "n_weights": payload.get("n_weights"),
                        "network_cutoff_A": payload["network_cfg"]["dist_hard_max"], "source": "loaded",
                        "model_path": str(given[role])}
            if "arrays" not in state:  # no data: random weights (cost does not depend on them)
                graph = build_model(spec["arch"], spec["network"], seed=0)
                save_model(graph, path, campaign_role=role, trained=False)
                state["models"][role] = path
                return {"arch": spec["arch"].tag, "n_weights": count_weights(graph),
                        "network_cutoff_A": spec["network"]["dist_hard_max"], "source": "random (no data)",
                        "model_path": str(path)}
            run_, cfg = assemble(default_cfg, spec, state, device)
            opt = torch.optim.Adam([p for p in run_.model.parameters() if p.requires_grad],
                                   lr=cfg["training"]["learning_rate"])
            steps, loss, t0 = 0, None, time.perf_counter()
            end = min(soft, t0 + float(s["train_s"]))
            from tsmlip.train.loop import train_step

            run_.model.train()
            while time.perf_counter() < end or steps == 0:
                for batch in run_.batches["train"].batches(cfg["training"]["batch_size"], shuffle=True):
                    loss, _ = train_step(run_, opt, batch, run_.schedule(1))
                    steps += 1
                    if time.perf_counter() >= end:
                        break
            save_model(run_.graph, path, campaign_role=role, trained=True, train_steps=steps)
            state["models"][role] = path
            if role in THROUGHPUT_ROLES:
                state["runs"][role] = (run_, cfg)
            return {"arch": spec["arch"].tag, "n_weights": run_.n_weights,
                    "network_cutoff_A": spec["network"]["dist_hard_max"], "source": "trained",
                    "train_steps": steps, "train_s": time.perf_counter() - t0,
                    "last_loss": None if loss is None else float(loss), "model_path": str(path)}

        # what the section has left, less a reserve for each model still to come (the first model also pays
        # for the imports and kernel compilation)
        left = camp.section_end - time.perf_counter()
        limit = max(left / (len(ROLES) - i), left - (len(ROLES) - i - 1) * s["train_reserve_s"])
        rec = camp.measure({"role": role}, run, limit, TRAIN_EMPTY)
        if role not in state["models"]:  # training failed or ran out of time: random weights, so MD can go on
            path = model_dir / f"{role}.pt"
            graph = build_model(spec["arch"], spec["network"], seed=0)
            save_model(graph, path, campaign_role=role, trained=False)
            state["models"][role] = path
            rec.update(arch=spec["arch"].tag, n_weights=count_weights(graph), source="random (training stopped)",
                       network_cutoff_A=spec["network"]["dist_hard_max"], model_path=str(path))
            camp.write()


THROUGHPUT_EMPTY = {"engine": None, "stack": None, "arch": None, "ms_per_step": None, "ms_per_step_all": None,
                    "configs_per_s": None,
                    "steps_timed": None}


def train_throughput(camp: Campaign, default_cfg: dict, plan: dict, s: dict, state: dict, device) -> None:
    """ms per training step (forward, loss, backward, Adam) at each batch size; median of single steps after
    two warm-up steps."""
    import torch

    from tsmlip.train.loop import train_step

    for role in THROUGHPUT_ROLES:
        for bs in s["throughput_batches"]:
            def run(soft, role=role, bs=int(bs)):
                if role not in state["runs"]:
                    state["runs"][role] = assemble(default_cfg, plan[role], state, device)
                run_, cfg = state["runs"][role]
                opt = torch.optim.Adam([p for p in run_.model.parameters() if p.requires_grad], lr=1e-4)
                run_.model.train()
                times, n = [], int(s["throughput_steps"]) + 2
                while len(times) < n and time.perf_counter() < soft:
                    for batch in run_.batches["train"].batches(bs, shuffle=True):
                        if len(batch[0]) < bs:  # the last, short batch of an epoch
                            continue
                        _sync(device)
                        t0 = time.perf_counter()
                        train_step(run_, opt, batch, run_.schedule(1))
                        _sync(device)
                        times.append(time.perf_counter() - t0)
                        if len(times) >= n or time.perf_counter() >= soft:
                            break
                    if not times:
                        raise ValueError(f"the training split has fewer than {bs} configurations")
                timed = times[2:] or times
                ms = 1e3 * statistics.median(timed)
                return {"engine": "hippynn", "stack": 1, "arch": plan[role]["arch"].tag, "ms_per_step": ms,
                        "ms_per_step_all": [1e3 * t for t in timed], "configs_per_s": bs / ms * 1e3,
                        "steps_timed": len(timed), "timed_out": len(times) < n}

            camp.measure({"role": role, "batch_size": int(bs)}, run, s["throughput_limit_s"], THROUGHPUT_EMPTY)
            for stack in s["throughput_stacks"]:
                camp.measure({"role": role, "batch_size": int(bs), "engine": "fast", "stack": int(stack)},
                             lambda soft, role=role, bs=int(bs), stack=int(stack): _fast_throughput(
                                 soft, default_cfg, plan[role], state, device, bs, stack, s),
                             s["throughput_limit_s"], THROUGHPUT_EMPTY)
    state["runs"].clear()


def _fast_throughput(soft: float, default_cfg: dict, spec: dict, state: dict, device, bs: int, stack: int,
                     s: dict) -> dict:
    """The fast engine's training step (tsmlip.core.hipnn_stack: forward, forces, loss, backward, Adam) for a stack
    of ``stack`` models of one role's architecture, each on its own ``bs`` configurations: ms per step of the stack
    and per model-step; median of single steps after two warm-up steps."""
    import numpy as np
    import torch

    from tsmlip.config import deep_merge
    from tsmlip.ids import ModelId
    from tsmlip.core.geometry import pair_geometry
    from tsmlip.core.hipnn_stack import SlotBatch, StackedHipnn, loss_terms
    from tsmlip.train.fast import initial_state, stack_targets
    from tsmlip.train.optim import StackAdam

    cfg = deep_merge(default_cfg, {"network": spec["network"]})
    arrays, split = state["arrays"], state["split"]
    species = sorted(int(z) for z in np.unique(arrays["Z"]) if z)
    geom = pair_geometry(arrays, species, float(cfg["network"]["dist_hard_max"])).to(device)
    states = [initial_state(ModelId("teacher", spec["arch"], m), cfg, arrays, split, species)[1:]
              for m in range(stack)]
    st = StackedHipnn(states, spec["arch"].n_atom_layers, cfg["network"]["dist_hard_max"], device=device)
    adam = StackAdam(st.trainable(), 1e-4)
    train = split["train"]
    if len(train) < bs:
        raise ValueError(f"the training split has fewer than {bs} configurations")
    rng = np.random.default_rng(0)
    times, n = [], int(s["throughput_steps"]) + 2
    while len(times) < n and time.perf_counter() < soft:
        rows = np.stack([rng.choice(train, bs, replace=False) for _ in range(stack)])
        _sync(device)
        t0 = time.perf_counter()
        batch = SlotBatch(geom, torch.as_tensor(rows))
        out = st.forward(batch, forces=True, create_graph=True)
        terms = loss_terms(st, out, batch, stack_targets(arrays, None, rows, device), False)
        (terms["E"] + 10 * terms["F"] + 1e-6 * terms["L2"] + 0.01 * terms["R"]).sum().backward()
        adam.step(st.trainable())
        _sync(device)
        times.append(time.perf_counter() - t0)
    timed = times[2:] or times
    ms = 1e3 * statistics.median(timed)
    return {"engine": "fast", "stack": stack, "arch": spec["arch"].tag, "ms_per_step": ms / stack,
            "ms_per_step_all": [1e3 * t / stack for t in timed], "configs_per_s": bs * stack / ms * 1e3,
            "steps_timed": len(timed), "timed_out": len(times) < n}


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


MD_FIELDS = ("us_per_atom_step", "us_per_atom_step_all", "steps_per_s", "ns_per_day",
             "energy_drift_eV_per_atom_per_ps", "stable", "repeats", "repeats_done", "n_steps", "warmup_steps",
             "timestep_fs", "prime_s", "setup_s", "wall_s", "hippynn_kernels", "pair_finder", "pair_rebuilds",
             "supercell", "vacancies", "timed_out")


#: the first pair measured at the paper's size (its headline ratio), before any other size
HEADLINE_ROLES = ("paper_teacher", "paper_student_small")


def md_order(sizes: list[int], roles=ROLES, engines=("ase", "torch")) -> list[tuple]:
    """(role, n_atoms, engine) in priority order: the paper's teacher and smallest student at the first (the
    paper's) size with every engine, then every model at the other sizes, then the other models at the first
    size, with ase and torch; then those with the deployed engines (lammps, torchsim) where ``engines`` has
    them."""
    big, rest = sizes[0], sizes[1:]
    first = [(r, big) for r in roles if r in HEADLINE_ROLES]
    order = [(r, n) for n in rest for r in roles] + [(r, big) for r in roles if r not in HEADLINE_ROLES]
    base = [e for e in engines if e in ("ase", "torch")]
    deployed = [e for e in engines if e not in base]
    return ([(r, n, e) for r, n in first for e in engines] + [(r, n, e) for r, n in order for e in base]
            + [(r, n, e) for r, n in order for e in deployed])


def md_timing(camp: Campaign, default_cfg: dict, s: dict, state: dict, device) -> None:
    from tsmlip.md.timing import time_md

    for role, n, engine in md_order(s["md_sizes"], s["roles"], s.get("md_engines", ("ase", "torch"))):
        def run(soft, role=role, n=n, engine=engine):
            rec = time_md(state["models"][role], engine, md_settings(default_cfg, s, n), device, model_id=role,
                          deadline=soft)
            return {k: rec.get(k) for k in MD_FIELDS}

        limit = s["md_limit_s"][engine].get(n, max(s["md_limit_s"][engine].values()))
        camp.measure({"role": role, "n_atoms": int(n), "engine": engine}, run, limit, dict.fromkeys(MD_FIELDS))


PROBE_FIELDS = ("max_atoms", "memory_budget_bytes", "budget_kind", "memory_per_atom_bytes",
                "memory_per_atom_slope_bytes", "memory_intercept_bytes", "first_failure_atoms", "capped",
                "timed_out", "hippynn_kernels", "start_atoms", "n_sizes", "sizes")


def probe_order(device, cap_GB: float) -> list[tuple]:
    """(kernels, cap in bytes or None = whole device) in priority order: the paper's card size first (kernels
    on, then off), then the whole card."""
    return [("auto", cap_GB * GB), ("pytorch", cap_GB * GB), ("auto", None), ("pytorch", None)]


def max_atoms(camp: Campaign, default_cfg: dict, s: dict, state: dict, device) -> None:
    """The probe for every role x kernels x budget. A start size from the same model and kernels under the
    other budget when known (scaled by the budgets), else ``probe.start_atoms``."""
    import torch

    from tsmlip.md.probe import InProcessTrial, probe_max_atoms

    found: dict = {}
    for kernels, cap in probe_order(device, s["cap_GB"]):
        for role in s["roles"]:
            def run(soft, role=role, kernels=kernels, cap=cap):
                md = md_settings(default_cfg, s, s["md_sizes"][-1], kernels=kernels)
                if device.type == "cuda":
                    torch.cuda.set_per_process_memory_fraction(1.0, device)  # undo an earlier cap
                    total = torch.cuda.get_device_properties(device).total_memory
                    md["probe"]["gpu_memory_budget_MB"] = None if cap is None or cap >= total else cap / MB
                    budget = total if md["probe"]["gpu_memory_budget_MB"] is None else cap
                else:  # smoke: the cap halves a nominal CPU budget (nothing is measured in process)
                    md["probe"]["cpu_memory_budget_MB"] = 64 if cap is None else 32
                    budget = md["probe"]["cpu_memory_budget_MB"] * MB
                prev = found.get((role, kernels))
                if prev:
                    md["probe"]["start_atoms"] = max(int(s["probe"]["start_atoms"]) // 4,
                                                     int(0.8 * prev[0] * budget / prev[1]))
                rec = probe_max_atoms(state["models"][role], md, device, model_id=role,
                                      fake_oom_above=s["fake_oom_above"], deadline=soft,
                                      trial_class=None if device.type == "cuda" else InProcessTrial)
                if rec["max_atoms"] and not rec["timed_out"]:
                    found[(role, kernels)] = (rec["max_atoms"], rec["memory_budget_bytes"])
                out = {k: rec.get(k) for k in PROBE_FIELDS}
                out.update(start_atoms=md["probe"]["start_atoms"], n_sizes=len(rec["sizes"]),
                           sizes=[{k: r.get(k) for k in ("n_atoms", "ok", "peak_bytes", "seconds")} for r in rec["sizes"]])
                return out

            key = {"role": role, "kernels": kernels, "cap_GB": None if cap is None else cap / GB}
            camp.measure(key, run, s["probe_limit_s"], dict.fromkeys(PROBE_FIELDS))
    if device.type == "cuda":
        torch.cuda.set_per_process_memory_fraction(1.0, device)

