"""Issue 36, item 4: one line per cause for the weak cases left: an HDF5 file with bytes overwritten mid-file (atoms
on top of each other), a copied SLURM profile missing its GPU rows, a full disk at planning."""
from __future__ import annotations

import numpy as np
import pytest

from tsmlip.data.dataset import DataError
from tsmlip.data.io import prepare


def _h5(path, n=8):
    """A pyanitools-layout file of ``n`` rattled 2x2x2 fcc Al cells (Hartree, gradients; ANI-Al's layout)."""
    import h5py
    from ase.build import bulk
    from ase.calculators.emt import EMT

    configs = []
    for seed in range(n):
        at = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 2, 2))
        at.rattle(0.02 + 0.02 * seed, seed=seed)
        at.calc = EMT()
        configs.append((at.positions.copy(), at.get_potential_energy(), at.get_forces(), at.cell.array.copy()))
    with h5py.File(path, "w") as h5:
        g = h5.create_group("Al/group_0")
        g["coordinates"] = np.stack([c[0] for c in configs])
        g["species"] = np.array([b"Al"] * 32)
        g["cell"] = np.stack([c[3] for c in configs])
        g["energy"] = np.array([c[1] / 27.211386 for c in configs])
        g["force"] = np.stack([-c[2] / 27.211386 for c in configs])
    with h5py.File(path, "r") as h5:
        return h5["Al/group_0/coordinates"].id.get_offset()


def _overwrite(path, start, n_bytes):
    data = bytearray(path.read_bytes())
    data[start:start + n_bytes] = bytes(n_bytes)
    path.write_bytes(bytes(data))


def test_an_h5_file_with_bytes_overwritten_is_refused_naming_the_frames(tmp_path):
    """Bytes overwritten with zeros inside the coordinates of three configurations put two atoms of each at the
    origin: 0.000 A apart. ANI data keep close contacts by default (data.close_contacts: keep); these are no close
    contacts but damage, refused in one line naming the frames."""
    d = tmp_path / "ani"
    d.mkdir()
    offset = _h5(d / "a.h5")
    per_config = 32 * 3 * 8
    for c in (1, 3, 5):  # atoms 4 and 5 of configurations 1, 3 and 5
        _overwrite(d / "a.h5", offset + c * per_config + 4 * 24, 48)
    with pytest.raises(DataError, match=r"configuration 1 \(.*a\.h5:Al/group_0\[1\]\), 3 \(.*\[3\]\), 5 \(.*\[5\]\): "
                                        r"atoms 0\.000 A apart, less than 0\.1 x the element's nearest-neighbour "
                                        r"distance .*3 such configurations.*likely: atoms on top of each other: a "
                                        r"damaged file") as e:
        prepare("ani_h5", str(d), 1.6, 0.0)
    assert "\n" not in str(e.value)
    # a whole configuration overwritten: its atoms' median distance is off too; the element check names the damage
    _h5(d / "a.h5")
    _overwrite(d / "a.h5", offset + 2 * per_config, per_config)
    with pytest.raises(DataError, match=r"configuration 2 \(.*\[2\]\).*likely: atoms on top of each other"):
        prepare("ani_h5", str(d), 1.6, 0.0)
