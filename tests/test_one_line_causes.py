"""Issue 36, item 4: one line per cause for the weak cases left: an HDF5 file with bytes overwritten mid-file (atoms
on top of each other), a copied SLURM profile missing its GPU rows, a full disk at planning."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import write_ani_al_h5
from tsmlip.data.dataset import DataError
from tsmlip.data.io import prepare


def _h5(path, n=8):
    """A pyanitools-layout file of ``n`` rattled 2x2x2 fcc Al cells (Hartree, gradients; ANI-Al's layout); returns
    the byte offset of its coordinates."""
    import h5py

    write_ani_al_h5(path, n, rattle=lambda seed: 0.02 + 0.02 * seed)
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


def _profile_without_gpu_rows(dest):
    """profiles/slurm copied with the GPU rows of its set-resources removed (the executor and the site's SLURM
    mapping kept)."""
    import shutil

    from conftest import ROOT

    shutil.copytree(ROOT / "profiles" / "slurm", dest)
    text = (dest / "config.yaml").read_text()
    (dest / "config.yaml").write_text(text[:text.index("set-resources:")])
    return dest


def test_a_copied_slurm_profile_missing_its_gpu_rows_is_refused_at_planning(tmp_path):
    import yaml

    from conftest import ROOT, TEST_CONFIG, run_snakemake
    from tsmlip.cluster import check_gpu_rows, missing_gpu_rows
    from tsmlip.config import load_config
    from tsmlip.ids import ConfigError

    table = load_config(ROOT / "config" / "config.yaml", TEST_CONFIG)["resources"]
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    rows = {r: set(v) for r, v in profile["set-resources"].items()}
    defaults = set(profile["default-resources"])
    check_gpu_rows(table, table, defaults, rows)  # the profile as shipped: every GPU rule has its row
    assert missing_gpu_rows(table, table, {}) == sorted(r for r, v in table.items() if v["gpu"] is True)
    with pytest.raises(ConfigError, match=r"the profile maps the jobs onto a cluster but gives the GPU rules .*train.* "
                                          r"no GPU .*planned with gpu=0 and run on CPU nodes"):
        check_gpu_rows(table, table, defaults, {})
    check_gpu_rows(table, table, {"mem_mb"}, {})  # a local run: the workflow's own gpu resource
    # the plan with the copied profile stops in one line instead of planning gpu=0
    copy = _profile_without_gpu_rows(tmp_path / "mysite")
    out = run_snakemake("-n", "--workflow-profile", str(copy), "--configfile", "config/test.yaml", "--config",
                        f"results_dir={tmp_path / 'results'}")
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "gives the GPU rules" in text and "gpu=0" in text, text[-3000:]
    assert "Traceback" not in text and not (tmp_path / "results").exists()


def test_a_results_folder_on_a_full_disk_is_refused_at_planning(tmp_path, monkeypatch):
    """Planning a run writes its lock and stamps into the results folder; on a full disk the first write ended in an
    OSError traceback out of an input function. common.smk checks the disk when it reads results_dir (measured on a
    full 512 KiB tmpfs: one line, 'config key 'results_dir': ... is on a full disk (0 KiB free ...')."""
    import collections
    import shutil

    from conftest import ROOT
    from tsmlip import io_utils

    io_utils.check_free_space(tmp_path / "results" / "not" / "yet", "config key 'results_dir'")  # a disk with room
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(1 << 30, 1 << 30, 4096))
    with pytest.raises(io_utils.OutputError, match=r"config key 'results_dir': .*results is on a full disk \(4 KiB "
                                                   r"free; .*free space there, or name a folder on another disk") as e:
        io_utils.check_free_space(tmp_path / "results", "config key 'results_dir'")
    assert "\n" not in str(e.value)
    assert "tsio.check_free_space(RESULTS" in (ROOT / "workflow" / "rules" / "common.smk").read_text()
