"""Physics and bookkeeping of the HIPNN model: forces are minus the energy gradient, atom energies sum
to the total, identical initial weights per (architecture, seed), save/load and the ASE calculator."""
import json

import numpy as np
import pytest
import torch
from ase.build import bulk

from tsmlip.ids import Arch
from tsmlip.core.model import build_model, count_weights, load_model, save_model
from tsmlip.core.predict import predict


@pytest.fixture(scope="module")
def rattled_al():
    a = bulk("Al", "fcc", a=4.05, cubic=True).repeat((3, 3, 2))
    a.rattle(0.15, seed=3)
    del a[[0, 7]]  # vacancies, so padding is exercised below
    return a


def arrays_of(atoms_list):
    from tsmlip.data.dataset import pad_configurations
    return pad_configurations([{"Z": a.numbers, "R": a.positions, "cell": a.cell.array, "E": 0.0,
                                "F": np.zeros((len(a), 3))} for a in atoms_list])


def test_forces_are_minus_energy_gradient(tiny_cfg, rattled_al):
    g = build_model(Arch(8, 6, 2), tiny_cfg["network"], seed=0)
    base = arrays_of([rattled_al])
    F = predict(g, base)["F"][0]
    h = 1e-2
    for atom, axis in [(0, 0), (5, 1), (11, 2)]:
        plus, minus = rattled_al.copy(), rattled_al.copy()
        plus.positions[atom, axis] += h
        minus.positions[atom, axis] -= h
        E = predict(g, arrays_of([plus, minus]))["E"]
        fd = -(E[0] - E[1]) / (2 * h)
        assert F[atom, axis] == pytest.approx(fd, rel=2e-2, abs=2e-3)


def test_atom_energies_sum_to_total(tiny_cfg, rattled_al):
    g = build_model(Arch(8, 6, 2), tiny_cfg["network"], seed=1)
    small = rattled_al.copy()
    del small[:5]
    p = predict(g, arrays_of([rattled_al, small]))
    assert p["atom_E"].sum(axis=1) == pytest.approx(p["E"], abs=1e-4)
    assert np.all(p["atom_E"][1, len(small):] == 0)  # padding carries nothing


def test_same_seed_same_initial_weights(tiny_cfg):
    a = build_model(Arch(8, 6, 2), tiny_cfg["network"], seed=4).network.torch_module.state_dict()
    b = build_model(Arch(8, 6, 2), tiny_cfg["network"], seed=4).network.torch_module.state_dict()
    c = build_model(Arch(8, 6, 2), tiny_cfg["network"], seed=5).network.torch_module.state_dict()
    tensors = [k for k, v in a.items() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    assert all(torch.equal(a[k], b[k]) for k in tensors)
    assert not all(torch.equal(a[k], c[k]) for k in tensors)


def test_weight_count_grows_with_width(tiny_cfg):
    n = [count_weights(build_model(Arch(w, 6, 2), tiny_cfg["network"], seed=0)) for w in (4, 8, 16)]
    assert n[0] < n[1] < n[2]


def test_save_load_and_calculator_agree(tiny_cfg, rattled_al, tmp_path):
    from tsmlip.core.calculator import load_calculator

    g = build_model(Arch(8, 6, 1), tiny_cfg["network"], seed=2)
    save_model(g, tmp_path / "model.pt", note="test")
    ref = predict(g, arrays_of([rattled_al]))
    again = predict(load_model(tmp_path / "model.pt"), arrays_of([rattled_al]))
    np.testing.assert_allclose(again["E"], ref["E"], rtol=1e-6)
    atoms = rattled_al.copy()
    atoms.calc = load_calculator(tmp_path / "model.pt", device="cpu", atom_energies=True)
    assert atoms.get_potential_energy() == pytest.approx(float(ref["E"][0]), rel=1e-5)  # eV, not kcal/mol
    np.testing.assert_allclose(atoms.get_forces(), ref["F"][0, :len(atoms)], atol=1e-4)
    assert atoms.calc.results["atom_energies"].sum() == pytest.approx(float(ref["E"][0]), rel=1e-4)


def test_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no trained model"):
        load_model(tmp_path / "nope.pt")


# ------------------------------------------------------------------------------- safe model files
PLAIN_TYPES = (str, int, float, bool, type(None))


def _only_tensors_and_plain_data(obj, where="payload"):
    if isinstance(obj, torch.Tensor) or type(obj) in PLAIN_TYPES:
        return
    assert isinstance(obj, (dict, list)), f"{where}: {type(obj).__name__}"
    items = obj.items() if isinstance(obj, dict) else enumerate(obj)
    for k, v in items:
        assert isinstance(k, (str, int)), f"{where}: key {k!r}"
        _only_tensors_and_plain_data(v, f"{where}.{k}")


def test_every_model_kind_loads_with_weights_only(tiny_cfg, rattled_al, tmp_path):
    """One model of every kind of the run (teacher, student, control, control_fw, born_again,
    born_again_static), saved by the call training makes, reads back with torch.load(weights_only=True)."""
    from tsmlip.model_ids import all_model_ids
    from tsmlip.kinds import KINDS
    from tsmlip.core.model import MODEL_FORMAT

    one_per_kind = {}
    for mid in all_model_ids(tiny_cfg):
        one_per_kind.setdefault(mid.kind, mid)
    assert set(one_per_kind) == set(KINDS)
    for kind, mid in one_per_kind.items():
        g = build_model(mid.arch, tiny_cfg["network"], seed=mid.seed)
        path = tmp_path / mid.path / "model.pt"
        save_model(g, path, model_id=str(mid), best_epoch=3, epochs=5)  # as tsmlip.train.train does
        payload = torch.load(path, map_location="cpu", weights_only=True)
        _only_tensors_and_plain_data(payload)
        assert payload["format"] == MODEL_FORMAT and payload["meta"]["model_id"] == str(mid)
        assert payload["arch"] == {"width": mid.arch.width, "n_sensitivities": mid.arch.n_sensitivities,
                                   "n_atom_layers": mid.arch.n_atom_layers}
        assert payload["meta"] == {"model_id": str(mid), "best_epoch": 3, "epochs": 5}
        again = load_model(path)
        np.testing.assert_allclose(predict(again, arrays_of([rattled_al]))["E"],
                                   predict(g, arrays_of([rattled_al]))["E"], rtol=1e-6)


def test_save_model_writes_plain_metadata_only(tiny_cfg, tmp_path):
    g = build_model(Arch(4, 6, 1), tiny_cfg["network"], seed=0)
    save_model(g, tmp_path / "m.pt", best_epoch=np.int64(3), rmse=np.float32(0.5), pair=(1, "a"))
    meta = torch.load(tmp_path / "m.pt", weights_only=True)["meta"]
    assert meta == {"best_epoch": 3, "rmse": 0.5, "pair": [1, "a"]} and type(meta["best_epoch"]) is int
    with pytest.raises(TypeError, match=r"meta\.note: object is not plain data"):
        save_model(g, tmp_path / "bad.pt", note=object())
    assert not (tmp_path / "bad.pt").exists()


class _RunsCode:
    """Unpickling this calls open(marker, "w"): a stand-in for any code a malicious model file could run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_crafted_pickle_is_refused_and_runs_nothing(tiny_cfg, tmp_path, capsys):
    import pickle

    from tsmlip import cli
    from tsmlip.core.model import MODEL_FORMAT, ModelFileError

    marker = tmp_path / "code_ran"
    good = build_model(Arch(4, 6, 1), tiny_cfg["network"], seed=0)
    save_model(good, tmp_path / "good.pt")
    payload = torch.load(tmp_path / "good.pt", weights_only=True)
    payload["meta"] = {"note": _RunsCode(marker)}  # a real model file plus one object that runs code
    torch.save(payload, tmp_path / "evil.pt")
    (tmp_path / "evil.pickle").write_bytes(pickle.dumps({"format": MODEL_FORMAT, "x": _RunsCode(marker)}))
    for name in ("evil.pt", "evil.pickle"):
        with pytest.raises(ModelFileError, match=rf"{name} is not a tsmlip model file: refused by "
                                                 r"torch\.load\(weights_only=True\)"):
            load_model(tmp_path / name)
        assert not marker.exists()
    # the command-line steps say so in one line (no traceback) and run nothing either
    md = dict(tiny_cfg["md"], device="cpu")
    rc = cli.main(["max-atoms", "--model", str(tmp_path / "evil.pt"), "--out", str(tmp_path / "max_atoms.json"),
                   "--config-json", json.dumps({"md": md})])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("tsmlip max-atoms: error: ") and "evil.pt is not a tsmlip model" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not marker.exists() and not (tmp_path / "max_atoms.json").exists()
    # the test is not vacuous: the old way of loading (weights_only=False) does run the payload
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("case,message", [
    ("text", "is not a tsmlip model file: refused by torch.load"),
    ("empty", "is not a tsmlip model file: unreadable"),
    ("truncated", "is not a tsmlip model file: unreadable"),
    ("list", r"is not a tsmlip model file \(it holds a list\)"),
    ("no_marker", "is not a tsmlip model file .no 'tsmlip-model/1' format marker"),
    ("newer", "model file format 'tsmlip-model/2', but tsmlip .* reads 'tsmlip-model/1'"),
    ("missing_keys", "incomplete tsmlip model file, missing network_state, henergy_state"),
    ("wrong_weights", "broken tsmlip model file, its weights do not fit its architecture"),
])
def test_not_a_model_file_is_one_clear_error(tiny_cfg, tmp_path, case, message):
    from tsmlip.core.model import ModelFileError

    save_model(build_model(Arch(4, 6, 1), tiny_cfg["network"], seed=0), tmp_path / "good.pt")
    good = torch.load(tmp_path / "good.pt", weights_only=True)
    path = tmp_path / f"{case}.pt"
    if case == "text":
        path.write_text("not a model\n")
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "truncated":
        data = (tmp_path / "good.pt").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "list":
        torch.save([torch.zeros(3)], path)
    elif case == "no_marker":
        torch.save({k: v for k, v in good.items() if k != "format"}, path)
    elif case == "newer":
        torch.save(dict(good, format="tsmlip-model/2"), path)
    elif case == "missing_keys":
        torch.save({k: v for k, v in good.items() if not k.endswith("_state")}, path)
    elif case == "wrong_weights":
        torch.save(dict(good, arch={"width": 8, "n_sensitivities": 6, "n_atom_layers": 1}), path)
    with pytest.raises(ModelFileError, match=message) as info:
        load_model(path)
    assert str(path) in str(info.value)
