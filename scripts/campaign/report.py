"""The campaign's markdown table (``gpu_campaign.md``) from its JSON document."""
from __future__ import annotations

from .plan import ROLES, TEACHERS


def _get(doc: dict, section: str, **key):
    for r in doc["sections"][section]["records"]:
        if all(r.get(k) == v for k, v in key.items()):
            return r
    return None


def _val(rec, field):
    return None if rec is None or rec.get("status") not in ("ok", "timed_out") else rec.get(field)


def _fmt(x, spec=".3g") -> str:
    if x is None:
        return "-"
    return format(x, spec) if isinstance(x, float) else f"{x:,}" if isinstance(x, int) else str(x)


def _ratio(a, b) -> str:
    return f"{a / b:.2f}" if a is not None and b not in (None, 0) else "-"


def markdown(doc: dict, paper_ref: dict) -> str:
    """The table's rows: Figs 2/5 per model (teacher vs students, ratios), kernels on/off, and the ratio to
    the paper's A6000 figures where config/config.yaml ``paper_reference.md_cost`` gives them."""
    dev = doc["device"] or {}
    ref = paper_ref.get("md_cost", {})
    figs = ref.get("figures") or {}
    big = doc["settings"]["md_sizes"][0]
    sizes = doc["settings"]["md_sizes"]
    cap = doc["settings"]["cap_GB"]
    lines = [f"## GPU campaign: {dev.get('device_name')} ({'smoke run, CPU: not a measurement of the paper' if doc['smoke'] else dev.get('device_type')})",
             "",
             f"torch {dev.get('torch')} (CUDA {dev.get('torch_cuda')}), hippynn {dev.get('hippynn')}, ase {dev.get('ase')}, "
             f"driver {dev.get('driver_version')}; kernels on = `{dev.get('kernels_on')}`, off = `{dev.get('kernels_off')}`; "
             f"{'partial' if doc['partial'] else 'complete'} run, {doc.get('elapsed_s', 0):.0f} s.",
             "",
             f"### MD time per step per atom (us; NVE, {doc['settings']['md_repeats']} blocks of "
             f"{doc['settings']['md_steps']} steps after {doc['settings']['md_warmup']}, median; kernels on)",
             ""]
    engines = doc["settings"].get("md_engines", ["ase", "torch"])
    head = ["model", "arch", "weights"] + [f"{e} {n:,}" for n in sizes for e in engines]
    head += [f"teacher / model (ase {big:,})", f"ase / torch {big:,}", "drift (eV/atom/ps, ase)",
             f"paper A6000 (ase {big:,})", "A6000 / this"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for role in ROLES:
        tr = _get(doc, "train", role=role)
        cells = [role, _val(tr, "arch") or (tr or {}).get("arch"), _fmt((tr or {}).get("n_weights"))]
        for n in sizes:
            for e in engines:
                rec = _get(doc, "md_timing", role=role, n_atoms=n, engine=e)
                v = _val(rec, "us_per_atom_step")
                cells.append(_fmt(v) + ("!" if rec and rec.get("stable") is False else ""))
        mine = _val(_get(doc, "md_timing", role=role, n_atoms=big, engine="ase"), "us_per_atom_step")
        teacher = TEACHERS[role]
        t_us = _val(_get(doc, "md_timing", role=teacher, n_atoms=big, engine="ase"), "us_per_atom_step") if teacher else None
        torch_us = _val(_get(doc, "md_timing", role=role, n_atoms=big, engine="torch"), "us_per_atom_step")
        drift = _val(_get(doc, "md_timing", role=role, n_atoms=big, engine="ase"), "energy_drift_eV_per_atom_per_ps")
        paper_us = (figs.get(role) or {}).get("us_per_atom_step")
        cells += [_ratio(t_us, mine) if teacher else "1", _ratio(mine, torch_us), _fmt(drift), _fmt(paper_us),
                  _ratio(paper_us, mine)]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += ["", f"### Most atoms per GPU and memory per atom (torch engine, one MD step; KiB/atom = budget / max "
              f"atoms, slope = fitted peak memory per atom; cap = the paper's {cap:g} GB card)", ""]
    head = ["model"]
    for label in (f"on, {cap:g} GB", f"off, {cap:g} GB", "on, card", "off, card"):
        head += [f"max atoms ({label})", f"KiB/atom ({label})", f"slope KiB/atom ({label})"]
    head += [f"on / off ({cap:g} GB)", f"model / teacher ({cap:g} GB, on)", f"paper A6000 max atoms", "this / A6000"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for role in ROLES:
        cells = [role]
        got = {}
        for kernels, c in (("auto", cap), ("pytorch", cap), ("auto", None), ("pytorch", None)):
            rec = _get(doc, "max_atoms", role=role, kernels=kernels, cap_GB=c)
            m = _val(rec, "max_atoms")
            got[(kernels, c)] = m
            per = _val(rec, "memory_per_atom_bytes")
            slope = _val(rec, "memory_per_atom_slope_bytes")
            mark = ">=" if rec and rec.get("timed_out") else ""
            cells += [mark + _fmt(m), _fmt(per / 1024 if per else None), _fmt(slope / 1024 if slope else None)]
        teacher = TEACHERS[role]
        t_max = _val(_get(doc, "max_atoms", role=teacher, kernels="auto", cap_GB=cap), "max_atoms") if teacher else None
        paper_max = (figs.get(role) or {}).get("max_atoms")
        cells += [_ratio(got[("auto", cap)], got[("pytorch", cap)]),
                  _ratio(got[("auto", cap)], t_max) if teacher else "1", _fmt(paper_max),
                  _ratio(got[("auto", cap)], paper_max)]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += ["", "### Training throughput (ms per model-step: forward, loss, backward, Adam; median; the fast engine "
              "with a stack of models, each on its own batch)", "",
              "| model | arch | engine | stack | batch | ms/model-step | configurations/s |",
              "|---|---|---|---:|---:|---:|---:|"]
    for r in doc["sections"]["train_throughput"]["records"]:
        lines.append(f"| {r['role']} | {r.get('arch') or '-'} | {r.get('engine') or '-'} | {r.get('stack') or '-'} | "
                     f"{r['batch_size']} | {_fmt(_val(r, 'ms_per_step'))} | {_fmt(_val(r, 'configs_per_s'))} |")
    lines += ["", "`!`: energy drift above md.timing.max_drift_eV_per_atom_per_ps (briefly trained weights); `>=`: the "
              "probe's time limit came first (a lower bound); `-`: not measured (see the JSON's status). The paper "
              "columns stay `-` while config/config.yaml `paper_reference.md_cost.figures` holds no number "
              "(the paper gives them only as plots)."]
    return "\n".join(lines) + "\n"

