"""The fast training engine against hippynn: the same weights give the same energies, forces, atom energies, loss
terms and gradients as the project's hippynn training step (tsmlip.train.assembly), for one and two species and every
kind's loss; models in a stack do not see each other; a stack trains, writes the hippynn engine's outputs and
resumes from its checkpoints."""
import copy
import csv
import json
import math

import numpy as np
import pytest
import torch

from tsmlip.ids import ModelId
from tsmlip.core import hipnn_stack
from tsmlip.core.geometry import pair_geometry
from tsmlip.core.hipnn import UnsupportedModel, check_supported
from tsmlip.core.hipnn_stack import SlotBatch, StackedHipnn, loss_terms
from tsmlip.core.losses import combine

#: float32 rounding: relative agreement of loss terms, and of each gradient tensor (relative to its largest entry)
TERM_RTOL, GRAD_RTOL = 2e-6, 3e-5


def _with_copper(arrays, fraction=0.3, seed=0):
    """The tiny set with a random share of its atoms relabelled copper (labels unchanged: the comparison needs
    the same function, not physical targets)."""
    arrays = dict(arrays)
    Z = arrays["Z"].copy()
    Z[(Z != 0) & (np.random.default_rng(seed).random(Z.shape) < fraction)] = 29
    arrays["Z"] = Z
    return arrays


def _labels(arrays, seed=1):
    real = arrays["Z"] != 0
    per_atom = (arrays["E"] / real.sum(1))[:, None]
    return (per_atom + 0.01 * np.random.default_rng(seed).standard_normal(real.shape)) * real


def _reference(cfg, arrays, kind, arch="w8-s4-l2", seed=1, n=4):
    """hippynn's training step (the project's own assembly) on the first ``n`` training configurations: its loss
    terms, the gradient of the weighted loss, the weights, and the rows of the batch."""
    from tsmlip.train.assembly import assemble_training, TrainingData
    from tsmlip.data.split import make_split

    cfg = copy.deepcopy(cfg)
    cfg["training"]["precompute_pairs"] = False
    split = make_split(len(arrays["E"]), 0.17, 0.17, 1)
    mid = ModelId.parse(f"{kind}/{arch}/seed{seed}")
    labels = _labels(arrays)
    from tsmlip.kinds import REGISTRY
    data = TrainingData(arrays, split, labels, REGISTRY[kind].distilled, "x")
    run = assemble_training(mid, cfg, data, torch.device("cpu"))
    w = run.schedule.final
    rows = run.db.splits["train"]["indices"][:n].numpy()
    batch = run.batches["train"].batch(torch.arange(n))
    outputs = run.model(*batch[:run.n_in])
    values = dict(zip(run.term_names, run.term_module(*outputs, *batch[run.n_in:])))
    loss = combine(w, values)
    run.model.zero_grad()
    loss.backward()
    grads = {"net." + k: p.grad.clone() for k, p in run.graph.network.torch_module.named_parameters()}
    grads.update({"he." + k: p.grad.clone() for k, p in run.graph.henergy.torch_module.named_parameters()
                  if p.grad is not None})
    states = (run.graph.network.torch_module.state_dict(), run.graph.henergy.torch_module.state_dict())
    return dict(w=w, terms={k: float(v) for k, v in values.items()}, grads=grads, states=states, rows=rows,
                labels=labels, distilled=data.distilled, arch=mid.arch)


KERNELS = ["torch", "cpp"]


def _kernels(name: str) -> str:
    """The pair path ``name``; the fused loops are skipped, saying why, where they cannot be built."""
    from tsmlip.core import pair_kernels

    if name == "cpp" and not pair_kernels.use_cpp("auto", "cpu"):
        pytest.skip(f"the fused pair loops could not be built here: {pair_kernels._error}")
    return name


def _fast(cfg, arrays, ref, stack_states=None, stack_rows=None, position=0, kernels="torch"):
    """The fast engine's terms and gradients of model ``position`` of a stack (default: a stack of one), with the
    pair terms of the torch path or the fused loops (``kernels``)."""
    species = sorted(int(z) for z in np.unique(arrays["Z"]) if z)
    geom = pair_geometry(arrays, species, cfg["network"]["dist_hard_max"])
    states = stack_states or [ref["states"]]
    rows = stack_rows if stack_rows is not None else ref["rows"][None]
    st = StackedHipnn(states, ref["arch"].n_atom_layers, cfg["network"]["dist_hard_max"], pair_kernels=kernels)
    batch = SlotBatch(geom, torch.as_tensor(rows))
    out = st.forward(batch, forces=True, create_graph=True)
    M = rows.shape[0]
    flat = rows.reshape(-1)
    tg = {"E": torch.as_tensor(arrays["E"][flat], dtype=torch.float32).reshape(M, -1),
          "F": torch.as_tensor(arrays["F"][flat], dtype=torch.float32).reshape(M, -1, 3),
          "atom_E": torch.as_tensor(ref["labels"][flat], dtype=torch.float32).reshape(M, -1)}
    terms = loss_terms(st, out, batch, tg, ref["distilled"])
    w = ref["w"]
    loss = sum(getattr(w, f"w_{t}") * terms[t] for t in terms)
    loss.sum().backward()
    return ({k: float(v[position]) for k, v in terms.items()},
            {k: p.grad[position] for k, p in st.trainable().items()}, out)


def _mismatches(ref, terms, grads):
    """What differs beyond float32 rounding (empty when the engines agree)."""
    bad = [f"term {k}: {ref['terms'][k]} vs {terms[k]}" for k in ref["terms"]
           if abs(ref["terms"][k] - terms[k]) > TERM_RTOL * abs(ref["terms"][k])]
    for k, g in grads.items():
        r = ref["grads"][k]
        rel = float((g - r).abs().max() / (r.abs().max() + 1e-30))
        if rel > GRAD_RTOL:
            bad.append(f"gradient {k}: relative difference {rel:.2e}")
    return bad


@pytest.fixture(scope="module")
def two_species(tiny_data):
    return _with_copper(tiny_data[2])


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("kind", ["student", "control", "control_fw", "teacher"])
def test_step_equals_hippynn_one_species(tiny_cfg, tiny_data, kind, kernels):
    arrays = tiny_data[2]
    ref = _reference(tiny_cfg, arrays, kind)
    terms, grads, _ = _fast(tiny_cfg, arrays, ref, kernels=_kernels(kernels))
    assert set(terms) == set(ref["terms"])
    assert _mismatches(ref, terms, grads) == []


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("kind", ["student", "control"])
def test_step_equals_hippynn_two_species(tiny_cfg, two_species, kind, kernels):
    ref = _reference(tiny_cfg, two_species, kind, arch="w6-s5-l1")
    terms, grads, _ = _fast(tiny_cfg, two_species, ref, kernels=_kernels(kernels))
    assert _mismatches(ref, terms, grads) == []


@pytest.mark.parametrize("kernels", KERNELS)
def test_step_equals_hippynn_without_resnet(tiny_cfg, two_species, kernels):
    """network.resnet: false (plain softplus layers; other state-dict keys), two species, two atom layers."""
    cfg = copy.deepcopy(tiny_cfg)
    cfg["network"]["resnet"] = False
    ref = _reference(cfg, two_species, "student", arch="w6-s5-l2")
    assert not any("res_layer" in k for k in ref["states"][0])
    terms, grads, _ = _fast(cfg, two_species, ref, kernels=_kernels(kernels))
    assert _mismatches(ref, terms, grads) == []


@pytest.mark.parametrize("kernels", KERNELS)
def test_energies_forces_atom_energies_equal_hippynn_predictions(tiny_cfg, two_species, kernels):
    """The forward pass against tsmlip.core.predict (hippynn's Predictor with its own periodic pair search)."""
    from tsmlip.core.model import build_model
    from tsmlip.core.predict import predict

    ref = _reference(tiny_cfg, two_species, "control", arch="w6-s5-l1")
    graph = build_model(ref["arch"], tiny_cfg["network"], species=[13, 29])
    graph.network.torch_module.load_state_dict(ref["states"][0])
    graph.henergy.torch_module.load_state_dict(ref["states"][1])
    rows = np.arange(6)
    pred = predict(graph, two_species, rows)
    _, _, out = _fast(tiny_cfg, two_species, ref, stack_rows=rows[None], kernels=_kernels(kernels))
    real = two_species["Z"][rows] != 0
    np.testing.assert_allclose(out["E"].detach().numpy()[0], pred["E"], rtol=2e-6, atol=1e-4)
    np.testing.assert_allclose(out["F"].detach().numpy()[0].reshape(len(rows), -1, 3)[real], pred["F"][real],
                               atol=2e-5)
    np.testing.assert_allclose(out["atom_E"].detach().numpy()[0].reshape(len(rows), -1)[real], pred["atom_E"][real],
                               atol=2e-5)


@pytest.mark.parametrize("kernels", KERNELS)
def test_stacked_models_are_independent(tiny_cfg, tiny_data, kernels):
    """A stack of three: the middle model holds hippynn's weights and batch between two neighbours with other
    weights and other configurations, and still matches hippynn."""
    arrays = tiny_data[2]
    ref = _reference(tiny_cfg, arrays, "student")
    gen = torch.Generator().manual_seed(5)

    def perturbed(states):
        return tuple({k: (v + 0.1 * torch.randn(v.shape, generator=gen) if isinstance(v, torch.Tensor) else v)
                      for k, v in sd.items()} for sd in states)

    others = [r for r in range(len(arrays["E"])) if r not in set(ref["rows"].tolist())]
    rows = np.stack([others[:4], ref["rows"], others[4:8]])
    terms, grads, _ = _fast(tiny_cfg, arrays, ref, stack_states=[perturbed(ref["states"]), ref["states"],
                                                                 perturbed(ref["states"])],
                            stack_rows=rows, position=1, kernels=_kernels(kernels))
    assert _mismatches(ref, terms, grads) == []


def test_a_wrong_derivative_or_loss_term_is_caught(tiny_cfg, tiny_data, monkeypatch):
    """The comparison can fail: a force chain rule with its tangential part 1 % off, or an MAE left out of a term, is
    reported."""
    arrays = tiny_data[2]
    ref = _reference(tiny_cfg, arrays, "student")
    real_pair_forces = hipnn_stack.pair_forces

    def no_tangential(g_env, s, ds, batch, n_species):
        return real_pair_forces(g_env, s, ds, _NoUnitTangent(batch), n_species)

    class _NoUnitTangent:  # 1/d of the tangential term 1 % off (the radial term does not use it)
        def __init__(self, b):
            self.__dict__.update(b.__dict__)
            self.inv_dist = b.inv_dist / 1.01

    monkeypatch.setattr(hipnn_stack, "pair_forces", no_tangential)
    terms, grads, _ = _fast(tiny_cfg, arrays, ref)
    assert _mismatches(ref, terms, grads)  # the force gradients (vecscales, mu) depart at 1e-4 to 1e-3
    monkeypatch.setattr(hipnn_stack, "pair_forces", real_pair_forces)
    monkeypatch.setattr(hipnn_stack, "_err", lambda d, m, c: (lambda r: (r, r, r))(
        torch.sqrt((d.square() * m).sum(tuple(range(1, d.ndim))) / c + hipnn_stack.RMSE_FLOOR)))
    terms, grads, _ = _fast(tiny_cfg, arrays, ref)
    assert any(m.startswith("term E") for m in _mismatches(ref, terms, grads))


def test_unsupported_settings_are_refused_by_name(tiny_cfg):
    for key, value in (("n_interaction_layers", 2), ("sensitivity_type", "linear")):
        net = dict(tiny_cfg["network"], **{key: value})
        with pytest.raises(UnsupportedModel, match=f"network.{key}"):
            check_supported(net, "stacked")


def _stack_cfg(tiny_cfg, epochs=4):
    cfg = copy.deepcopy(tiny_cfg)
    cfg["training"].update(max_epochs=epochs, checkpoint_every=1, train_eval_every=2)
    return cfg


def test_train_stack_writes_each_models_outputs(tiny_cfg, tiny_data, tmp_path):
    from tsmlip.core.model import load_model
    from tsmlip.core.predict import predict
    from tsmlip.train.fast import train_stack

    ds, sp, arrays = tiny_data
    labels = tmp_path / "labels.npz"
    _write_labels(labels, arrays)
    ids = [ModelId.parse(s) for s in ("student/w6-s6-l1/seed1", "control/w6-s6-l1/seed1", "control/w6-s6-l1/seed2")]
    res = train_stack(ids, _stack_cfg(tiny_cfg), ds, sp, {str(m): str(labels) for m in ids}, tmp_path / "models",
                      tmp_path / "ck")
    assert [r["model_id"] for r in res] == [str(m) for m in ids]
    for m, r in zip(ids, res):
        folder = tmp_path / "models" / str(m)
        assert {p.name for p in folder.iterdir()} >= {"model.pt", "metrics.json", "curve.csv"}
        graph = load_model(folder / "model.pt")
        test = np.load(sp)["test"]
        f = predict(graph, arrays, test)["F"]
        real = arrays["Z"][test] != 0
        rmse = float(np.sqrt(np.mean((f - arrays["F"][test])[real] ** 2)))
        assert math.isclose(rmse, r["splits"]["test"]["force_rmse_eV_A"], rel_tol=1e-6)
        assert r["epochs"] == 4 and len(r["loss_weights"]) == 5
    # the two control seeds start from other weights and see other batches
    assert res[1]["splits"]["test"]["force_rmse_eV_A"] != res[2]["splits"]["test"]["force_rmse_eV_A"]


def _write_labels(path, arrays):
    """Atom-energy labels summing to the dataset's energies (the file layout of tsmlip label)."""
    atom_E = _labels(arrays)
    real = arrays["Z"] != 0
    atom_E = atom_E + ((arrays["E"] - atom_E.sum(1)) / real.sum(1))[:, None] * real
    np.savez(path, atom_E=atom_E, E_teacher=arrays["E"], sum_tolerance_eV=1e-3)


def test_killed_stack_resumes_from_checkpoints(tiny_cfg, tiny_data, tmp_path, monkeypatch, capsys):
    """Killed after epoch 2 and run again, every model resumes at its epoch 2 and ends where an uninterrupted stack
    ends (same weights, same data order)."""
    from tsmlip.train import fast

    ds, sp, _ = tiny_data
    ids = [ModelId.parse(s) for s in ("control/w6-s6-l1/seed1", "control/w6-s6-l1/seed2")]
    cfg = _stack_cfg(tiny_cfg, epochs=4)
    whole = fast.train_stack(ids, cfg, ds, sp, {}, tmp_path / "a", tmp_path / "cka")

    real_end = fast.epoch_end

    def killed(model_id, schedule, state, *a, **k):
        if state["curve"] and state["curve"][-1]["epoch"] == 2 and len(state["curve"]) > 2:
            raise KeyboardInterrupt
        return real_end(model_id, schedule, state, *a, **k)

    monkeypatch.setattr(fast, "epoch_end", killed)
    with pytest.raises(KeyboardInterrupt):
        fast.train_stack(ids, cfg, ds, sp, {}, tmp_path / "b", tmp_path / "ckb")
    monkeypatch.setattr(fast, "epoch_end", real_end)
    again = fast.train_stack(ids, cfg, ds, sp, {}, tmp_path / "b", tmp_path / "ckb")
    assert capsys.readouterr().out.count("resuming from checkpoint at epoch 2") == 2
    for a, b in zip(whole, again):
        assert a["splits"]["test"]["force_rmse_eV_A"] == pytest.approx(b["splits"]["test"]["force_rmse_eV_A"],
                                                                       rel=1e-6)


def test_weight_average_is_what_is_evaluated_and_kept(tiny_cfg, tiny_data, tmp_path):
    """With training.ema_decay the averaged weights are evaluated, kept as the best and written: the written model
    differs from the same training without the average, and its metrics are the average's."""
    from tsmlip.train.fast import train_stack
    from tsmlip.train.optim import StackAdam

    ds, sp, _ = tiny_data
    ids = [ModelId.parse("control/w6-s6-l1/seed1")]
    plain = train_stack(ids, _stack_cfg(tiny_cfg, epochs=3), ds, sp, {}, tmp_path / "a", tmp_path / "cka")[0]
    cfg = _stack_cfg(tiny_cfg, epochs=3)
    cfg["training"]["ema_decay"] = 0.9
    avg = train_stack(ids, cfg, ds, sp, {}, tmp_path / "b", tmp_path / "ckb")[0]
    assert avg["splits"]["test"]["force_rmse_eV_A"] != plain["splits"]["test"]["force_rmse_eV_A"]
    # the average follows torch.lerp with the ramped decay: after one step of weights w0 -> w1, ema = w0 + (1-d)(w1-w0)
    p = {"x": torch.zeros(2, 3, requires_grad=True)}
    adam = StackAdam(p, [0.1, 0.2], ema_decay=0.9)
    p["x"].grad = torch.ones(2, 3)
    adam.step(p)
    d = min(0.9, 2 / 11)
    assert torch.allclose(adam.ema["x"], (1 - d) * p["x"].detach())
    with adam.averaged(p):
        assert torch.allclose(p["x"], adam.ema["x"])
    assert not torch.allclose(p["x"], adam.ema["x"])


def test_stack_adam_is_torch_adam_per_model_through_a_shrink():
    """StackAdam (one flat buffer of moments and average for the stack) steps each model as torch.optim.Adam steps it
    alone at that model's rate, also after models leave the stack (keep) in another order."""
    from tsmlip.train.optim import StackAdam

    torch.manual_seed(0)
    shapes = {"a": (3, 4), "b": (5,), "c": (2, 1, 3)}
    start = {k: torch.randn(3, *s) for k, s in shapes.items()}
    rates = [1e-2, 3e-3, 5e-4]
    stacked = {k: v.clone().requires_grad_(True) for k, v in start.items()}
    adam = StackAdam(stacked, rates)
    alone = [{k: v[m].clone().requires_grad_(True) for k, v in start.items()} for m in range(3)]
    ref = [torch.optim.Adam(list(alone[m].values()), lr=rates[m]) for m in range(3)]
    rows = [0, 1, 2]
    for step in range(6):
        grads = {k: torch.randn(len(rows), *s) for k, s in shapes.items()}
        for k, g in grads.items():
            stacked[k].grad = g.clone()
        adam.step(stacked)
        for i, m in enumerate(rows):
            for k, g in grads.items():
                alone[m][k].grad = g[i].clone()
            ref[m].step()
        for i, m in enumerate(rows):
            for k in shapes:
                assert torch.allclose(stacked[k][i], alone[m][k], rtol=1e-6, atol=1e-7), (step, m, k)
        if step == 2:  # model 1 leaves, the others swap places
            rows = [2, 0]
            adam.keep([2, 0])
            stacked = {k: v.detach()[[2, 0]].clone().requires_grad_(True) for k, v in stacked.items()}
    assert [g["lr"] for g in adam.param_groups] == [rates[2], rates[0]]
    assert adam.m["c"].shape == (2, 2, 1, 3) and adam.slice(1)["v"]["a"].shape == (3, 4)


def test_the_learning_rate_is_the_widths_in_both_engines(tiny_cfg, tiny_data, tmp_path):
    """training.learning_rate_by_width: a listed width starts at its own rate and halves down to the same
    fraction of it (the floor scales), in the stacked engine and in hippynn's; other widths keep learning_rate.
    The keys work as YAML integers and as the strings the settings become in JSON."""
    from tsmlip.model_ids import arch_training
    from tsmlip.train import train
    from tsmlip.train.fast import train_stack

    tr = {**tiny_cfg["training"], "learning_rate": 5e-3, "min_learning_rate": 5e-3 / 32,
          "learning_rate_by_width": {48: 2e-3}}
    assert (arch_training(tr, 8)["learning_rate"], arch_training(tr, 8)["min_learning_rate"]) == (5e-3, 5e-3 / 32)
    assert arch_training(tr, 48)["learning_rate"] == 2e-3
    assert arch_training(tr, 48)["min_learning_rate"] == pytest.approx(2e-3 / 32)
    assert arch_training(json.loads(json.dumps(tr)), 48)["learning_rate"] == 2e-3
    assert arch_training({**tr, "learning_rate_by_width": None}, 48)["learning_rate"] == 5e-3

    ds, sp, _ = tiny_data
    cfg = _stack_cfg(tiny_cfg, epochs=2)
    cfg["training"].update(learning_rate=5e-3, min_learning_rate=None, learning_rate_by_width={6: 1e-4})
    cfg = json.loads(json.dumps(cfg))  # as the rules pass it
    mid = ModelId.parse("control/w6-s6-l1/seed1")
    train_stack([mid], cfg, ds, sp, {}, tmp_path / "a", tmp_path / "cka")
    with open(tmp_path / "a" / str(mid) / "curve.csv") as fh:
        assert {float(r["lr"]) for r in csv.DictReader(fh)} == {1e-4}
    cfg["training"].update(engine="hippynn", ema_decay=0.0)
    train(mid, cfg, ds, sp, tmp_path / "b", tmp_path / "ckb")
    with open(tmp_path / "b" / "curve.csv") as fh:
        assert {float(r["lr"]) for r in csv.DictReader(fh)} == {1e-4}
