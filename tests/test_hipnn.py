"""The one plain-torch HIPNN (tsmlip.core.hipnn): equal to hippynn (energies, forces, atom energies; one and two
species, one and two interaction layers, with and without ResNet), every user equal to it (the stacked engine's
forward pass on both pair paths, the TorchScript export, TorchSim, and the stacked liquid's and TorchSim's MD force
calls), and a network a planned user does not compute refused at planning in one line naming the key."""
import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.neighborlist import neighbor_list

from conftest import BASE_CONFIG, TEST_CONFIG
from tsmlip.config import deep_merge, load_config, validate
from tsmlip.ids import Arch, ConfigError
from tsmlip.core.hipnn import UnsupportedModel, check_supported, plain_from_payload
from tsmlip.core.model import build_model, read_model_payload, save_model

#: float32 rounding against hippynn (as tests/test_export.py): energy per atom, forces, atom energies (eV, eV/A)
TOL_E_PER_ATOM, TOL_F, TOL_AE = 2e-6, 2e-5, 2e-5
#: a user running this module's own lines (the export, TorchSim): float32 rounding of the same operations
TIGHT = dict(rtol=1e-6, atol=1e-6)

NETWORKS = {  # name: (architecture, network: overrides, species)
    "one-species": (Arch(6, 5, 2), {}, (13,)),
    "two-species": (Arch(6, 5, 1), {}, (13, 29)),
    "two-interactions": (Arch(8, 4, 2), {"n_interaction_layers": 2}, (13, 29)),
    "no-resnet": (Arch(8, 4, 1), {"n_interaction_layers": 2, "resnet": False}, (13, 29)),
    "one-block-no-resnet": (Arch(6, 5, 2), {"resnet": False}, (13, 29)),
}


def _model(tmp_path_factory, tiny_cfg, name):
    arch, over, species = NETWORKS[name]
    path = tmp_path_factory.mktemp(name) / "model.pt"
    graph = build_model(arch, dict(tiny_cfg["network"], **over), seed=4, species=species)
    with torch.no_grad():  # untrained weights, shaken so that every layer matters (vecscales, biases, E0)
        gen = torch.Generator().manual_seed(9)
        for module in (graph.network.torch_module, graph.henergy.torch_module):
            for p in module.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
    save_model(graph, path)
    return path


@pytest.fixture(scope="module", params=list(NETWORKS))
def model(request, tiny_cfg, tmp_path_factory):
    return request.param, _model(tmp_path_factory, tiny_cfg, request.param)


def crystal(species):
    a = bulk("Al", "fcc", a=4.0, cubic=True).repeat((2, 2, 2))
    if len(species) > 1:
        a.numbers[::3] = species[1]
    a.rattle(0.1, seed=3)
    return a


def plain(path, atoms):
    """(energy, forces, atom energies) of the one module: positions -> full pair list -> Hipnn -> autograd."""
    net = plain_from_payload(read_model_payload(path))
    i, j, S = neighbor_list("ijS", atoms, net.shape.hard_max)
    pos = torch.tensor(atoms.positions, dtype=torch.float32, requires_grad=True)
    shift = torch.as_tensor(S @ atoms.cell.array, dtype=torch.float32)
    i, j = torch.as_tensor(i), torch.as_tensor(j)
    species = torch.as_tensor([net.shape.species.index(int(z)) for z in atoms.numbers])
    onehot = torch.nn.functional.one_hot(species, len(net.shape.species)).float()
    atom_e = net(onehot, i, j, pos[j] + shift - pos[i])
    (grad,) = torch.autograd.grad(atom_e.sum(), pos)
    return float(atom_e.detach().sum()), -grad.numpy(), atom_e.detach().numpy()


def test_the_module_equals_hippynn(model):
    from tsmlip.core.calculator import load_calculator

    name, path = model
    atoms = crystal(NETWORKS[name][2])
    e, f, ae = plain(path, atoms)
    calc = load_calculator(path, device="cpu", atom_energies=True)
    atoms.calc = calc
    assert abs(e - atoms.get_potential_energy()) <= TOL_E_PER_ATOM * len(atoms)
    np.testing.assert_allclose(f, atoms.get_forces(), rtol=0, atol=TOL_F)
    np.testing.assert_allclose(ae, np.ravel(calc.results["atom_energies"]), rtol=0, atol=TOL_AE)
    assert np.abs(f).max() > 1e-2 and np.ptp(ae) > 1e-3  # not a comparison of zeros or of a constant


def test_export_is_the_module(model, tmp_path):
    from tsmlip.core.export import evaluate_atoms, export_model, load_exported

    name, path = model
    atoms = crystal(NETWORKS[name][2])
    e, f, ae, _ = evaluate_atoms(load_exported(export_model(path, tmp_path / "m.ts")), atoms)
    e0, f0, ae0 = plain(path, atoms)
    assert e == pytest.approx(e0, rel=1e-6)
    np.testing.assert_allclose(f, f0, **TIGHT)
    np.testing.assert_allclose(ae, ae0, **TIGHT)


def test_torchsim_is_the_module(tiny_cfg, tmp_path_factory):
    ts = pytest.importorskip("torch_sim", reason="torch-sim-atomistic is not installed (envs/deploy.txt)")
    from tsmlip.core.md.deployed import TorchSimEngine
    from tsmlip.core.torchsim import TsmlipModel

    path = _model(tmp_path_factory, tiny_cfg, "two-interactions")
    atoms = [crystal((13, 29)), crystal((13,))]
    out = TsmlipModel(path, device="cpu", per_atom_energies=True)(ts.io.atoms_to_state(atoms, "cpu", torch.float32))
    start = 0
    for k, a in enumerate(atoms):
        e0, f0, ae0 = plain(path, a)
        assert float(out["energy"][k]) == pytest.approx(e0, rel=1e-6)
        np.testing.assert_allclose(out["forces"][start:start + len(a)].numpy(), f0, **TIGHT)
        np.testing.assert_allclose(out["energies"][start:start + len(a)].numpy(), ae0, **TIGHT)
        start += len(a)
    engine = TorchSimEngine(path, atoms[0], "cpu", timestep_fs=1.0)  # the MD engine's force call at t = 0
    np.testing.assert_allclose(engine.forces(), plain(path, atoms[0])[1], **TIGHT)
    assert engine.potential_energy() == pytest.approx(plain(path, atoms[0])[0], rel=1e-6)


def _stack_batch(stack, atoms):
    """The slot batch of ``atoms`` for every model of ``stack`` (ASE's full pair list)."""
    from tsmlip.core.geometry import species_slots
    from tsmlip.core.hipnn_stack import SlotBatch

    M, n = stack.n_models, len(atoms)
    i, j, D, d = neighbor_list("ijDd", atoms, stack.dist_hard_max)
    slots = torch.as_tensor(species_slots(atoms.numbers[None], [13, 29])[0]).unsqueeze(0).expand(M, -1)
    first = torch.as_tensor(np.concatenate([i + m * n for m in range(M)]))
    second = torch.as_tensor(np.concatenate([j + m * n for m in range(M)]))
    dist = torch.as_tensor(np.tile(d, M), dtype=torch.float32)
    unit = torch.as_tensor(np.tile(D / d[:, None], (M, 1)), dtype=torch.float32)
    return SlotBatch.from_pairs(first, second, slots.reshape(-1)[second], dist, unit, first // n, slots,
                                stack.n_species, stack.dist_hard_max)


@pytest.mark.parametrize("kernels", ["torch", "cpp"])
@pytest.mark.parametrize("name", ["two-species", "one-block-no-resnet"])
def test_stacked_engine_is_the_module(tiny_cfg, tmp_path_factory, name, kernels):
    """The stacked engine's forward pass (two models of a stack, two species; its own pair terms, the module's
    per-atom math) and the stacked liquid's MD force call, against the module model by model."""
    from tsmlip.core import pair_kernels
    from tsmlip.core.md.stacked_forces import StackedForces, load_stack

    if kernels == "cpp" and not pair_kernels.use_cpp("auto", "cpu"):
        pytest.skip(f"the fused pair loops could not be built here: {pair_kernels._error}")
    paths = [_model(tmp_path_factory, tiny_cfg, name) for _ in range(2)]
    other = read_model_payload(paths[1])
    other["network_state"] = {k: v * 1.1 if isinstance(v, torch.Tensor) else v
                              for k, v in other["network_state"].items()}
    torch.save(other, paths[1])
    stack, payload = load_stack(paths)
    stack.pair_kernels = kernels
    atoms = crystal((13, 29))
    out = stack.forward(_stack_batch(stack, atoms), forces=True)
    F, E = StackedForces(stack, payload["species"], atoms.numbers, atoms.cell, skin=0.5)(
        torch.as_tensor(np.stack([atoms.positions] * 2)))
    for k, path in enumerate(paths):
        e0, f0, ae0 = plain(path, atoms)
        for e, f in ((out["E"][k, 0].detach(), out["F"][k]), (E[k], F[k])):
            assert float(e) == pytest.approx(e0, abs=TOL_E_PER_ATOM * len(atoms))
            np.testing.assert_allclose(f.detach().numpy(), f0, rtol=0, atol=TOL_F)
        np.testing.assert_allclose(out["atom_E"][k].detach().numpy(), ae0, rtol=0, atol=TOL_AE)
    assert not np.allclose(F[0].numpy(), F[1].numpy(), atol=1e-3)  # two models, not one twice


def _cfg(**overlay):
    return deep_merge(load_config(BASE_CONFIG, TEST_CONFIG), overlay)


@pytest.mark.parametrize("overlay, message", [
    ({"network": {"sensitivity_type": "linear"}},
     r"^config key 'network\.sensitivity_type': the fast training engine \(training\.engine: fast\) computes "
     r"'inverse' only \(got 'linear'\); set training\.engine: hippynn for this network$"),
    ({"network": {"n_interaction_layers": 2}, "training": {"engine": "hippynn"}},
     r"^config key 'network\.n_interaction_layers': the stacked liquid \(rdf\.stack: true\) computes 1 only"),
    ({"network": {"sensitivity_type": "linear"}, "training": {"engine": "hippynn"}, "rdf": {"stack": False},
      "md": {"engines": ["ase", "lammps"]}},
     r"^config key 'network\.sensitivity_type': the exported model \(md\.engines: lammps\) computes 'inverse' only"),
])
def test_unsupported_networks_are_refused_at_planning_in_one_line(overlay, message):
    with pytest.raises(ConfigError, match=message) as e:
        validate(_cfg(**overlay))
    assert "\n" not in str(e.value)


def test_what_each_layout_computes():
    """The plain module computes several interaction layers, which the stacked layout refuses; both compute either
    ResNet setting, neither other sensitivities. The same statement answers at planning and in each user."""
    net = _cfg()["network"]
    check_supported(dict(net, n_interaction_layers=2, resnet=False), "plain")
    check_supported(dict(net, resnet=False), "stacked")
    with pytest.raises(UnsupportedModel, match=r"^network\.n_interaction_layers: the stacked HIPNN computes 1 only"):
        check_supported(dict(net, n_interaction_layers=2), "stacked")
    for layout in ("plain", "stacked"):
        with pytest.raises(UnsupportedModel, match="network.sensitivity_type"):
            check_supported(dict(net, sensitivity_type="linear"), layout)
    validate(_cfg(network={"n_interaction_layers": 2, "resnet": False}, training={"engine": "hippynn"},
                  rdf={"stack": False}, md={"engines": ["ase", "torch", "lammps", "torchsim"]}))
