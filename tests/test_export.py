"""The TorchScript export (tsmlip.core.export) against the ASE calculator (hippynn's graph) on the same weights:
energies, forces, per-atom energies and stress of a periodic Al cell, a strained triclinic cell (cut-off
longer than the cell: many images of one atom) and a two-species cell; the ghost-atom form LAMMPS uses
(explicit image atoms, energy of the local atoms only, ghost forces folded back) gives the same numbers; so does
compute_half on the half pair list (periodic, and LAMMPS's half list with ghost atoms). A committee export (several
model files in one) is the mean of its members' exports, gives their own forces for the deviation, equals the ASE
CommitteeCalculator, and refuses a member of another architecture in one line.

Tolerance (float32, as the models are trained): energy 2e-6 eV/atom, forces 2e-5 eV/A, per-atom energies
2e-5 eV, stress 1e-6 eV/A^3 (measured differences are ~10x smaller: summation order only)."""
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list

from tsmlip.ids import Arch
from tsmlip.core.export import evaluate_atoms, export_model, load_exported
from tsmlip.core.model import ModelFileError, build_model, save_model

TOL_E_PER_ATOM, TOL_F, TOL_AE, TOL_S = 2e-6, 2e-5, 2e-5, 1e-6


def fused_or_skip(kernels: str) -> None:
    """Skip, saying why, where the fused pair loops (kernels cpp) cannot be built."""
    from tsmlip.core import pair_kernels

    if kernels == "cpp" and not pair_kernels.use_cpp("auto", "cpu"):
        pytest.skip(f"the fused pair loops could not be built here: {pair_kernels._error}")


@pytest.fixture(scope="module", params=[(1, "torch"), (2, "torch"), (1, "cpp")],
                ids=["1-interaction", "2-interactions", "1-interaction-cpp"])
def models(request, tiny_cfg, tmp_path_factory):
    """(model.pt, exported module) of a random two-species (Al, Cu) model; nothing is trained; pair terms as torch
    operations or the fused loops (kernels cpp)."""
    n, kernels = request.param
    fused_or_skip(kernels)
    d = tmp_path_factory.mktemp(f"export{n}{kernels}")
    net = dict(tiny_cfg["network"], n_interaction_layers=n)
    save_model(build_model(Arch(12, 8, 2), net, seed=3 + n, species=(13, 29)), d / "model.pt")
    export_model(d / "model.pt", d / "model.ts", kernels=kernels)
    module = load_exported(d / "model.ts")
    assert module.kernels == ("tsmlip-ops" if kernels == "cpp" else "torch")
    return d / "model.pt", module


def al_cell():
    a = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 2, 2))
    a.rattle(0.1, seed=1)
    return a


def triclinic_cell():
    a = bulk("Al", "fcc", a=4.05)  # primitive cell: 1 atom, 2.86 A edges, triclinic
    a = a.repeat((2, 1, 1))
    strain = np.array([[1.03, 0.02, -0.01], [0.0, 0.97, 0.04], [0.0, 0.0, 1.05]])
    a.set_cell(a.cell.array @ strain, scale_atoms=True)
    a.rattle(0.05, seed=2)
    return a


def two_species_cell():
    a = bulk("Al", "fcc", a=4.0, cubic=True).repeat((2, 2, 1))
    a.numbers[::3] = 29
    a.rattle(0.1, seed=3)
    return a


STRUCTURES = {"al": al_cell, "triclinic": triclinic_cell, "two_species": two_species_cell}


def reference(model_path, atoms):
    from tsmlip.core.calculator import load_calculator

    calc = load_calculator(model_path, device="cpu", atom_energies=True)
    atoms = atoms.copy()
    atoms.calc = calc
    e, f = atoms.get_potential_energy(), atoms.get_forces()
    return e, f, np.ravel(calc.results["atom_energies"]), atoms.get_stress(voigt=False)


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_export_equals_calculator(models, name):
    model_path, module = models
    atoms = STRUCTURES[name]()
    e, f, ae, s = reference(model_path, atoms)
    e2, f2, ae2, s2 = evaluate_atoms(module, atoms)
    assert abs(e - e2) <= TOL_E_PER_ATOM * len(atoms)
    np.testing.assert_allclose(f2, f, rtol=0, atol=TOL_F)
    np.testing.assert_allclose(ae2, ae, rtol=0, atol=TOL_AE)
    np.testing.assert_allclose(s2, s, rtol=0, atol=TOL_S)
    assert np.abs(f).max() > 1e-2  # the comparison is not between zeros


def with_ghosts(atoms, shell):
    """``atoms`` followed by every periodic image atom within ``shell`` of the cell (explicit ghosts):
    positions, atomic numbers and the index of each atom's owner in ``atoms``."""
    frac = atoms.get_scaled_positions(wrap=False)
    cell = atoms.cell.array
    heights = atoms.cell.volume / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    reach = np.ceil(shell / heights).astype(int)
    pos, num, own = [atoms.positions], [atoms.numbers], [np.arange(len(atoms))]
    for n in np.ndindex(*(2 * reach + 1)):
        img = np.array(n) - reach
        if not img.any():
            continue
        f = frac + img
        # fractional distance outside [0, 1) times the height: a lower bound of the Cartesian distance
        out = np.maximum(np.maximum(-f, f - 1), 0) * heights
        keep = np.linalg.norm(out, axis=1) <= shell
        pos.append((f @ cell)[keep])
        num.append(atoms.numbers[keep])
        own.append(np.flatnonzero(keep))
    return np.concatenate(pos), np.concatenate(num), np.concatenate(own)


def test_ghost_atoms_give_the_periodic_result(models):
    """LAMMPS's form: local + ghost atoms, zero shifts, energy of the local atoms, ghost forces added to
    their owners; with a ghost shell of n_interactions x cut-off this equals the periodic calculation."""
    model_path, module = models
    atoms = two_species_cell()
    n = len(atoms)
    pos, num, owner = with_ghosts(atoms, module.n_interactions * module.cutoff + 0.1)
    cloud = Atoms(numbers=num, positions=pos, pbc=False)
    i, j = neighbor_list("ij", cloud, module.cutoff)
    t = torch.as_tensor
    e, ae, f, w, aw = module.compute(t(pos, dtype=torch.float32), t(num), t(i), t(j), torch.zeros(len(i), 3),
                                     n, True)
    e_ref, f_ref, ae_ref, s_ref = reference(model_path, atoms)
    assert abs(float(e) - e_ref) <= TOL_E_PER_ATOM * n
    np.testing.assert_allclose(ae[:n].numpy(), ae_ref, rtol=0, atol=TOL_AE)
    # each ghost's force goes to its owner (LAMMPS: reverse communication with newton on)
    folded = np.zeros((n, 3))
    np.add.at(folded, owner, f.numpy())
    np.testing.assert_allclose(folded, f_ref, rtol=0, atol=TOL_F)
    # virial sum_i r_i f_i over local + ghost atoms (LAMMPS's fdotr) = the pair virial = -stress * volume
    fdotr = pos.T @ f.numpy().astype(np.float64)
    np.testing.assert_allclose(fdotr, w.numpy(), rtol=0, atol=2e-4)
    np.testing.assert_allclose(-w.numpy() / atoms.get_volume(), s_ref, rtol=0, atol=TOL_S)
    # per-atom virial (Voigt xx yy zz xy xz yz) sums to the virial
    np.testing.assert_allclose(aw.sum(0).numpy(), w.numpy()[[0, 1, 2, 0, 0, 1], [0, 1, 2, 1, 2, 2]], atol=1e-4)


def test_forward_is_atom_energies(models):
    _, module = models
    atoms = al_cell()
    i, j, S = neighbor_list("ijS", atoms, module.cutoff)
    t = torch.as_tensor
    args = (t(atoms.positions, dtype=torch.float32), t(atoms.numbers), t(i), t(j),
            t(S @ atoms.cell.array, dtype=torch.float32))
    ae = module(*args, len(atoms))
    assert ae.shape == (len(atoms),)
    np.testing.assert_allclose(ae.detach().numpy(), module.compute(*args, len(atoms), False)[1].numpy(), atol=1e-6)


def test_unknown_species_and_foreign_files_refused(models, tmp_path):
    _, module = models
    atoms = al_cell()
    atoms.numbers[0] = 26
    with pytest.raises(Exception, match="species outside"):
        evaluate_atoms(module, atoms)
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(tmp_path / "other.ts"))
    with pytest.raises(ModelFileError, match="not an exported tsmlip model"):
        load_exported(tmp_path / "other.ts")


def test_export_command(models, tmp_path):
    from tsmlip.cli import main

    model_path, module = models
    assert main(["export", "--model", str(model_path), "--output", str(tmp_path / "m.ts")]) == 0
    again = load_exported(tmp_path / "m.ts")
    atoms = triclinic_cell()
    assert evaluate_atoms(again, atoms)[0] == pytest.approx(evaluate_atoms(module, atoms)[0], abs=1e-6)
    assert main(["export", "--model", str(tmp_path / "missing.pt"), "--output", str(tmp_path / "x.ts")]) != 0


def test_fused_export_equals_torch_export_and_falls_back(tiny_cfg, tmp_path):
    """kernels cpp against kernels torch on the same weights (float32 rounding; energies of the same per-atom
    network); in float64 the fused file runs its torch path; a model with two interaction layers is refused by cpp
    and exported with the torch path by auto."""
    fused_or_skip("cpp")
    net = dict(tiny_cfg["network"], n_interaction_layers=1)
    save_model(build_model(Arch(8, 4, 1), net, seed=11, species=(13, 29)), tmp_path / "model.pt")
    plain = load_exported(export_model(tmp_path / "model.pt", tmp_path / "t.ts", kernels="torch"))
    fused = load_exported(export_model(tmp_path / "model.pt", tmp_path / "c.ts", kernels="cpp"))
    atoms = two_species_cell()
    i, j, S = neighbor_list("ijS", atoms, plain.cutoff)
    t = torch.as_tensor
    args = (t(atoms.positions, dtype=torch.float32), t(atoms.numbers), t(i), t(j),
            t(S @ atoms.cell.array, dtype=torch.float32), len(atoms), True)
    for a, b, tol in zip(plain.compute(*args), fused.compute(*args), (1e-5, 1e-6, 2e-5, 1e-4, 1e-5)):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=0, atol=tol)
    as64 = [x.double() if x.is_floating_point() else x for x in args[:5]]
    e64 = fused.double().compute(*as64, len(atoms), False)[0]  # the torch path of the same file
    assert abs(float(e64) - float(plain.compute(*args)[0])) < 1e-4
    save_model(build_model(Arch(8, 4, 1), dict(net, n_interaction_layers=2), seed=12, species=(13, 29)),
               tmp_path / "two.pt")
    with pytest.raises(ModelFileError, match="one interaction layer"):
        export_model(tmp_path / "two.pt", tmp_path / "two.ts", kernels="cpp")
    assert load_exported(export_model(tmp_path / "two.pt", tmp_path / "two.ts")).kernels == "torch"


def half_list(i, j, S):
    """The half pair list of a full periodic one (compute_half's form with every atom local): each pair once, i < j,
    or an atom and its own image with the shift's first non-zero component positive."""
    first_nonzero = np.take_along_axis(S, np.argmax(S != 0, axis=1)[:, None], axis=1)[:, 0]
    keep = (i < j) | ((i == j) & (first_nonzero > 0))
    return i[keep], j[keep], S[keep]


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_half_list_equals_full_list(models, name):
    """compute_half on the half list = compute on the full list: energy, atom energies, forces, virial and the
    per-atom virial (half of each pair's term to each atom in both), periodic and triclinic cells, an atom and its
    own images (the triclinic cell is shorter than the cut-off); the half list has half the pairs."""
    _, module = models
    atoms = STRUCTURES[name]()
    i, j, S = neighbor_list("ijS", atoms, module.cutoff)
    hi, hj, hS = half_list(i, j, S)
    assert 2 * len(hi) == len(i)
    t = torch.as_tensor
    pos, num, n = t(atoms.positions, dtype=torch.float32), t(atoms.numbers), len(atoms)
    full = module.compute(pos, num, t(i), t(j), t(S @ atoms.cell.array, dtype=torch.float32), n, True)
    half = module.compute_half(pos, num, t(hi), t(hj), t(hS @ atoms.cell.array, dtype=torch.float32), n, True)
    for a, b, tol in zip(full, half, (TOL_E_PER_ATOM * n, TOL_AE, TOL_F, 1e-4, 2e-5)):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=0, atol=tol)
    assert np.abs(full[2].numpy()).max() > 1e-2


def test_half_list_with_ghost_atoms(models):
    """LAMMPS's half list (newton off) on local + ghost atoms: each local pair once, each local-ghost pair once from
    the local side, no ghost-ghost pairs; with the ghosts' forces folded to their owners this is the periodic
    result (energy, atom energies, forces, virial, per-atom virial's sum). One interaction layer."""
    model_path, module = models
    if module.n_interactions != 1:
        pytest.skip("the half list is for one interaction layer (the ghosts' environments are not built)")
    atoms = two_species_cell()
    n = len(atoms)
    pos, num, owner = with_ghosts(atoms, module.cutoff + 0.1)
    i, j = neighbor_list("ij", Atoms(numbers=num, positions=pos, pbc=False), module.cutoff)
    keep = (i < n) & ((j >= n) | (i < j))
    t = torch.as_tensor
    e, ae, f, w, aw = module.compute_half(t(pos, dtype=torch.float32), t(num), t(i[keep]), t(j[keep]),
                                          torch.zeros(0, 3), n, True)
    e_ref, f_ref, ae_ref, s_ref = reference(model_path, atoms)
    assert abs(float(e) - e_ref) <= TOL_E_PER_ATOM * n
    np.testing.assert_allclose(ae[:n].numpy(), ae_ref, rtol=0, atol=TOL_AE)
    folded = np.zeros((n, 3))
    np.add.at(folded, owner, f.numpy())
    np.testing.assert_allclose(folded, f_ref, rtol=0, atol=TOL_F)
    np.testing.assert_allclose(pos.T @ f.numpy().astype(np.float64), w.numpy(), rtol=0, atol=2e-4)
    np.testing.assert_allclose(-w.numpy() / atoms.get_volume(), s_ref, rtol=0, atol=TOL_S)
    np.testing.assert_allclose(aw.sum(0).numpy(), w.numpy()[[0, 1, 2, 0, 0, 1], [0, 1, 2, 1, 2, 2]], atol=1e-4)
    if module.kernels == "tsmlip-ops":
        assert not ae[n:].any()  # the ghosts' energies are their owners' (computed there)
        with pytest.raises(Exception, match="ghost"):  # a ghost first: not a half list of this form
            module.compute_half(t(pos, dtype=torch.float32), t(num), t(j[keep]), t(i[keep]), torch.zeros(0, 3), n,
                                False)


# --- a committee in one file (tsmlip export --model a.pt b.pt ...) ------------------------------------------------
@pytest.fixture(scope="module", params=[(1, "torch"), (2, "torch"), (1, "cpp")],
                ids=["1-interaction", "2-interactions", "1-interaction-cpp"])
def committee(request, tiny_cfg, tmp_path_factory):
    """(member model.pt paths, each member's own export, the committee's export) of three random two-species models
    of one architecture (different seeds), exported with the same pair terms."""
    from tsmlip.core.export import export_committee

    n, kernels = request.param
    fused_or_skip(kernels)
    d = tmp_path_factory.mktemp(f"committee{n}{kernels}")
    net = dict(tiny_cfg["network"], n_interaction_layers=n)
    paths = []
    for seed in (41, 42, 43):
        save_model(build_model(Arch(12, 8, 2), net, seed=seed, species=(13, 29)), d / f"seed{seed}.pt")
        paths.append(d / f"seed{seed}.pt")
    members = [load_exported(export_model(p, p.with_suffix(".ts"), kernels=kernels)) for p in paths]
    module = load_exported(export_committee(paths, d / "committee.ts", kernels=kernels))
    assert module.n_members == 3 and module.kernels == members[0].kernels
    return paths, members, module


@pytest.mark.parametrize("half", [False, True], ids=["full-list", "half-list"])
def test_committee_is_the_members_mean(committee, half):
    """compute / compute_half of the committee file = the mean of its members' own exports (energy, atom energies,
    forces, virial, per-atom virial: float32 rounding); compute_committee's member energies and forces are the
    members' own, and the deviation computed from them is force_deviation of the members' forces."""
    from tsmlip.core.committee import force_deviation

    _, members, module = committee
    atoms = two_species_cell()
    i, j, S = neighbor_list("ijS", atoms, module.cutoff)
    if half:
        i, j, S = half_list(i, j, S)
    t = torch.as_tensor
    n = len(atoms)
    args = (t(atoms.positions, dtype=torch.float32), t(atoms.numbers), t(i), t(j),
            t(S @ atoms.cell.array, dtype=torch.float32), n, True)
    method = "compute_half" if half else "compute"
    own = [getattr(m, method)(*args) for m in members]
    mean = [torch.stack([o[k] for o in own]).mean(0) for k in range(5)]
    for got, want, tol in zip(getattr(module, method)(*args), mean, (TOL_E_PER_ATOM * n, TOL_AE, TOL_F, 1e-4, 2e-5)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=tol)
    e, ae, f, w, aw, member_e, member_f = module.compute_committee(*args, half)
    np.testing.assert_allclose(f.numpy(), mean[2].numpy(), rtol=0, atol=TOL_F)
    np.testing.assert_allclose(member_e.numpy(), [float(o[0]) for o in own], rtol=0, atol=TOL_E_PER_ATOM * n)
    own_f = np.stack([o[2].numpy() for o in own])
    np.testing.assert_allclose(member_f.numpy(), own_f, rtol=0, atol=TOL_F)
    dev = force_deviation(member_f.numpy())
    np.testing.assert_allclose(dev, force_deviation(own_f), rtol=0, atol=TOL_F)
    assert dev.min() > 1e-3  # the members differ: the comparison is not between zeros
    if not half:  # forward: the atom energies from a full list
        np.testing.assert_allclose(module(*args[:6]).detach().numpy(), mean[1].numpy(), rtol=0, atol=TOL_AE)


def test_committee_equals_the_ase_committee(committee):
    """The committee file against the ASE CommitteeCalculator (tsmlip.core.committee: the fast engine's stacked
    forward) on the same model files: mean energy and forces, the per-atom force deviation, its max and mean."""
    from tsmlip.core.committee import force_deviation, load_committee

    paths, _, module = committee
    if module.n_interactions != 1:
        pytest.skip("the ASE committee (the stacked layout) computes one interaction layer")
    atoms = al_cell()
    atoms.numbers[::3] = 29
    i, j, S = neighbor_list("ijS", atoms, module.cutoff)
    t = torch.as_tensor
    e, _, f, _, _, _, member_f = module.compute_committee(
        t(atoms.positions, dtype=torch.float32), t(atoms.numbers), t(i), t(j),
        t(S @ atoms.cell.array, dtype=torch.float32), len(atoms), False, False)
    ref = atoms.copy()
    ref.calc = load_committee(paths)
    assert float(e) == pytest.approx(ref.get_potential_energy(), abs=TOL_E_PER_ATOM * len(atoms))
    np.testing.assert_allclose(f.numpy(), ref.get_forces(), rtol=0, atol=TOL_F)
    dev = force_deviation(member_f.numpy())
    np.testing.assert_allclose(dev, ref.calc.results["force_deviation"], rtol=0, atol=TOL_F)
    assert dev.max() == pytest.approx(ref.calc.results["max_force_deviation"], abs=TOL_F)
    assert dev.mean() == pytest.approx(ref.calc.results["mean_force_deviation"], abs=TOL_F)


def test_committee_command_and_other_architectures_refused(committee, tiny_cfg, tmp_path, capsys):
    """tsmlip export with several --model writes the committee (both spellings); a member of another architecture
    is refused in one line naming it and what differs; one model is the single-model file (no n_members)."""
    from tsmlip.cli import main
    from tsmlip.core.export import export_committee

    paths, _, module = committee
    p = [str(x) for x in paths]
    assert main(["export", "--model", *p, "--output", str(tmp_path / "c.ts")]) == 0
    assert "a committee of 3" in capsys.readouterr().out
    assert main(["export", "--model", p[0], "--model", p[1], "--output", str(tmp_path / "c2.ts")]) == 0
    again = load_exported(tmp_path / "c.ts")
    assert again.n_members == 3 and load_exported(tmp_path / "c2.ts").n_members == 2
    atoms = triclinic_cell()
    assert evaluate_atoms(again, atoms)[0] == pytest.approx(evaluate_atoms(module, atoms)[0], abs=1e-5)
    assert main(["export", "--model", p[0], "--output", str(tmp_path / "one.ts")]) == 0
    assert not hasattr(load_exported(tmp_path / "one.ts"), "n_members")

    net = dict(tiny_cfg["network"], n_interaction_layers=module.n_interactions)
    save_model(build_model(Arch(8, 8, 2), net, seed=5, species=(13, 29)), tmp_path / "narrow.pt")
    with pytest.raises(ModelFileError, match="narrow.pt: its arch .* differs from .*: a committee holds models of "
                                             "one architecture"):
        export_committee([p[0], tmp_path / "narrow.pt"], tmp_path / "x.ts")
    capsys.readouterr()
    assert main(["export", "--model", p[0], str(tmp_path / "narrow.pt"), "--output", str(tmp_path / "x.ts")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "differs from" in err and not (tmp_path / "x.ts").exists()
