"""A calculator as the teacher (tsmlip.foundation, docs/foundation.md): labels, refusals, resumable chunks,
the generic factory form, CHGNet labelling a handful of configurations and a tiny student trained on them."""
import importlib.util
import json
import time

import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT

from tsmlip.foundation import (CalculatorError, check_importable, label_arrays, label_dataset, make_calculator,
                               normalize_spec)


# --- crafted calculators (the generic factory form imports them from this module) -----------------------
class NoAtomEnergies(Calculator):
    """Energies and forces, no per-atom energies."""
    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results = {"energy": -3.0 * len(atoms), "forces": np.zeros((len(atoms), 3))}


class _Crafted(Calculator):
    implemented_properties = ["energy", "forces", "energies"]
    offset = 0.0
    value = -3.0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        emt = EMT()
        emt.calculate(atoms, ["energy", "forces", "energies"], all_changes)
        eps = emt.results["energies"].copy()
        self.results = {"energy": float(eps.sum()) + self.offset, "forces": emt.results["forces"],
                        "energies": eps}
        self.tamper()

    def tamper(self):
        pass


class BadSums(_Crafted):
    """Per-atom energies 0.5 eV short of the total."""
    offset = 0.5


class NonFinite(_Crafted):
    """A NaN force."""

    def tamper(self):
        self.results["forces"][0, 0] = np.nan


class CopperOnly(_Crafted):
    """Says it supports copper only."""
    supported_elements = ["Cu"]


def crafted(name):
    return {"factory": f"test_foundation:{name}", "name": name}


@pytest.fixture(scope="module")
def few(tiny_data, tmp_path_factory):
    """The first 4 configurations of the tiny EMT set, as a dataset file with its provenance."""
    from tsmlip.data.dataset import save_dataset, select_configurations

    ds, _, arrays = tiny_data
    d = tmp_path_factory.mktemp("few")
    save_dataset(select_configurations(arrays, np.arange(4)), d / "dataset.npz", {"source": "emt"})
    return d / "dataset.npz"


def _label(spec, dataset, tmp_path, **kw):
    out_d, out_l = tmp_path / "out" / "dataset.npz", tmp_path / "out" / "labels.npz"
    info = label_dataset(spec, str(dataset), str(out_d), str(out_l), 1e-3, scratch=str(tmp_path / "scratch"), **kw)
    return info, out_d, out_l


@pytest.mark.parametrize("name, cause", [
    ("NoAtomEnergies", "gives no per-atom energies"),
    ("BadSums", "per-atom energies do not sum to the total energy"),
    ("NonFinite", "non-finite labels"),
    ("CopperOnly", "does not support element(s) Al"),
])
def test_refusals_name_the_calculator_and_leave_no_output(name, cause, few, tmp_path):
    with pytest.raises(CalculatorError) as e:
        _label(crafted(name), few, tmp_path)
    msg = str(e.value)
    assert msg.startswith(f"calculator '{name}'") and cause in msg, msg
    assert "\n" not in msg
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("spec, cause", [
    ({"factory": "no_such_package.calculators:Calc"}, "cannot import 'no_such_package.calculators'"),
    ({"factory": "ase.calculators.emt:NoSuchCalc"}, "has no callable 'NoSuchCalc'"),
    ({"factory": "ase.calculators.emt"}, "not of the form"),
    ("nonsense", "unknown shortcut"),
])
def test_factory_that_cannot_be_imported_is_refused(spec, cause, few, tmp_path):
    with pytest.raises(CalculatorError) as e:
        _label(spec, few, tmp_path)
    assert str(e.value).startswith("calculator '") and cause in str(e.value), str(e.value)
    if isinstance(spec, dict) and spec["factory"].startswith("no_such"):
        with pytest.raises(CalculatorError, match="cannot import"):
            check_importable(spec)  # the config check: before the workflow plans any job


def test_cli_refusal_is_one_line(few, tmp_path, capsys):
    from tsmlip.cli import main

    cfg = {"foundation": {"calculator": crafted("NoAtomEnergies"), "device": "cpu", "chunk_size": 16},
           "labels": {"sum_tolerance_eV": 1e-3}}
    rc = main(["label-calculator", "--config-json", json.dumps(cfg), "--dataset", str(few),
               "--out-dataset", str(tmp_path / "d.npz"), "--out-labels", str(tmp_path / "l.npz")])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and err.startswith("tsmlip label-calculator: error: calculator 'NoAtomEnergies': gives no")
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "d.npz").exists() and not (tmp_path / "l.npz").exists()


def test_emt_shortcut_equals_generic_factory_and_the_embedded_labels(few, tmp_path):
    from tsmlip.data import load_dataset
    from tsmlip.label import load_labels

    a, d1, l1 = _label("emt", few, tmp_path / "a")
    b, d2, l2 = _label({"factory": "ase.calculators.emt:EMT", "kwargs": {}}, few, tmp_path / "b")
    x, y, src = load_dataset(d1), load_dataset(d2), load_dataset(few)
    for k in ("E", "F", "ref_atom_E", "Z", "R", "cell"):
        np.testing.assert_array_equal(x[k], y[k])
    # the embedded set was made with EMT: relabelling it with EMT gives its own labels back
    np.testing.assert_allclose(x["E"], src["E"], atol=1e-8)
    np.testing.assert_allclose(x["F"], src["F"], atol=1e-8)
    np.testing.assert_allclose(x["ref_atom_E"], src["ref_atom_E"], atol=1e-8)
    np.testing.assert_array_equal(load_labels(l1, x), load_labels(l2, y))
    prov = json.loads(d1.with_name("provenance.json").read_text())
    assert prov["labelled_by"]["name"] == "emt" and prov["labelled_by"]["package"] == "ase"
    assert prov["labelled_by"]["version"] and prov["geometries_from"]["source"] == "emt"
    assert a["choice"] == "calculator" and a["max_sum_deviation_eV"] < 1e-6
    assert not (tmp_path / "a" / "scratch").exists()  # removed once complete
    from tsmlip.records import AtomEnergies, DatasetProvenance

    # both files are their records; the source's own provenance record stays inside geometries_from
    assert DatasetProvenance.read(d1.with_name("provenance.json")).to_json() == prov
    assert prov["geometries_from"]["provenance"] == json.loads(few.with_name("provenance.json").read_text())
    labels = AtomEnergies.read(l1.with_suffix(".json"))
    assert labels.calculator["name"] == "emt" and labels.vs_reference is None and labels.to_json() == a


def test_labelling_resumes_from_chunks(few, tmp_path):
    from tsmlip.data import load_dataset

    arrays = load_dataset(few)
    calc, _ = make_calculator("emt")
    lines = []
    full = label_arrays(calc, arrays, "emt", 1e-3, tmp_path / "s", "fp", chunk_size=2, log=lines.append)
    assert len(list((tmp_path / "s").glob("chunk_*.npz"))) == 2 and "4/4 configurations" in lines[-1]
    (sorted((tmp_path / "s").glob("chunk_*.npz"))[-1]).unlink()  # a job killed during the second chunk
    again = label_arrays(calc, arrays, "emt", 1e-3, tmp_path / "s", "fp", chunk_size=2, log=lines.append)
    assert again["n_resumed"] == 2 and again["n_labelled"] == 2
    np.testing.assert_array_equal(again["atom_E"], full["atom_E"])
    other = label_arrays(calc, arrays, "emt", 1e-3, tmp_path / "s", "other", chunk_size=2, log=lines.append)
    assert other["n_resumed"] == 0  # another dataset or calculator: the chunks are not reused


def test_normalize_spec():
    assert normalize_spec("chgnet")["factory"] is None
    assert normalize_spec("ase.calculators.emt:EMT")["factory"] == "ase.calculators.emt:EMT"


# --- CHGNet (the optional group `foundation`) -------------------------------------------------------------
@pytest.fixture(scope="module")
def chgnet_labelled(few, tmp_path_factory):
    pytest.importorskip("chgnet")
    d = tmp_path_factory.mktemp("chgnet")
    t = time.perf_counter()
    info, out_d, out_l = _label("chgnet", few, d, device="cpu", chunk_size=2)
    return info, out_d, out_l, time.perf_counter() - t


def test_chgnet_labels_a_handful_of_configurations(chgnet_labelled, few):
    from tsmlip.data import load_dataset
    from tsmlip.label import load_labels

    info, out_d, out_l, wall = chgnet_labelled
    x, src = load_dataset(out_d), load_dataset(few)
    mask = x["Z"] != 0
    e_atom = x["E"] / mask.sum(axis=1)
    assert np.all((-4.2 < e_atom) & (e_atom < -3.0)), e_atom  # CHGNet's fcc Al: -3.6 eV/atom
    assert np.isfinite(x["F"]).all() and not np.allclose(x["F"][mask], src["F"][mask])
    np.testing.assert_allclose(load_labels(out_l, x).sum(axis=1), x["E"], atol=1e-3)
    lab = json.loads(out_d.with_name("provenance.json").read_text())["labelled_by"]
    assert lab["name"] == "chgnet" and lab["version"] == "0.4.2" and len(lab["weights_sha256"]) == 64
    assert lab["weights_file"].startswith("chgnet/pretrained/0.3.0/") and lab["n_parameters"] == 412525
    print(f"CHGNet labelled {len(x['E'])} configurations ({int(mask.sum())} atoms) in {wall:.1f} s "
          f"({lab['s_per_config']} s/config after loading)")


def test_tiny_student_trains_on_chgnet_labels(chgnet_labelled, tiny_cfg, tmp_path):
    from tsmlip.ids import ModelId
    from tsmlip.train import train

    _, out_d, out_l, _ = chgnet_labelled
    split = tmp_path / "split.npz"
    np.savez(split, train=np.array([0, 1]), valid=np.array([2]), test=np.array([3]))
    s = {k: json.loads(json.dumps(tiny_cfg[k])) for k in ("network", "training", "born_again")}
    s["training"]["max_epochs"] = 2
    metrics = train(ModelId.parse("student/w6-s6-l1/seed1"), s, out_d, split, tmp_path / "m", tmp_path / "c",
                    labels_path=out_l)
    assert (tmp_path / "m" / "model.pt").exists()
    assert np.isfinite(metrics["splits"]["test"]["force_rmse_eV_A"])


# --- the calculator's own cost and the foundation rows of the claims and headline tables ------------------
def test_calculator_cost_by_the_models_protocol(tiny_cfg, tmp_path):
    from tsmlip.md.calculator_cost import calculator_cost

    cost = {"n_atoms": 32, "steps": 2, "warmup_steps": 1, "repeats": 2, "memory_sizes": [32, 108]}
    rec = calculator_cost("emt", tiny_cfg["md"], cost, [13], "cpu")
    assert rec["n_atoms"] == 32 and rec["us_per_atom_step"] > 0 and len(rec["us_per_atom_step_all"]) == 2
    assert [r["n_atoms"] for r in rec["memory_sizes"]] == [32, 108] and all(r["ok"] for r in rec["memory_sizes"])
    assert rec["memory_per_atom_slope_bytes"] is not None
    assert "smaller than the models'" in rec["protocol"] and rec["calculator"]["name"] == "emt"


def _models_table():
    import pandas as pd

    rows = [{"model_id": "teacher/w12-s8-l2/seed0", "kind": "teacher", "arch": "w12-s8-l2", "seed": 0,
             "test_force_rmse_eV_A": 0.05, "rdf_error_vs_experiment": 0.50, "rdf_stable": True, "rdf_clean": True,
             "md_ase_us_per_atom_step": 100.0, "memory_per_atom_slope_bytes": 4000.0, "converged": True,
             "stopped_by": "patience", "budget_check_test_force_rmse_eV_A": 0.0505,
             "budget_check_relative_change": 0.01}]
    for seed, err in zip((1, 2, 3), (0.51, 0.49, 0.52)):
        rows.append({"model_id": f"student/w6-s6-l1/seed{seed}", "kind": "student", "arch": "w6-s6-l1",
                     "seed": seed, "test_force_rmse_eV_A": 0.06, "rdf_error_vs_experiment": err, "rdf_stable": True,
                     "rdf_clean": True, "md_ase_us_per_atom_step": 25.0, "memory_per_atom_slope_bytes": 1000.0,
                     "converged": True, "stopped_by": "patience",
                     "budget_check_test_force_rmse_eV_A": 0.0606 if seed == 1 else float("nan"),
                     "budget_check_relative_change": 0.01 if seed == 1 else float("nan")})
    return pd.DataFrame(rows)


def test_foundation_claim_decided_against_the_noise_floor(tiny_cfg):
    from tsmlip.claims.foundation import foundation_claims

    models, agg = _models_table(), tiny_cfg["aggregate"]
    (row,) = foundation_claims(models, agg, noise_floor_A=0.2, calculator="chgnet")
    assert "students of chgnet (student) reproduce the experimental liquid structure" in row.claim
    assert row.verdict == "holds" and row.effect == pytest.approx(0.2 - (0.5067 - 0.50), abs=1e-3)
    (far,) = foundation_claims(models.assign(rdf_error_vs_experiment=[0.1, 0.9, 0.95, 0.92]), agg, 0.2)
    assert far.verdict == "does not hold"
    (none,) = foundation_claims(models, agg, None)
    assert none.verdict == "inconclusive" and "noise floor" in none.detail


def test_foundation_headline_ratios():
    from conftest import make_record
    from tsmlip.claims.headline import foundation_headline, headline_human
    from tsmlip.records import CalculatorCost

    cost = make_record(CalculatorCost, calculator={"name": "chgnet"}, device="cpu", n_atoms=32, models_n_atoms=256,
                       us_per_atom_step=30000.0, memory_per_atom_slope_bytes=2.0e6,
                       memory_sizes=[{"n_atoms": 32}, {"n_atoms": 108}])
    head = foundation_headline(_models_table(), cost)
    assert head["vs_foundation"].tolist() == pytest.approx([1200.0, 1000.0 / 2.0e6])
    human = headline_human(head.assign(teacher=float("nan"), control=float("nan"), vs_teacher=float("nan"),
                                       vs_control=float("nan")))
    assert human["student vs foundation model"].tolist() == ["1,200x faster", "0.0005x the memory"]


def test_snakemake_label_calculator_rule_then_a_student(tmp_path):
    """The new rule through Snakemake (tiny: 12 EMT-sampled geometries labelled by CHGNet, or by the emt shortcut
    where the optional group is not installed), then one student trained on its labels (about 1.5 min)."""
    import importlib.util

    from conftest import run_snakemake

    calculator = "chgnet" if importlib.util.find_spec("chgnet") else "emt"

    res = tmp_path / "results"
    target = res / "models" / "student" / "w6-s6-l1" / "seed1" / "metrics.json"
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(json.dumps({"results_dir": str(res), "data": {"emt": {"n_configs": 12}},
                                   "foundation": {"calculator": calculator, "device": "cpu"}}))
    out = run_snakemake("--cores", "1", "--configfile", "config/test.yaml", "config/foundation.yaml", str(overlay),
                        "--", str(target), timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    prov = json.loads((res / "data" / "provenance.json").read_text())
    assert prov["labelled_by"]["name"] == calculator and (res / "data" / "source" / "dataset.npz").exists()
    assert json.loads((res / "labels" / "atom_energies.json").read_text())["choice"] == "calculator"
    assert not (res / "scratch" / "label_calculator").exists()
    assert json.loads(target.read_text())["splits"]["test"]["force_rmse_eV_A"] > 0


def test_config_refuses_a_calculator_that_cannot_be_imported(tmp_path):
    from conftest import BASE_CONFIG, ROOT
    from tsmlip.config import calculator_name, load_config
    from tsmlip.ids import ConfigError

    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps({"foundation": {"calculator": {"factory": "no_such_package.calc:Calc"}}}))
    with pytest.raises(ConfigError, match="foundation.calculator.*no_such_package"):
        load_config(BASE_CONFIG, bad)
    emt = tmp_path / "emt.yaml"
    emt.write_text(json.dumps({"foundation": {"calculator": {"factory": "ase.calculators.emt:EMT", "name": "EMT"}}}))
    cfg = load_config(BASE_CONFIG, emt)
    assert calculator_name(cfg) == "EMT" and cfg["foundation"]["students_learn"] == "teacher"
    # the default: CHGNet's labels, the students learning the HIPNN teacher's atom energies (two-step)
    assert load_config(BASE_CONFIG)["foundation"]["calculator"] == "chgnet"
    assert load_config(BASE_CONFIG, ROOT / "config" / "emt.yaml")["foundation"]["calculator"] is None
    if importlib.util.find_spec("chgnet"):
        cfg = load_config(BASE_CONFIG, ROOT / "config" / "foundation.yaml")
        assert cfg["foundation"]["calculator"] == "chgnet" and cfg["rdf"]["experiment"]["enabled"]


def test_default_two_step_distillation_on_the_tiny_config(tmp_path):
    """The default's ground truth on the tiny config: the calculator (CHGNet where installed) labels the geometries,
    the HIPNN teacher learns its energies and forces and labels the students, student_oracle learns the calculator's
    own site energies (about 2 min)."""
    import importlib.util

    from conftest import run_snakemake

    calculator = "chgnet" if importlib.util.find_spec("chgnet") else "emt"
    res = tmp_path / "results"
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(json.dumps({"results_dir": str(res), "data": {"emt": {"n_configs": 12}},
                                   "foundation": {"calculator": calculator, "students_learn": "teacher",
                                                  "device": "cpu"}}))
    targets = [res / "models" / k / "w6-s6-l1" / "seed1" / "metrics.json" for k in ("student", "student_oracle")]
    out = run_snakemake("--cores", "1", "--configfile", "config/test.yaml", str(overlay), "--", *map(str, targets),
                        timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    prov = json.loads((res / "data" / "provenance.json").read_text())
    assert prov["labelled_by"]["name"] == calculator
    labels = json.loads((res / "labels" / "atom_energies.json").read_text())
    assert labels["teachers"] and all("teacher/" in t for t in labels["teachers"])  # the HIPNN teacher labels
    student, oracle = (json.loads(t.read_text()) for t in targets)
    assert student["teacher_labels"].endswith("atom_energies.npz")
    assert oracle["teacher_labels"].endswith("oracle_atom_energies.npz")
    assert student["splits"]["test"]["force_rmse_eV_A"] > 0 and oracle["splits"]["test"]["force_rmse_eV_A"] > 0
