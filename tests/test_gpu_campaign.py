"""scripts/gpu_campaign.py: the CPU smoke run writes every field of the JSON and the table; the time limits
stop a measurement, keep what there is and leave the JSON marked partial."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import campaign as gc  # noqa: E402  (scripts/campaign, outside the package)
from tsmlip.md import probe

ROOT = Path(__file__).resolve().parents[1]
# train_throughput: 2 batch sizes x roles x (hippynn + the fast engine with stacks of 1 and 2)
RECORDS = {"data": 1, "train": len(gc.ROLES), "train_throughput": 2 * len(gc.THROUGHPUT_ROLES) * 3,
           "md_timing": None, "max_atoms": 4 * len(gc.SMOKE_ROLES)}  # md_timing: 2 sizes x roles x engines
FIELDS = {"train": gc.TRAIN_EMPTY, "train_throughput": gc.THROUGHPUT_EMPTY, "md_timing": dict.fromkeys(gc.MD_FIELDS),
          "max_atoms": dict.fromkeys(gc.PROBE_FIELDS)}
DEVICE_FIELDS = {"device_type", "device_name", "total_memory_bytes", "driver_version", "torch", "hippynn", "ase",
                 "kernels_on", "kernels_off", "allocator", "hardware"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("campaign")
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_campaign.py"), "--smoke", "--out", str(out)],
                         capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t0
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return json.loads((out / "gpu_campaign.json").read_text()), (out / "gpu_campaign.md").read_text(), run.stdout, wall


def test_smoke_writes_every_field(smoke):
    doc, _, stdout, wall = smoke
    assert doc["smoke"] is True and doc["device_type"] == "cpu" and doc["finished"] is True
    assert DEVICE_FIELDS <= set(doc["device"]) and doc["device"]["device_type"] == "cpu"
    assert doc["device"]["kernels_on"] == "pytorch"  # auto on the CPU
    assert sum(doc["budgets_s"].values()) == pytest.approx(sum(gc.SMOKE_BUDGET_S.values()))
    engines = doc["settings"]["md_engines"]
    from tsmlip.core.md.deployed import missing
    assert engines == ["ase", "torch"] + [e for e in ("lammps", "torchsim") if missing(e) is None]
    for name, n in RECORDS.items():
        recs = doc["sections"][name]["records"]
        n = 2 * len(engines) * len(gc.SMOKE_ROLES) if name == "md_timing" else n
        assert len(recs) == n, name
        for r in recs:
            assert {"status", "limit_s", "seconds", "error"} | set(FIELDS.get(name, {})) <= set(r), (name, r)
    statuses = [r["status"] for sec in doc["sections"].values() for r in sec["records"]]
    assert set(statuses) == {"ok"}, doc["status_counts"]
    assert doc["partial"] is False
    md = {(r["role"], r["n_atoms"], r["engine"]): r for r in doc["sections"]["md_timing"]["records"]}
    assert all(r["us_per_atom_step"] > 0 and r["repeats_done"] == r["repeats"] for r in md.values())
    assert {n for _, n, _ in md} == set(doc["settings"]["md_sizes"]) and {e for *_, e in md} == set(engines)
    for r in doc["sections"]["max_atoms"]["records"]:
        assert r["max_atoms"] > 0 and r["memory_per_atom_bytes"] > 0 and r["n_sizes"] >= 2
    for r in doc["sections"]["train"]["records"]:
        assert r["source"] == "trained" and r["train_steps"] >= 1 and Path(r["model_path"]).exists()
    assert all(r["ms_per_step"] > 0 for r in doc["sections"]["train_throughput"]["records"])
    assert "section max_atoms" in stdout  # progress as it goes
    print(f"smoke run: {wall:.1f} s wall")


def test_smoke_table_has_the_readme_rows(smoke):
    _, table, _, _ = smoke
    assert "smoke run, CPU" in table
    for head in ("MD time per step per atom", "Most atoms per GPU", "Training throughput", "teacher / model",
                 "ase / torch", "on / off", "paper A6000", "A6000 / this"):
        assert head in table
    for role in gc.ROLES:
        assert f"| {role} |" in table


def test_time_limits_keep_what_there_is(tmp_path):
    # a section of 8 s: room for the killed 0.6 s measurement even when a loaded machine is slow to start it
    camp = gc.Campaign(tmp_path, dict.fromkeys(gc.SECTIONS, 8.0), {"smoke": True}, total_s=None)
    with camp.section("md_timing"):
        t0 = time.perf_counter()
        hard = camp.measure({"what": "sleeps"}, lambda soft: time.sleep(10) or {}, 0.6, {"x": None})
        assert time.perf_counter() - t0 < 6
        soft = camp.measure({"what": "stops early"}, lambda soft: {"x": 1, "timed_out": time.perf_counter() < soft},
                            20.0, {"x": None})
        time.sleep(max(0.0, camp.section_end - time.perf_counter()))
        skipped = camp.measure({"what": "too late"}, lambda soft: {"x": 2}, 20.0, {"x": None})
    assert hard["status"] == "timed_out" and "time limit" in hard["error"] and hard["x"] is None
    assert soft["status"] == "timed_out" and soft["x"] == 1 and soft["limit_s"] <= 8.0
    assert skipped["status"] == "skipped" and skipped["x"] is None
    on_disk = json.loads((tmp_path / "gpu_campaign.json").read_text())  # written after every measurement
    assert on_disk["partial"] is True and len(on_disk["sections"]["md_timing"]["records"]) == 3
    camp.finish()
    done = json.loads((tmp_path / "gpu_campaign.json").read_text())
    assert done["partial"] is True and done["finished"] is True
    assert done["status_counts"] == {"skipped": 1, "timed_out": 2}


def test_probe_stops_at_its_deadline():
    calls = []

    def trial(n):
        calls.append(n)
        time.sleep(0.05)
        return {"n_atoms": n, "ok": True, "peak_bytes": 10 * n}

    found = probe.search_max_atoms(trial, 10, 2.0, 0.1, cap=10 ** 9, progress=lambda m: None,
                                   deadline=time.perf_counter() + 0.2)
    assert found["timed_out"] and not found["capped"] and found["max_atoms"] == calls[-1] and len(calls) < 10


def test_configs_travel_as_a_snapshot(tmp_path):
    snap = tmp_path / "campaign_config.json"
    gc.write_config_snapshot(snap)
    default, paper, source = gc.load_configs(snap)
    assert source == str(snap)
    assert paper["teacher"]["width"] == 128 and default["md"] == gc.load_configs()[0]["md"]
    assert default["paper_reference"]["md_cost"]["gpu_memory_GB"] > 0
    plan = gc.model_plan(default, paper, smoke=False)
    assert plan["paper_teacher"]["arch"].tag == "w128-s40-l4"
    assert plan["paper_teacher"]["network"]["dist_hard_max"] == paper["network"]["dist_hard_max"]
    assert plan["default_student"]["network"]["dist_hard_max"] == default["network"]["dist_hard_max"]


def test_gpu_budgets_fit_eight_minutes():
    assert gc.GPU_TOTAL_S <= 8 * 60 - 20  # ~20 s of imports and start-up
    assert gc.md_order([48000, 4000])[:2] == [("paper_teacher", 48000, "ase"), ("paper_teacher", 48000, "torch")]
    # the deployed engines: the headline pair at the paper's size first, then after every ase / torch timing
    order = gc.md_order([48000, 4000], engines=("ase", "torch", "lammps", "torchsim"))
    assert order[:4] == [("paper_teacher", 48000, e) for e in ("ase", "torch", "lammps", "torchsim")]
    assert len(order) == len(set(order)) == 2 * 4 * len(gc.ROLES)
    base = [o for o in order if o[2] in ("ase", "torch")]
    assert order[8:8 + len(base) - 4] == base[4:]


def test_terminated_run_leaves_partial_json_and_table(tmp_path):
    """A SIGTERM (an outer time limit) ends the run with the JSON partial and the table written, even one that
    arrives the moment the JSON first exists (before the device is described: the handler is set before it)."""
    import signal

    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "gpu_campaign.py"), "--smoke", "--out",
                             str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    path = tmp_path / "gpu_campaign.json"
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 120 and not path.exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    doc = json.loads(path.read_text())
    assert proc.returncode == 128 + signal.SIGTERM, out[-2000:]
    assert doc["partial"] is True and doc["finished"] is False
    assert "## GPU campaign" in (tmp_path / "gpu_campaign.md").read_text()
