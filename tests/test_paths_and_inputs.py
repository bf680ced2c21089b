"""Paths are quoted in every shell command, every rule carries the package's code stamp, and the data stage
is tied to its source files by content (issue 23, items 2-4)."""
import hashlib
import json
import os
import re
import shlex
import shutil

import pytest

from conftest import ROOT, run_snakemake, write_emt_copper_xyz
from tsmlip.cli import COMMANDS

#: a results folder whose name has a space and a non-ASCII character
ODD = "ré sults"


def _shell_commands(text):
    return [l.split("Shell command: ", 1)[1] for l in text.splitlines() if l.startswith("Shell command: tsmlip ")]


def _assert_quoted(cmds, *paths):
    """Every word of every command that holds a piece of one of ``paths`` holds the whole path."""
    assert cmds
    for cmd in cmds:
        words = shlex.split(cmd)
        for w in words:
            for p in paths:
                if "ré" in w and p.split(os.sep)[-1].split(" ")[0] in w:
                    assert p in w, (w, cmd)


def test_every_shell_command_quotes_its_paths(tmp_path):
    results = str(tmp_path / "probe" / ODD)
    out = run_snakemake("-n", "--printshellcmds", "--configfile", "config/test.yaml", "--config",
                        f"results_dir={results}")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    cmds = _shell_commands(out.stdout)
    steps = {shlex.split(c)[1] for c in cmds}
    assert {"generate-dataset", "split", "train-stack", "label", "label-oracle", "synthesize", "md-timing",
            "max-atoms", "rdf-md", "rdf-md-stack", "rdf-error", "plot-coverage", "aggregate", "claims", "born-again-table", "plot"} <= steps
    _assert_quoted(cmds, results)
    # every command's output paths are single words under the results folder
    for cmd in cmds:
        words = shlex.split(cmd)
        for flag in ("--out", "--out-dir", "--checkpoint-dir", "--pdf", "--out-csv"):
            if flag in words:
                assert words[words.index(flag) + 1].startswith(results), cmd
        log = words[words.index(">") + 1] if ">" in words else words[words.index("tee") + 1]
        assert log.startswith(results), cmd


def _key_paths(tree, prefix=()):
    for k, v in tree.items():
        yield prefix + (k,)
        if isinstance(v, dict) and v:
            yield from _key_paths(v, prefix + (k,))


def test_every_step_takes_its_config_as_one_json_subtree(tmp_path):
    """One way to hand a step its configuration: one --config-json, every key of which is a key of the config
    at the same place (a subtree; budget check, noise seed and the calculator's liquid replace values)."""
    from tsmlip.cli import STEPS, missing_keys
    from tsmlip.config import load_config

    cfg = load_config(ROOT / "config" / "config.yaml", ROOT / "config" / "test.yaml")
    out = run_snakemake("-n", "--printshellcmds", "--configfile", "config/test.yaml", "--config",
                        f"results_dir={tmp_path / 'r'}")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for cmd in _shell_commands(out.stdout):
        words = shlex.split(cmd)
        assert words.count("--config-json") == 1, cmd
        sub = json.loads(words[words.index("--config-json") + 1])
        # the rule passes every key the step reads (the one table of steps, tsmlip.cli.STEPS)
        assert not missing_keys(sub, STEPS[words[1]].reads), cmd[:200]
        for path in _key_paths(sub):
            node = cfg
            for k in path:
                assert isinstance(node, dict) and k in node, (".".join(path), cmd[:200])
                node = node[k]


def test_every_rule_carries_the_code_stamp_of_its_step():
    """A change to the code a rule runs reruns it: every rule has its step's stamp in its params,
    `code=code_stamp("<step>")` with the step its shell command runs (`tsmlip <step>`)."""
    n, copies = 0, set()
    for f in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        text = f.read_text()
        blocks = re.split(r"^\s*(?:use )?rule (\w+)", text, flags=re.M)
        for name, body in zip(blocks[1::2], blocks[2::2]):
            if name == "all":
                continue
            stamps = re.findall(r'code=code_stamp\("([\w-]+)"\)', body)
            runs = re.findall(r'"tsmlip ([\w-]+)', body)
            if not runs and not stamps and re.search(r'shell:\s*"\(?cp ', body):
                copies.add(name)  # a local copy of another job's outputs (collect_model, collect_rdf) computes
            if name in copies:  # nothing (nor does a `use rule` of it)
                continue
            inherited = body.lstrip().startswith("as ")  # `use rule train as ...`: its step's shell
            assert len(stamps) == 1, f"{f.name}: rule {name} carries no single code stamp"
            assert stamps[0] in COMMANDS, f"{f.name}: rule {name}: unknown step {stamps[0]!r}"
            assert inherited or runs == stamps, f"{f.name}: rule {name} runs {runs} but is stamped {stamps}"
            n += 1
    assert n >= 20


def test_data_stage_follows_its_files_by_content(tmp_path):
    """A real tiny data stage in folders with a space and a non-ASCII character: it runs; the provenance
    records the source's sha256; a swapped file with an older mtime reruns the data stage; the step's
    messages reach the console."""
    data_dir = tmp_path / "dáta dir"
    data_dir.mkdir()
    xyz = write_emt_copper_xyz(data_dir / "cu frames.xyz", n_configs=12)
    results = tmp_path / ODD
    overlay = tmp_path / "files.yaml"
    overlay.write_text(json.dumps({"results_dir": str(results), "data": {"source": "extxyz", "path": str(xyz)},
                                   "split": {"valid_fraction": 0.2, "test_fraction": 0.2}}))
    split = results / "data" / "split.npz"
    args = ("--configfile", "config/test.yaml", str(overlay))
    out = run_snakemake("--cores", "1", str(split), *args)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "[prepare] forces_are=forces" in out.stderr  # the step's messages reach the console
    prov = json.loads((results / "data" / "provenance.json").read_text())
    assert prov["sources"] == [{"path": "cu frames.xyz", "bytes": xyz.stat().st_size,
                                "sha256": hashlib.sha256(xyz.read_bytes()).hexdigest()}]
    again = run_snakemake("-n", str(split), *args)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    # other data under the same name, with an older mtime than the dataset: the mtime trigger misses it
    old = os.stat(xyz)
    write_emt_copper_xyz(xyz, n_configs=12, seed=4)
    os.utime(xyz, ns=(old.st_atime_ns, old.st_mtime_ns))
    swapped = run_snakemake("-n", str(split), *args)
    assert swapped.returncode == 0, swapped.stderr[-3000:]
    assert "rule prepare_dataset" in swapped.stdout, swapped.stdout[-3000:]


def test_ani_folder_is_expanded_to_its_files_in_the_plan(tmp_path):
    """The data rule's input is each *.h5 / *.hdf5 file of an ANI-Al folder (not the folder, whose mtime an
    edit inside it leaves alone)."""
    d = tmp_path / "ani al"
    (d / "sub").mkdir(parents=True)
    for name in ("a.h5", "sub/b.hdf5", "notes.txt"):
        (d / name).write_bytes(b"x")
    overlay = tmp_path / "ani.yaml"
    overlay.write_text(json.dumps({"data": {"source": "ani_h5", "path": str(d)}, "results_dir": str(tmp_path / "r")}))
    out = run_snakemake("-n", str(tmp_path / "r" / "data" / "dataset.npz"), "--configfile", str(overlay))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    block = out.stdout[out.stdout.index("rule prepare_dataset"):]
    inputs = block.split("input: ", 1)[1].splitlines()[0]
    inputs = ", ".join(f for f in inputs.split(", ") if not f.endswith(".stamp"))  # the provenance stamp
    assert inputs == f"{d / 'a.h5'}, {d / 'sub' / 'b.hdf5'}", inputs


@pytest.mark.parametrize("step", sorted(COMMANDS))
def test_every_step_parser_reads_the_steps_table(step, capsys):
    """`tsmlip <step> --help` names the config keys of tsmlip.cli.STEPS: the step's parser and the rules
    (common.smk: step_config) read the same table."""
    from tsmlip.cli import STEPS, main

    with pytest.raises(SystemExit) as e:
        main([step, "--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    if not STEPS[step].reads:  # a tool that reads no configuration (export): no --config-json
        assert "--config-json" not in text
        return
    assert f"the config keys {', '.join(STEPS[step].reads)} as one JSON object" in text
