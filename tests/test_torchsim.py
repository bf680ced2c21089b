"""The TorchSim model interface (tsmlip.core.torchsim): a batch of three systems of different sizes in one call
equals the ASE calculator system by system; NVE through torch_sim follows ASE's velocity Verlet trajectory
and conserves energy; Langevin NVT runs and heats a cold system towards its target."""
import numpy as np
import pytest
import torch
from ase import units
from ase.build import bulk

ts = pytest.importorskip("torch_sim", reason="torch-sim-atomistic is not installed (envs/deploy.txt)")

from tsmlip.ids import Arch  # noqa: E402
from tsmlip.core.model import build_model, save_model  # noqa: E402
from tsmlip.core.torchsim import TsmlipModel  # noqa: E402


@pytest.fixture(scope="module")
def model_path(tiny_cfg, tmp_path_factory):
    p = tmp_path_factory.mktemp("torchsim") / "model.pt"
    net = dict(tiny_cfg["network"], n_interaction_layers=2)
    save_model(build_model(Arch(12, 8, 2), net, seed=11, species=(13, 29)), p)
    return p


def systems():
    a = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 2, 2))
    a.rattle(0.08, seed=1)
    b = bulk("Al", "fcc", a=4.05).repeat((2, 2, 1))          # triclinic, 4 atoms
    b.rattle(0.05, seed=2)
    c = bulk("Al", "fcc", a=4.0, cubic=True).repeat((3, 2, 1))
    c.numbers[::4] = 29
    c.rattle(0.08, seed=3)
    return [a, b, c]


def test_batch_of_three_sizes_equals_calculator(model_path):
    from tsmlip.core.calculator import load_calculator

    model = TsmlipModel(model_path, device="cpu")
    atoms = systems()
    state = ts.io.atoms_to_state(atoms, model.device, model.dtype)
    out = model(state)
    assert out["energy"].shape == (3,) and out["forces"].shape == (sum(map(len, atoms)), 3)
    start = 0
    for k, a in enumerate(atoms):
        a = a.copy()
        a.calc = load_calculator(model_path, device="cpu")
        assert float(out["energy"][k]) == pytest.approx(a.get_potential_energy(), abs=2e-6 * len(a))
        np.testing.assert_allclose(out["forces"][start:start + len(a)].numpy(), a.get_forces(), atol=2e-5)
        np.testing.assert_allclose(out["stress"][k].numpy(), a.get_stress(voigt=False), atol=1e-6)
        start += len(a)


def test_exported_file_is_accepted(model_path, tmp_path):
    from tsmlip.core.export import export_model

    export_model(model_path, tmp_path / "m.ts")
    state = ts.io.atoms_to_state(systems(), "cpu", torch.float32)
    a, b = TsmlipModel(model_path, device="cpu")(state), TsmlipModel(tmp_path / "m.ts", device="cpu")(state)
    torch.testing.assert_close(a["energy"], b["energy"])


def test_nve_follows_ase_and_conserves_energy(model_path):
    from ase.md.verlet import VelocityVerlet
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    from tsmlip.core.calculator import load_calculator

    atoms = systems()[0]
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    Stationary(atoms)
    ref = atoms.copy()
    ref.calc = load_calculator(model_path, device="cpu")
    e0_ref = ref.get_total_energy()
    dt, steps = 1.0 * units.fs, 40
    VelocityVerlet(ref, timestep=dt).run(steps)

    model = TsmlipModel(model_path, device="cpu", dtype=torch.float64)
    state = ts.io.atoms_to_state([atoms], "cpu", torch.float64)
    init, update = ts.integrators.nve(model, dt=torch.tensor(dt, dtype=torch.float64),
                                      kT=torch.tensor(300 * units.kB, dtype=torch.float64))
    md = init(state)
    md.momenta = torch.as_tensor(atoms.get_momenta(), dtype=torch.float64)  # the same start as ASE
    md.energy = model(md)["energy"]

    def total(s):
        return float(s.energy.sum() + (s.momenta ** 2 / (2 * s.masses.unsqueeze(1))).sum())

    e0 = total(md)
    assert e0 == pytest.approx(e0_ref, abs=1e-3)
    for _ in range(steps):
        md = update(md, dt=torch.tensor(dt, dtype=torch.float64))
    frac = (md.positions.numpy() - ref.positions) @ np.linalg.inv(ref.cell.array)  # torch_sim wraps atoms
    np.testing.assert_allclose((frac - np.round(frac)) @ ref.cell.array, 0, atol=1e-4)
    assert abs(total(md) - e0) < 2e-3 * len(atoms)


def test_langevin_nvt_heats_towards_target(model_path):
    model = TsmlipModel(model_path, device="cpu")
    state = ts.io.atoms_to_state(systems(), "cpu", torch.float32)
    kT = torch.tensor(600 * units.kB)
    init, update = ts.integrators.nvt_langevin(model, dt=torch.tensor(2 * units.fs), kT=kT,
                                               gamma=torch.tensor(0.05 / units.fs), seed=0)
    md = init(state, kT=torch.tensor(1.0 * units.kB), seed=0)
    for _ in range(60):
        md = update(md, kT=kT)
    temp = ts.quantities.calc_kT(masses=md.masses, momenta=md.momenta, system_idx=md.system_idx) / units.kB
    assert torch.isfinite(md.positions).all()
    assert (temp > 150).all() and (temp < 3000).all(), temp


def test_committee_is_the_members_mean_and_their_spread(tiny_cfg, tmp_path):
    """The TorchSim committee's energy, forces and stress are the means of its members' own TorchSim outputs, its
    force deviation the members' spread computed by hand (DeePMD's definition), its max and mean per system those
    of that spread; integrators run on it."""
    from tsmlip.core.torchsim import TsmlipCommittee

    net = dict(tiny_cfg["network"])
    paths = []
    for seed in (1, 2, 3):
        paths.append(tmp_path / f"m{seed}.pt")
        save_model(build_model(Arch(6, 6, 1), net, seed=seed, species=(13, 29)), paths[-1])
    atoms = systems()
    state = ts.io.atoms_to_state(atoms, "cpu", torch.float32)
    committee = TsmlipCommittee(paths, device="cpu")
    out = committee(state)
    members = [TsmlipModel(p, device="cpu")(state) for p in paths]
    for key in ("energy", "forces", "stress"):
        torch.testing.assert_close(out[key], torch.stack([m[key] for m in members]).mean(0), rtol=1e-6, atol=1e-6)
    F = np.stack([m["forces"].numpy().astype(np.float64) for m in members])
    by_hand = np.sqrt(np.mean([np.sum((f - F.mean(0)) ** 2, axis=1) for f in F], axis=0))
    np.testing.assert_allclose(out["force_deviation"].numpy(), by_hand, rtol=1e-5, atol=1e-7)
    assert float(out["force_deviation"].min()) > 0  # other seeds, other forces
    start = 0
    for k, a in enumerate(atoms):
        part = by_hand[start:start + len(a)]
        assert float(out["max_force_deviation"][k]) == pytest.approx(part.max(), rel=1e-5)
        assert float(out["mean_force_deviation"][k]) == pytest.approx(part.mean(), rel=1e-5)
        start += len(a)
    with pytest.raises(ValueError, match="two models or more"):
        TsmlipCommittee(paths[:1], device="cpu")
    state = ts.io.atoms_to_state(systems()[:1], "cpu", torch.float32)
    init, update = ts.integrators.nve(committee, dt=torch.tensor(1.0 * units.fs), kT=torch.tensor(300 * units.kB))
    md = init(state)
    for _ in range(3):
        md = update(md, dt=torch.tensor(1.0 * units.fs))
    assert torch.isfinite(md.positions).all()
