"""Issue 36: a plan that writes nothing and refuses a folder another checkout holds, lists whose order means
nothing, and one line per cause at planning for values that used to plan and fail later with a traceback."""
import json
import os

import pytest

from conftest import BASE_CONFIG, TEST_CONFIG, run_snakemake
from tsmlip.config import canonical, check_config_files, check_results_dir, deep_merge, load_config, validate
from tsmlip.ids import ConfigError


def _cfg(**overlay):
    return deep_merge(load_config(BASE_CONFIG, TEST_CONFIG), overlay)


@pytest.mark.parametrize("overlay, message", [
    ({"training": {"learning_rate": float("nan")}}, r"'training\.learning_rate': nan is not a finite number"),
    ({"training": {"learning_rate": float("inf")}}, r"'training\.learning_rate': inf is not a finite number"),
    ({"split": {"seed": -1}}, r"'split\.seed': -1 is less than the minimum of 0"),
    ({"split": {"seed": 1.0}}, r"'split\.seed': 1\.0 is not of type 'integer'"),
    ({"training": {"max_epochs": True}}, r"'training\.max_epochs'"),
    ({"network": {"n_interaction_layers": 2}}, r"'network\.n_interaction_layers': the fast training engine"),
])
def test_weak_values_are_refused_at_planning_in_one_line(overlay, message):
    with pytest.raises(ConfigError, match=message) as e:
        validate(_cfg(**overlay))
    assert "\n" not in str(e.value)
    if "n_interaction_layers" in message:  # the hippynn engine computes it (the stacked liquid does not)
        validate(_cfg(**overlay, training={"engine": "hippynn"}, rdf={"stack": False}))


def test_a_key_given_twice_in_an_overlay_is_refused(tmp_path):
    overlay = tmp_path / "twice.yaml"
    overlay.write_text("training:\n  learning_rate: 0.01\n  batch_size: 4\n  learning_rate: 0.02\n")
    with pytest.raises(ConfigError, match=r"twice.yaml: line 4: the key 'learning_rate' is given twice .*line 2"):
        load_config(BASE_CONFIG, TEST_CONFIG, overlay)
    with pytest.raises(ConfigError, match="given twice"):
        check_config_files([BASE_CONFIG, overlay])
    check_config_files([BASE_CONFIG, TEST_CONFIG])


def test_results_dir_naming_a_file_is_refused(tmp_path):
    f = tmp_path / "results"
    f.write_text("")
    with pytest.raises(ConfigError, match=r"'results_dir': .* is a file, not a folder"):
        check_results_dir(_cfg(results_dir=str(f)))
    check_results_dir(_cfg(results_dir=str(tmp_path / "new")))


def test_seed_order_means_nothing():
    a, b = _cfg(sweep={"seeds": [2, 1]}), _cfg(sweep={"seeds": [1, 2]})
    assert canonical(validate(a)) == canonical(validate(b))
    from tsmlip.model_ids import all_model_ids
    assert all_model_ids(a) == all_model_ids(b)


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_a_dry_run_writes_nothing_and_a_held_folder_is_not_touched(tmp_path):
    """`snakemake -n` on a results folder writes nothing into it (the provenance stamps of the plan go to a scratch
    folder), and plans the same jobs; a real run against a folder whose lock a live run of another checkout holds
    stops before it writes a stamp."""
    results = tmp_path / "results"
    results.mkdir()
    base = ["--configfile", "config/test.yaml", "--config", f"results_dir={results}", "--",
            str(results / "data" / "split.npz")]
    plan = run_snakemake("-n", *base)
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "split" in plan.stdout + plan.stderr
    assert _files(results) == [], _files(results)
    # another checkout's live run holds the folder (this test's own process, another checkout)
    lock = results / ".tsmlip-run.lock"
    import socket
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": "now",
                                "checkout": "/elsewhere"}))
    run = run_snakemake("--cores", "1", *base)
    assert run.returncode != 0
    assert "in use by a running workflow" in run.stdout + run.stderr
    assert _files(results) == [".tsmlip-run.lock"], _files(results)


def test_a_hand_edited_json_record_is_refused(tmp_path):
    """A JSON output written with its record holds its own content hash (``output_content``): a halved RMSE typed
    into a metrics.json (here a split.json, the same writer) is refused by the consumers' check in one line."""
    from tsmlip import provenance
    from tsmlip.records import SplitInfo

    p = tmp_path / "split.json"
    SplitInfo(train=8, valid=2, test=2, seed=1, dataset_sha256_16="0" * 16).with_provenance(
        provenance.record("split", {"split": {"seed": 1}}, {})).write(p)
    provenance.check_file(p)
    obj = json.loads(p.read_text())
    obj["train"] = 4
    p.write_text(json.dumps(obj, indent=1))
    with pytest.raises(provenance.ProvenanceError, match=r"split\.json was changed after its step wrote it \(content "
                                                         r"\w+, its record says \w+\)") as e:
        provenance.check_file(p)
    assert "\n" not in str(e.value)


def test_the_calculator_refuses_atoms_of_another_element(tmp_path, tiny_cfg):
    """The deployment check: an aluminum model given copper atoms stops with one message naming both elements (it
    ended in a hippynn IndexError)."""
    from ase.build import bulk

    from tsmlip.ids import Arch
    from tsmlip.core.calculator import load_calculator
    from tsmlip.core.model import build_model, save_model

    save_model(build_model(Arch(4, 4, 1), tiny_cfg["network"], seed=0), tmp_path / "model.pt")
    calc = load_calculator(tmp_path / "model.pt", device="cpu")
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.calc = calc
    with pytest.raises(ValueError, match=r"model\.pt: the model knows Al only; the atoms hold Cu: a model of another "
                                         r"element"):
        atoms.get_potential_energy()
    al = bulk("Al", "fcc", a=4.05, cubic=True)
    al.calc = calc
    assert abs(al.get_potential_energy()) < 1e6


def test_torch_threads_is_not_a_setting_of_any_result(tmp_path):
    """training.torch_threads reaches training as --threads, not inside its settings: the planned jobs of two
    thread counts have the same --config-json (params) and stamps, so a change reruns nothing."""
    import re

    results = tmp_path / "results"
    plans = {}
    for n in (1, 2):
        overlay = tmp_path / f"threads{n}.yaml"
        overlay.write_text(f"training: {{torch_threads: {n}}}\n")
        target = results / "models/teacher/w12-s8-l2/seed0/metrics.json"
        out = run_snakemake("-n", "-p", "--cores", "2", "--configfile", "config/test.yaml", str(overlay), "--config",
                            f"results_dir={results}", "--", str(target))
        assert out.returncode == 0, out.stderr[-3000:]
        text = out.stdout + out.stderr
        cmds = re.findall(r"tsmlip train-stack --config-json (.*) --threads (\d+) ", text)
        assert cmds, text[-3000:]
        plans[n] = cmds
    assert [c for c, _ in plans[1]] == [c for c, _ in plans[2]]
    assert "torch_threads" not in plans[1][0][0]
    assert {t for _, t in plans[1]} == {"1"} and {t for _, t in plans[2]} == {"2"}
    assert not results.exists() or not any(results.rglob("*"))  # and the dry runs wrote nothing


def _jobs(proc) -> str:
    return proc.stdout + proc.stderr


def test_outputs_from_the_future_do_not_pass_a_changed_setting_and_a_copy_reruns_nothing(tmp_path):
    """Every file of a results folder touched two hours into the future (a clock skew, a restored copy) and then
    a changed split seed: the dry run and the run plan the split again (the planned stamp of the new setting
    would be older than the outputs; the run moves every file's time back first, order kept), and the next run has
    nothing to do (no loop). A copy of the folder's visible contents (`cp -a results/* copy/`) carries the
    stamps: nothing reruns there."""
    import shutil
    import subprocess
    import time

    results = tmp_path / "results"

    def snake(*args, seed=None):
        where = tmp_path / "copy" if args and args[0] == "copy" else results
        args = args[1:] if args and args[0] == "copy" else args
        overlay = tmp_path / f"overlay-{where.name}-{seed}.yaml"
        overlay.write_text(f"results_dir: {where}\n" + (f"split: {{seed: {seed}}}\n" if seed is not None else ""))
        return run_snakemake(*args, "--configfile", "config/test.yaml", str(overlay), "--",
                             str(where / "data" / "split.npz"))

    first = snake("--cores", "1")
    assert first.returncode == 0, _jobs(first)[-3000:]
    later = time.time() + 7200
    for p in results.rglob("*"):
        if p.is_file():
            os.utime(p, (later, later))
    plan = snake("-n", seed=12345)
    assert plan.returncode == 0 and "rule split:" in _jobs(plan), _jobs(plan)[-3000:]
    run = snake("--cores", "1", seed=12345)
    assert run.returncode == 0 and "rule split:" in _jobs(run), _jobs(run)[-3000:]
    assert "in the future" in _jobs(run) and "order kept" in _jobs(run)
    assert max(p.stat().st_mtime for p in results.rglob("*") if p.is_file()) <= time.time() + 2
    again = snake("--cores", "1", seed=12345)
    assert again.returncode == 0 and "Nothing to be done" in _jobs(again), _jobs(again)[-3000:]

    (tmp_path / "copy").mkdir()
    subprocess.run(f"cp -a {results}/* {tmp_path / 'copy'}/", shell=True, check=True)
    assert (tmp_path / "copy" / "stamps").is_dir()
    copied = snake("copy", "--cores", "1", seed=12345)
    assert copied.returncode == 0 and "Nothing to be done" in _jobs(copied), _jobs(copied)[-3000:]
    shutil.rmtree(tmp_path / "copy")


def test_shift_future_times_keeps_the_order(tmp_path):
    from tsmlip import provenance

    now = 1_000_000.0
    for i, name in enumerate(("a", "b", "c")):
        p = tmp_path / name
        p.write_text(name)
        os.utime(p, (now + 100 * i, now + 100 * i))
    assert provenance.shift_future_times(tmp_path, now=now + 1000) == 0.0  # nothing in the future
    shift = provenance.shift_future_times(tmp_path, now=now)
    assert shift == pytest.approx(201.0)
    times = [(tmp_path / n).stat().st_mtime for n in "abc"]
    assert times == sorted(times) and times[-1] == pytest.approx(now - 1.0)
    assert provenance.plan_stamp_time(tmp_path, now=now) == pytest.approx(now)


def test_a_stamp_of_the_old_hidden_folder_is_moved_with_its_time(tmp_path):
    """A results folder of an older version keeps its stamps in `.provenance/`: a dry run uses one where it is, a
    run moves it into the visible `stamps/` folder with its time, so the outputs made after it stay current."""
    from tsmlip import provenance

    old = tmp_path / provenance.OLD_STAMPS_DIR / "split" / "abc.stamp"
    old.parent.mkdir(parents=True)
    old.write_text("{}")
    os.utime(old, (1_000_000.0, 1_000_000.0))
    assert provenance.stamp_path(tmp_path, "split", "abc", move=False) == old and old.exists()
    new = provenance.stamp_path(tmp_path, "split", "abc", move=True)
    assert new == tmp_path / provenance.STAMPS_DIR / "split" / "abc.stamp" and not old.exists()
    assert new.stat().st_mtime == 1_000_000.0
    assert provenance.stamp_path(tmp_path, "split", "other", move=True).parent == new.parent  # none old: the new path


def _state(root):
    """Every file under ``root`` with its size and modification time (what a run that must not touch it keeps)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_staleness_is_read_from_the_records_not_from_file_times(tmp_path):
    """Whether an output is current is read from the record inside it (its settings and code hashes against the
    plan's), not from file times. On a finished data stage (dataset, split; split seed 1):

    * the stamps carrying later times than the outputs (a copy or a restore that wrote them last), nothing
      changed: nothing to be done;
    * the seed-1 split beside the stamp of a seed-7 plan that is older than it (what a seed-7 run leaves when the
      seed-1 files are then restored from another run by a plain copy): the split is planned again, in one line
      naming both settings hashes, and the dataset is not;
    * another checkout's live run holds the folder: a run with a changed setting is refused and changes nothing in
      it (no file, size or time)."""
    import socket
    import time

    from tsmlip import provenance, settings

    results = tmp_path / "results"

    def snake(*args, seed=None):
        overlay = tmp_path / f"overlay-{seed}.yaml"
        overlay.write_text(f"results_dir: {results}\n" + (f"split: {{seed: {seed}}}\n" if seed is not None else ""))
        return run_snakemake(*args, "--configfile", "config/test.yaml", str(overlay), "--",
                             str(results / "data" / "split.npz"))

    first = snake("--cores", "1")
    assert first.returncode == 0, _jobs(first)[-3000:]

    later = time.time() + 3600
    stamps = sorted((results / "stamps").rglob("*.stamp"))
    for p in stamps:
        os.utime(p, (later, later))
    plan = snake("-n")
    assert plan.returncode == 0 and "Nothing to be done" in _jobs(plan), _jobs(plan)[-3000:]
    earlier = (results / "data" / "dataset.npz").stat().st_mtime - 60  # before every output
    for p in stamps:
        os.utime(p, (earlier, earlier))

    # the seed-7 plan's stamp (as common.smk plans it: the split's settings on the generated dataset), older than
    # the seed-1 split: by time the split is current
    cfg = canonical(validate(_cfg(split={"seed": 7})))
    source = provenance.planned("generate-dataset", settings.settings_json("generate-dataset", cfg), [])
    seven = ("split", settings.settings_json("split", cfg), [source])
    assert (results / "stamps" / "source" / f"{source}.stamp").is_file()  # the same planning as the workflow's
    stamp = results / "stamps" / "split" / f"{provenance.planned(*seven)}.stamp"
    provenance.write_stamp(stamp, *seven)
    os.utime(stamp, (earlier, earlier))
    plan = snake("-n", seed=7)
    assert plan.returncode == 0, _jobs(plan)[-3000:]
    assert "rule split:" in _jobs(plan) and "rule generate_dataset:" not in _jobs(plan), _jobs(plan)[-3000:]
    assert "split.json: made with other settings than planned: settings" in _jobs(plan), _jobs(plan)[-3000:]

    lock = results / ".tsmlip-run.lock"
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": "now",
                                "checkout": "/elsewhere"}))
    before = _state(results)
    held = snake("--cores", "1", seed=7)
    assert held.returncode != 0 and "in use by a running workflow" in _jobs(held), _jobs(held)[-3000:]
    assert _state(results) == before


def test_made_as_planned_reads_the_record(tmp_path):
    """The content verdict of one output: current when its record holds the plan's settings hash and the step's
    code stamp as it is now, stale (naming both hashes) when either differs, no verdict when the file is missing,
    records nothing or records another step (then the stamp's time decides)."""
    from tsmlip import provenance

    settings = {"split": {"seed": 1}}
    p = tmp_path / "split.json"
    p.write_text(json.dumps(provenance.json_with({"train": 8}, provenance.record("split", settings, {}))))
    assert provenance.made_as_planned(p, "split", settings) == (True, "")
    assert provenance.made_as_planned(p, "split", json.dumps(settings)) == (True, "")  # a --config-json string
    stale, why = provenance.made_as_planned(p, "split", {"split": {"seed": 7}})
    assert stale is False and why.startswith("made with other settings than planned: settings ")
    assert provenance.settings_hash(settings) in why and provenance.settings_hash({"split": {"seed": 7}}) in why
    rec = json.loads(p.read_text())
    rec["_provenance"]["code"] = "0" * 16
    p.write_text(json.dumps(rec))
    stale, why = provenance.made_as_planned(p, "split", settings)
    assert stale is False and "other code" in why and "0" * 16 in why
    assert provenance.made_as_planned(p, "train", settings) == (None, "")  # another step's plan: no verdict
    assert provenance.made_as_planned(tmp_path / "missing.json", "split", settings) == (None, "")
    (tmp_path / "old.json").write_text(json.dumps({"train": 8}))  # an older file: no record
    assert provenance.made_as_planned(tmp_path / "old.json", "split", settings) == (None, "")
