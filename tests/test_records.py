"""The output records (tsmlip.records): every field documented in docs/outputs.md, parts and optional fields
written as the files have them, the readers' keys checked against the records (no MD: seconds)."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from conftest import ROOT
from tsmlip import aggregate, rdf
from tsmlip.records import (RECORDS, CalculatorCost, Convergence, ExperimentComparison, LiquidDensity,
                            LiquidOutcome, MaxAtoms, MdTiming, RdfError, RdfMd, SplitErrors, TrainMetrics)

DOC = (ROOT / "docs" / "outputs.md").read_text()
#: where docs/outputs.md describes each file: the start of its bullet (or section), and the records it names
SECTIONS = {
    "metrics.json": ("- `metrics.json`", (TrainMetrics, Convergence, SplitErrors)),
    "md_timing_<engine>.json": ("- `models/<id>/md_timing_<engine>.json`", (MdTiming,)),
    "max_atoms.json": ("- `models/<id>/max_atoms.json`", (MaxAtoms,)),
    "foundation/cost.json": ("## The teacher calculator's own cost", (CalculatorCost,)),
    "rdf_md.json": ("- `models/<id>/rdf_md.json`", (RdfMd,)),
    "rdf_error.json": ("- `models/<id>/rdf_error.json`", (RdfError,)),
}


def section(marker: str) -> str:
    """The text of docs/outputs.md from ``marker`` to the next top-level bullet or heading."""
    start = DOC.index(marker)
    end = re.search(r"\n(- |## )", DOC[start + len(marker):])
    return DOC[start:start + len(marker) + end.start()] if end else DOC[start:]


def test_every_output_file_has_a_documented_record():
    assert set(RECORDS) == set(SECTIONS) | {"noise_floor.json"}
    assert RECORDS["noise_floor.json"] is RdfError
    assert "`rdf_noise/noise_floor.json` (rdf_error.json format)" in DOC


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_docs_name_every_field_of_every_record(name):
    marker, records = SECTIONS[name]
    text = section(marker)
    assert f"`tsmlip.records.{RECORDS[name].__name__}`" in text
    missing = [(rec.__name__, key) for rec in records for key in rec.keys()
               if not re.search(rf"(?<![\w]){re.escape(key)}(?![\w])", text)]
    assert not missing, f"docs/outputs.md ({marker}) does not name {missing}"


def test_rdf_error_repeats_the_outcome_part_of_rdf_md():
    outcome = LiquidOutcome.keys()
    assert set(outcome) <= set(RdfMd.keys()) and set(outcome) <= set(RdfError.keys())
    assert set(LiquidDensity.keys()) <= set(RdfMd.keys()) and set(LiquidDensity.keys()) <= set(RdfError.keys())
    info = {k: i for i, k in enumerate(outcome)}
    assert LiquidOutcome.of_rdf_md(info).to_json() == dict(info, stable=True)


def test_parts_are_spliced_in_and_optional_fields_left_out():
    outcome = LiquidOutcome.of_rdf_md({"n_frames": 2, "device": "cpu", "temperature_K": 1200, "n_atoms": 32})
    plain = RdfError(model_id="m", error_vs_teacher=0.1, error_vs_reference=None, definition="d", teacher_ids=["t"],
                     outcome=outcome).to_json()
    assert list(plain) == [k for k in RdfError.keys() if k not in ExperimentComparison.keys()
                           and k not in LiquidDensity.keys()]
    assert plain["error_vs_reference"] is None and plain["stable"] is True
    cmp = ExperimentComparison(experiment_definition="x", experiment_source="y")
    assert "experiment_temperature_gap_K" not in cmp.to_json() and cmp.to_json()["error_vs_experiment"] is None
    assert MdTiming.keys()[-3:] == ("pair_rebuilds", "pair_reuses", "engine_version")


def test_nested_records_become_plain_json():
    conv = Convergence(stopped_by="patience", best_epoch=3, epochs=5, max_epochs=9, late_window_epochs=1,
                       late_fraction=0.2, late_relative_improvement=0.0)
    errors = SplitErrors(n_configs=1, energy_rmse_eV=0.1, energy_mae_eV=0.1, energy_per_atom_rmse_eV=0.01,
                         force_rmse_eV_A=0.2, force_mae_eV_A=0.2, atom_energy_rmse_eV=None, atom_energy_pearson_r=None)
    met = TrainMetrics(model_id="teacher/w4-s4-l1/seed0", kind="teacher", width=4, n_sensitivities=4, n_atom_layers=1,
                       seed=0, n_weights=10, epochs=5, best_epoch=3, wall_time_s=1.0, device="cpu", convergence=conv,
                       loss_weights={"w_E": 1}, loss_schedule=None, teacher_labels=None,
                       atom_energy_labels_in_loss=False, splits={"test": errors}, untrained=None).to_json()
    assert json.loads(json.dumps(met)) == met and list(met) == list(TrainMetrics.keys())
    assert met["convergence"]["late_fraction"] == 0.2 and met["splits"]["test"]["force_rmse_eV_A"] == 0.2


def test_readers_take_their_keys_from_the_records():
    assert set(aggregate.MD_KEYS) <= set(MdTiming.keys())
    assert set(aggregate.MAX_ATOMS_KEYS) <= set(MaxAtoms.keys())
    assert set(aggregate.RDF_KEYS) <= set(RdfError.keys())
    assert set(aggregate.SPLIT_METRICS) <= set(SplitErrors.keys())
    with pytest.raises(ValueError, match="MdTiming has no field us_per_step"):
        MdTiming.select("n_atoms", "us_per_step")


def test_rdf_error_file_with_the_experiment_has_every_field(tmp_path):
    r = rdf.r_grid(6.0, 60)
    rdf.write_curve(tmp_path / "m.csv", r, np.ones(60))
    (tmp_path / "m.json").write_text(json.dumps({"n_frames": 5, "device": "cpu", "temperature_K": 1200.0,
                                                 "n_atoms": 32, "element": "Al", "density_g_cm3": 2.3,
                                                 "density_source": "config"}))
    out = tmp_path / "e.json"
    assert rdf.main_error(["--model-id", "student/w6-s6-l1/seed1", "--rdf", str(tmp_path / "m.csv"),
                           "--info", str(tmp_path / "m.json"), "--teacher-rdf", str(tmp_path / "m.csv"),
                           "--teacher-ids", "teacher/w6-s6-l1/seed0", "--out", str(out), "--config-json",
                           json.dumps({"rdf": {"experiment": {"enabled": True, "max_temperature_gap_K": 150},
                                               "peak_fit_halfwidth_A": 0.2}})]) == 0
    err = json.loads(out.read_text())
    assert err.pop("_provenance")["step"] == "rdf-error"
    assert list(err) == list(RdfError.keys())
    assert err["density_source"] == "config" and err["error_vs_teacher"] == 0.0
