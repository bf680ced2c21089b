"""The output records (tsmlip.records): every field documented in docs/outputs.md, parts and optional fields
written as the files have them, the readers' keys checked against the records (no MD: seconds)."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from conftest import ROOT, make_record, write_record
from tsmlip import aggregate, rdf
from tsmlip.json_record import RecordError
from tsmlip.records import (RECORDS, AtomEnergies, AtomEnergyAgreement, CalculatorCost, ClassicalErrors,
                            ClassicalPotential, Convergence,
                            DatasetProvenance, ExperimentComparison, LiquidDensity, LiquidOutcome, MaxAtoms, MdTiming,
                            OracleAtomEnergies, RdfError, RdfMd, SplitErrors, SplitInfo, SyntheticInfo,
                            TrainMetrics)

DOC = (ROOT / "docs" / "outputs.md").read_text()
#: where docs/outputs.md describes each file: the start of its bullet (or section), and the records it names
SECTIONS = {
    "provenance.json": ("- `data/provenance.json`", (DatasetProvenance,)),
    "split.json": ("- `data/split.json`", (SplitInfo,)),
    "atom_energies.json": ("- `labels/atom_energies.json`", (AtomEnergies, AtomEnergyAgreement)),
    "oracle_atom_energies.json": ("- `labels/oracle_atom_energies.npz`", (OracleAtomEnergies,)),
    "synthetic.json": ("- `synthetic/synthetic.json`", (SyntheticInfo,)),
    "metrics.json": ("- `metrics.json`", (TrainMetrics, Convergence, SplitErrors)),
    "md_timing_<engine>.json": ("- `models/<id>/md_timing_<engine>.json`", (MdTiming,)),
    "max_atoms.json": ("- `models/<id>/max_atoms.json`", (MaxAtoms,)),
    "foundation/cost.json": ("## The teacher calculator's own cost", (CalculatorCost,)),
    "classical/errors.json": ("- `classical/errors.json`", (ClassicalErrors, ClassicalPotential)),
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
    info = make_record(RdfMd, **{k: i for i, k in enumerate(outcome)})
    assert info.outcome.to_json() == {k: i for i, k in enumerate(outcome)}


def test_parts_are_spliced_in_and_optional_fields_left_out():
    outcome = make_record(LiquidOutcome, n_frames=2, device="cpu", temperature_K=1200, n_atoms=32, stable=True)
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
    write_record(tmp_path / "m.json", RdfMd, n_frames=5, device="cpu", temperature_K=1200.0, n_atoms=32,
                 element="Al", density_g_cm3=2.3, density_source="config")
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


# ------------------------------------------------------------------------------------------ reading
def _with_provenance(rec):
    return rec.with_provenance({"fingerprint": "0123456789abcdef", "step": "test"})


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_every_record_reads_back_what_was_written(tmp_path, name):
    """Round trip: Rec.read(p).to_json() == json.load(p), with the provenance record, parts, nested records."""
    cls = RECORDS[name]
    path = tmp_path / "out.json"
    _with_provenance(make_record(cls)).write(path)
    back = cls.read(path)
    assert back.to_json() == json.loads(path.read_text())
    # the record as given, plus the content hash of the rest of the file (a hand edit shows)
    assert back.provenance == {"fingerprint": "0123456789abcdef", "step": "test",
                               "output_content": back.provenance["output_content"]}
    from tsmlip.provenance import check_file
    check_file(path)
    plain = tmp_path / "plain.json"  # and without one
    make_record(cls).write(plain)
    assert cls.read(plain).provenance is None and "_provenance" not in cls.read(plain).to_json()


def test_nested_records_and_optional_fields_read_back_as_records(tmp_path):
    met = make_record(TrainMetrics, splits={"test": make_record(SplitErrors, force_rmse_eV_A=0.2)})
    met.write(tmp_path / "metrics.json")
    back = TrainMetrics.read(tmp_path / "metrics.json")
    assert isinstance(back.convergence, Convergence) and isinstance(back.splits["test"], SplitErrors)
    assert back.splits["test"].force_rmse_eV_A == 0.2 and back == met
    md = make_record(MdTiming, pair_rebuilds=3)  # one optional field given, the others left out
    md.write(tmp_path / "md.json")
    back = MdTiming.read(tmp_path / "md.json")
    assert back.pair_rebuilds == 3 and back.engine_version is None and back == md
    err = make_record(RdfError, error_vs_experiment=0.5)  # an optional part present / absent
    err.write(tmp_path / "e.json")
    assert RdfError.read(tmp_path / "e.json").experiment.error_vs_experiment == 0.5
    make_record(RdfError).write(tmp_path / "e0.json")
    back = RdfError.read(tmp_path / "e0.json")
    assert back.experiment is None and back.value("error_vs_experiment") is None
    labels = make_record(AtomEnergies, vs_reference=make_record(AtomEnergyAgreement, rmse_eV=0.02))
    labels.write(tmp_path / "l.json")
    assert AtomEnergies.read(tmp_path / "l.json").vs_reference.rmse_eV == 0.02


def test_a_missing_field_is_an_error_naming_the_file_and_the_field(tmp_path):
    path = tmp_path / "md_timing_ase.json"
    obj = make_record(MdTiming).to_json()
    del obj["us_per_atom_step"], obj["stable"]
    path.write_text(json.dumps(obj))
    with pytest.raises(RecordError, match=rf"^{re.escape(str(path))}: missing field\(s\) us_per_atom_step, stable "
                                          r"\(of MdTiming\)$"):
        MdTiming.read(path)
    # a part's field, a nested record's field (named with its place in the file)
    obj = make_record(RdfError).to_json()
    del obj["n_frames"]
    path.write_text(json.dumps(obj))
    with pytest.raises(RecordError, match="missing field\\(s\\) n_frames"):
        RdfError.read(path)
    obj = make_record(TrainMetrics, splits={"valid": make_record(SplitErrors)}).to_json()
    del obj["splits"]["valid"]["force_mae_eV_A"]
    path.write_text(json.dumps(obj))
    with pytest.raises(RecordError, match=rf"{re.escape(str(path))}: splits.valid: missing field\(s\) force_mae_eV_A"):
        TrainMetrics.read(path)


def test_an_unknown_field_is_an_error_naming_the_file_and_the_field(tmp_path):
    path = tmp_path / "max_atoms.json"
    path.write_text(json.dumps(dict(make_record(MaxAtoms).to_json(), max_atom=3)))
    with pytest.raises(RecordError, match=rf"^{re.escape(str(path))}: unknown field\(s\) max_atom \(not in MaxAtoms"):
        MaxAtoms.read(path)
    path.write_text("[1, 2]")
    with pytest.raises(RecordError, match="a MaxAtoms record is a JSON object, not list"):
        MaxAtoms.read(path)
    path.write_text("{")
    with pytest.raises(RecordError, match="not a readable JSON file"):
        MaxAtoms.read(path)
    with pytest.raises(RecordError, match="no such file"):
        MaxAtoms.read(tmp_path / "none.json")


def test_nan_and_infinities_are_written_as_null_and_read_back_as_none(tmp_path):
    errors = make_record(SplitErrors, atom_energy_pearson_r=float("nan"), energy_rmse_eV=np.float32(0.5),
                         n_configs=np.int64(3))
    met = make_record(TrainMetrics, splits={"test": errors}, wall_time_s=float("inf"))
    met.write(tmp_path / "metrics.json")
    text = (tmp_path / "metrics.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    raw = json.loads(text)
    assert raw["splits"]["test"]["atom_energy_pearson_r"] is None and raw["wall_time_s"] is None
    assert raw["splits"]["test"]["energy_rmse_eV"] == 0.5 and raw["splits"]["test"]["n_configs"] == 3
    back = TrainMetrics.read(tmp_path / "metrics.json")
    assert back.splits["test"].atom_energy_pearson_r is None and back.wall_time_s is None


def test_a_step_reports_a_bad_record_in_one_line(tmp_path, capsys):
    from tsmlip.cli import main

    r = rdf.r_grid(6.0, 60)
    rdf.write_curve(tmp_path / "m.csv", r, np.ones(60))
    info = make_record(RdfMd).to_json()
    del info["element"]
    (tmp_path / "m.json").write_text(json.dumps(info))
    assert main(["rdf-error", "--model-id", "student/w6-s6-l1/seed1", "--rdf", str(tmp_path / "m.csv"),
                 "--info", str(tmp_path / "m.json"), "--teacher-rdf", str(tmp_path / "m.csv"),
                 "--teacher-ids", "teacher/w6-s6-l1/seed0", "--out", str(tmp_path / "e.json"), "--config-json",
                 json.dumps({"rdf": {"experiment": {"enabled": False}}})]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"tsmlip rdf-error: error: {tmp_path / 'm.json'}: missing field(s) element (of RdfMd)"
    assert not (tmp_path / "e.json").exists()


def test_the_data_writers_write_their_records(tmp_path):
    """save_dataset (provenance.json), label-oracle (oracle_atom_energies.json): files their records read back."""
    from tsmlip.data.dataset import save_dataset
    from tsmlip.label import oracle_labels

    rng = np.random.default_rng(0)
    n, m = 3, 4
    arrays = {"Z": np.full((n, m), 13), "R": rng.uniform(0, 6, (n, m, 3)) + np.arange(m)[None, :, None] * 3.0,
              "cell": np.tile(np.eye(3) * 20, (n, 1, 1)), "E": rng.normal(size=n), "F": rng.normal(size=(n, m, 3)),
              "n_atoms": np.full(n, m), "ref_atom_E": rng.normal(size=(n, m))}
    arrays["E"] = arrays["ref_atom_E"].sum(axis=1)
    save_dataset(arrays, tmp_path / "dataset.npz", {"source": "test", "seed": 3},
                 {"fingerprint": "f", "step": "test"})
    prov = DatasetProvenance.read(tmp_path / "provenance.json")
    assert prov.species == [13] and prov.seed == 3 and prov.provenance["fingerprint"] == "f"
    assert prov.to_json() == json.loads((tmp_path / "provenance.json").read_text())
    info = oracle_labels(str(tmp_path / "dataset.npz"), str(tmp_path / "oracle_atom_energies.npz"), 1e-3)
    back = OracleAtomEnergies.read(tmp_path / "oracle_atom_energies.json")
    assert back.n_configs == n and back.n_atoms == n * m and back.to_json() == info


def test_split_writes_its_record(tiny_cfg, tiny_data, tmp_path):
    from tsmlip.data.split import main

    dataset, _, arrays = tiny_data
    cfg = {"split": tiny_cfg["split"], "training": {"train_eval_fraction": tiny_cfg["training"]["train_eval_fraction"]}}
    assert main(["--dataset", str(dataset), "--out", str(tmp_path / "split.npz"), "--config-json", json.dumps(cfg)]) == 0
    info = SplitInfo.read(tmp_path / "split.json")
    assert info.train + info.valid + info.test == len(arrays["E"]) and info.seed == tiny_cfg["split"]["seed"]
    assert info.provenance["step"] == "split"
    assert info.to_json() == json.loads((tmp_path / "split.json").read_text())
