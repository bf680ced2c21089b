"""The README is a reference, not a lab notebook: at most 200 lines, no dated measurement outside the run report it
links, and every relative link of the README and of docs/ resolves (the run reports, the published figure). Every
command the README and the reference docs show (``tsmlip <step>``, ``scripts/*.py``, ``snakemake ...``,
``make <target>``, in code blocks and in inline code) is accepted by the command it names, so a renamed or removed
flag, rule, config file or make target cannot leave the docs wrong unnoticed."""
import argparse
import contextlib
import functools
import importlib
import os
import re
import runpy
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest

from conftest import ROOT

LINK = re.compile(r"\]\(([^)\s]+)\)")
DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")


def _docs():
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_readme_is_short_and_undated():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    # dates only in links to the run reports (their file names), never in the prose
    prose = re.sub(r"\[[^\]]*\]\([^)]*\)", "", text)
    assert not DATE.findall(prose), DATE.findall(prose)


def test_every_relative_link_resolves():
    for doc in _docs():
        for target in LINK.findall(doc.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (doc.parent / target.split("#")[0]).resolve()
            assert path.exists(), f"{doc.relative_to(ROOT)}: broken link {target}"


def test_run_reports_are_named_by_date_and_listed():
    runs = ROOT / "docs" / "runs"
    reports = sorted(p for p in runs.glob("*.md") if p.name != "README.md")
    assert reports
    index = (runs / "README.md").read_text()
    for p in reports:
        assert re.fullmatch(r"20\d\d-\d\d-\d\d-[a-z0-9-]+\.md", p.name), p.name
        assert f"({p.name})" in index, f"{p.name} is not listed in docs/runs/README.md"
    # reference docs link the reports, they do not hold dated runs
    for doc in sorted((ROOT / "docs").glob("*.md")):
        assert not re.search(r"^#+ .*\b20\d\d-\d\d-\d\d", doc.read_text(), re.M), doc.name


# --- the commands the docs show -----------------------------------------------------------------------------------
#: the docs whose commands must run as written: the README, the reference docs and the READMEs of profiles/ and
#: results/ (the dated run reports are records of what ran then, and stay as they were written)
COMMAND_DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "docs" / "runs" / "README.md",
                ROOT / "docs" / "runs" / "latest" / "README.md", ROOT / "profiles" / "README.md",
                ROOT / "results" / "README.md"]
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```", re.S | re.M)
SHELL_FENCES = {"", "bash", "sh", "shell", "console"}
SPAN = re.compile(r"`([^`]+)`")
#: ``<step>``, ``<results_dir>``: a placeholder the reader fills in
PLACEHOLDER = re.compile(r"<[^<>\s][^<>]*>")
HOLE = "__placeholder__"
#: what separates two commands on one line
SEPARATORS = {"|", "||", "&", "&&", ";", "(", ")", ">", ">>", "<", "2>", "2>&1"}


@dataclass
class DocCommand:
    where: str  # "<doc>:<line>"
    kind: str  # tsmlip | script | snakemake | make
    name: str  # the step, the script's path, "snakemake" or "make"
    args: list
    runnable: bool  # a code block's command without an elision ("..."): it must also give every required argument


def commands_in(text: str, doc: str = "<doc>") -> list:
    """The ``tsmlip``, ``scripts/*.py``, ``snakemake`` and ``make`` commands of a markdown text: each line (with its
    backslash continuations) of a shell code block, and each inline code span that starts with such a command."""
    found = []
    for m in FENCE.finditer(text):
        if m.group(1).strip() not in SHELL_FENCES:
            continue
        first = text.count("\n", 0, m.start(2)) + 1
        logical, start = "", None
        for i, line in enumerate(m.group(2).splitlines(), first):
            start = start or i
            if line.rstrip().endswith("\\"):
                logical += line.rstrip()[:-1] + " "
                continue
            found += _split(logical + line, f"{doc}:{start}", fenced=True)
            logical, start = "", None
    prose = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    for m in SPAN.finditer(prose):
        found += _split(" ".join(m.group(1).split()), f"{doc}:{prose.count(chr(10), 0, m.start()) + 1}", fenced=False)
    return found


def _split(line: str, where: str, fenced: bool) -> list:
    lexer = shlex.shlex(PLACEHOLDER.sub(HOLE, line), posix=True, punctuation_chars=True)
    lexer.whitespace_split, lexer.commenters = True, "#"
    try:
        tokens = list(lexer)
    except ValueError:  # an unbalanced quote: not a command
        return []
    runnable = fenced and "..." not in line
    found, seg = [], []
    for tok in tokens + [";"]:
        if tok not in SEPARATORS:
            seg.append(tok)
            continue
        while seg and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=\S*", seg[0]):  # VAR=value before the command
            seg.pop(0)
        if seg:
            word, rest = seg[0], seg[1:]
            if os.path.basename(word) == "tsmlip":
                found.append(DocCommand(where, "tsmlip", rest[0] if rest else "", rest[1:], runnable))
            elif re.fullmatch(r"(\S*/)?python3?", word) and rest and rest[0].endswith(".py") and "scripts/" in rest[0]:
                found.append(DocCommand(where, "script", rest[0], rest[1:], runnable))
            elif re.fullmatch(r"(\S*/)?scripts/\S+\.py", word):
                found.append(DocCommand(where, "script", word, rest, runnable))
            elif os.path.basename(word) == "snakemake":
                found.append(DocCommand(where, "snakemake", "snakemake", rest, runnable))
            elif word == "make":
                found.append(DocCommand(where, "make", "make", rest, runnable))
        seg = []
    return found


class _Captured(Exception):
    def __init__(self, parser):
        super().__init__()
        self.parser = parser


@contextlib.contextmanager
def _capturing():
    """argparse's parse_args (and parse_known_args) hand back the parser instead of parsing: a command's parser,
    built by its own code, without running the command."""
    def grab(self, *args, **kwargs):
        raise _Captured(self)

    with mock.patch.object(argparse.ArgumentParser, "parse_args", grab), \
            mock.patch.object(argparse.ArgumentParser, "parse_known_args", grab):
        yield


@functools.lru_cache(maxsize=None)
def _step_parser(step: str) -> argparse.ArgumentParser:
    from tsmlip.cli import COMMANDS

    module, function = COMMANDS[step].split(":")
    try:
        with _capturing():
            getattr(importlib.import_module(module), function)([])
    except _Captured as c:
        return c.parser
    raise AssertionError(f"tsmlip {step} parsed no arguments")


@functools.lru_cache(maxsize=None)
def _script_parser(path: Path) -> argparse.ArgumentParser:
    saved_path, saved_argv = sys.path[:], sys.argv[:]
    sys.path[:0] = [str(path.parent), str(ROOT / "workflow")]
    sys.argv = [str(path)]
    try:
        with _capturing():
            runpy.run_path(str(path), run_name="__main__")
    except _Captured as c:
        return c.parser
    finally:
        sys.path[:], sys.argv[:] = saved_path, saved_argv
    raise AssertionError(f"{path.name} parsed no arguments")


def _make_targets() -> set:
    text = (ROOT / "Makefile").read_text()
    return {t for line in re.findall(r"^([^\s#=:][^=:]*):(?!=)", text, re.M) for t in line.split()
            if "$" not in t}


@functools.lru_cache(maxsize=None)
def _snakemake_parser() -> argparse.ArgumentParser:
    from snakemake.cli import get_argument_parser

    return get_argument_parser()


@functools.lru_cache(maxsize=None)
def _rules() -> frozenset:
    """The workflow's rule names (``rule x:``, ``checkpoint x:``, ``use rule y as x``), from its source."""
    text = "\n".join(p.read_text() for p in [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))])
    return frozenset(re.findall(r"^\s*(?:rule|checkpoint)\s+(\w+)\s*:", text, re.M)
                     + re.findall(r"^\s*use rule \w+ as (\w+)", text, re.M))


@functools.lru_cache(maxsize=None)
def _results_dirs() -> frozenset:
    """The results folders the configs write into (``results_dir`` of config/*.yaml)."""
    return frozenset(re.search(r"^results_dir:\s*(\S+)", p.read_text(), re.M).group(1)
                     for p in (ROOT / "config").glob("*.yaml") if re.search(r"^results_dir:", p.read_text(), re.M))


#: snakemake's options whose values are rules or output files
_RULE_OPTIONS = ("forcerun", "until", "omit_from", "prioritize", "allowed_rules")


def _snakemake_problems(args: list, runnable: bool) -> list:
    """What snakemake refuses of ``args`` (its own parser: flags, types, choices), and what this workflow has not:
    a config file, a profile folder, a rule named as a target or by ``--forcerun`` and the like, a results folder
    no config writes into, a figure or a model id (:func:`_output_problems`). Whether any other file target is some
    rule's output is not checked: that takes planning the workflow."""
    problems, ns = _parse(_snakemake_parser(), args, runnable)
    if ns is None:
        return problems
    for path in ns.configfile or []:
        if HOLE not in str(path) and not (ROOT / path).is_file():
            problems.append(f"no config file {path}")
    for profile in (ns.profile, ns.workflow_profile):
        if profile is not None and HOLE not in str(profile) and str(profile) != "none" \
                and not (ROOT / str(profile)).is_dir():
            problems.append(f"no profile folder {profile}")
    names = list(ns.targets or []) + [v for o in _RULE_OPTIONS for v in (getattr(ns, o, None) or [])]
    for name in map(str, names):
        if HOLE in name or name == "...":
            continue
        if "/" not in name and "." not in name:
            if name not in _rules():
                problems.append(f"the workflow has no rule {name}")
        elif "/" in name and name.split("/")[0] not in _results_dirs():
            problems.append(f"{name}: no config writes into {name.split('/')[0]}/")
        else:
            problems += _output_problems(name)
    return problems


def _output_problems(path: str) -> list:
    """What is wrong with an output named as a target: a figure the workflow does not draw, a model id that does
    not parse."""
    from tsmlip.figures import FIGURES
    from tsmlip.ids import ModelId

    parts = path.split("/")
    if len(parts) == 3 and parts[1] == "figures":
        stem, _, suffix = parts[2].rpartition(".")
        if stem not in {*FIGURES, "coverage"} or suffix not in ("pdf", "png"):
            return [f"{path}: the workflow draws no figure {parts[2]}"]
    if len(parts) == 6 and parts[1] == "models":
        try:
            ModelId.parse("/".join(parts[2:5]))
        except Exception as e:
            return [f"{path}: not a model id ({e})"]
    return []


class _Refused(Exception):
    pass


def _parse_problems(parser: argparse.ArgumentParser, args: list, runnable: bool) -> list:
    """What ``parser`` refuses of ``args``: a flag it does not know by that exact name (no abbreviations), an
    argument it does not take, a value of the wrong type or choice; for a runnable command also a required argument
    left out."""
    return _parse(parser, args, runnable)[0]


def _parse(parser: argparse.ArgumentParser, args: list, runnable: bool) -> tuple:
    """(:func:`_parse_problems`, the parsed namespace or None where the parser refused the arguments)."""
    if "-h" in args or "--help" in args:
        args, runnable = [a for a in args if a not in ("-h", "--help")], False
    # optional parts in brackets ("A.pt [B.pt ...]") are arguments too; an elision ("...") is none
    args = [a.removeprefix("[").removesuffix("]") for a in args]
    args = [a for a in args if a and a != "..."]
    problems = [f"unknown flag {a.split('=')[0]}" for a in args
                if re.match(r"--?[A-Za-z]", a) and a.split("=")[0] not in parser._option_string_actions]
    required = [a for a in parser._actions if a.required]
    groups = [g for g in parser._mutually_exclusive_groups if g.required]
    for a in required:
        a.required = False
    for g in groups:
        g.required = False

    def refuse(message):
        raise _Refused(message)

    try:
        with mock.patch.object(parser, "error", refuse), contextlib.redirect_stdout(None):
            ns, extra = parser.parse_known_args(args)
    except _Refused as e:
        if HOLE not in str(e):  # a placeholder value of a typed option: the reader's to fill in
            problems.append(str(e))
        return problems, None
    except Exception as e:  # a type function that raises its own error (snakemake's --cores)
        return problems + [f"{type(e).__name__}: {e}"], None
    finally:
        for a in required:
            a.required = True
        for g in groups:
            g.required = True
    if extra:
        problems.append(f"unrecognized arguments: {' '.join(extra)}")
    if runnable:
        problems += [f"required argument {'/'.join(a.option_strings) or a.dest} left out" for a in required
                     if getattr(ns, a.dest, None) is None]
    return problems, ns


def command_problems(cmd: DocCommand) -> list:
    """Why ``cmd`` would not run as written (empty: it would)."""
    if cmd.kind == "make":
        targets = _make_targets()
        return [f"make has no target {t}" for t in cmd.args if "=" not in t and not t.startswith("-")
                and HOLE not in t and t not in targets]
    if cmd.kind == "snakemake":
        if not cmd.args and not cmd.runnable:  # snakemake named in prose
            return []
        return _snakemake_problems(cmd.args, cmd.runnable)
    if cmd.kind == "tsmlip":
        from tsmlip.cli import COMMANDS

        if cmd.name in ("", "-h", "--help") or HOLE in cmd.name:
            return []
        if cmd.name not in COMMANDS:
            return [f"tsmlip has no step {cmd.name!r}"]
        if not cmd.args and not cmd.runnable:  # the step named in prose
            return []
        return _parse_problems(_step_parser(cmd.name), cmd.args, cmd.runnable)
    path = (ROOT / cmd.name[cmd.name.index("scripts/"):]).resolve()
    if not path.is_file():
        return [f"no script {cmd.name}"]
    if not cmd.args and not cmd.runnable:
        return []
    return _parse_problems(_script_parser(path), cmd.args, cmd.runnable)


def test_every_documented_command_runs_as_written():
    problems, n = [], 0
    for doc in COMMAND_DOCS:
        for cmd in commands_in(doc.read_text(), str(doc.relative_to(ROOT))):
            n += 1
            problems += [f"{cmd.where}: `{' '.join([cmd.kind, cmd.name, *cmd.args])}`: {p}"
                         for p in command_problems(cmd)]
    assert n > 20  # the docs' commands were found
    assert not problems, "\n".join(problems)


#: a model's folder as the docs name it: <results folder>/models/<kind>/<arch>/seed<N> (seed{s}: a Python loop's)
MODEL_PATH = re.compile(r"\b(results[\w-]*)/models/(\w+)/(w\d+-s\d+-l\d+)/seed(\d+|\{\w+\})")


def test_documented_model_folders_are_trained_by_their_config():
    """A model folder the docs name (results/models/student/w16-s4-l1/seed1/...) is one that the config writing
    into that results folder trains: config/config.yaml for results/, the overlay whose results_dir it is for the
    others (kind, architecture and seed; ``seed{s}`` any seed)."""
    from tsmlip.config import load_config
    from tsmlip.model_ids import all_model_ids

    overlays = {re.search(r"^results_dir:\s*(\S+)", p.read_text(), re.M).group(1): p
                for p in sorted((ROOT / "config").glob("*.yaml")) if re.search(r"^results_dir:", p.read_text(), re.M)}
    trained = {}
    problems, n = [], 0
    for doc in COMMAND_DOCS:
        for i, line in enumerate(doc.read_text().splitlines(), 1):
            for folder, kind, arch, seed in MODEL_PATH.findall(line):
                n += 1
                where = f"{doc.relative_to(ROOT)}:{i}: {folder}/models/{kind}/{arch}/seed{seed}"
                if folder not in overlays:
                    problems.append(f"{where}: no config writes into {folder}/")
                    continue
                if folder not in trained:
                    files = [ROOT / "config" / "config.yaml"] + ([] if overlays[folder].name == "config.yaml"
                                                                 else [overlays[folder]])
                    trained[folder] = {(m.kind, m.arch.tag, str(m.seed)) for m in all_model_ids(load_config(*files))}
                if not any(k == kind and a == arch and (s == seed or seed.startswith("{"))
                           for k, a, s in trained[folder]):
                    problems.append(f"{where}: not a model that {overlays[folder].relative_to(ROOT)} trains")
    assert n >= 3  # the docs' model folders were found
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("text, broken", [
    # the README's old export line: the model is --model, and --output is required
    ("```bash\ntsmlip export model.pt\n```", True),
    ("`tsmlip export model.pt`", True),
    ("```bash\ntsmlip export --model m.pt --output m.ts\n```", False),
    ("```bash\ntsmlip export --model m.pt\n```", True),  # a runnable command without a required flag
    ("`tsmlip export --model m.pt`", False),  # prose may name a flag alone
    ("`tsmlip export --mod m.pt --output m.ts`", True),  # an abbreviation: breaks when another --mod... appears
    ("`tsmlip split --outt split.npz`", True),
    ("`tsmlip no-such-step --x 1`", True),
    ("`tsmlip <step> --help`", False),
    ("```bash\nPYTHONPATH=workflow python3 scripts/bench_train.py --no-such-flag\n```", True),
    ("`python scripts/bench_train.py --engines`", False),
    ("`python scripts/no_such_script.py`", True),
    ("```\nmake run     # install and run\nmake no-such-target\n```", True),
    ("`make publish-run RESULTS=<results_dir> REPORT=docs/runs/<date>-<config>.md`", False),
    ("```bash\nmake gpu-wheels && tsmlip md-timing --engine no-such-engine ...\n```", True),
    ("`python scripts/bench_liquid_stack.py A.pt [B.pt ...] --sizes 1 4 16`", False),
    ("`python scripts/bench_liquid_stack.py A.pt [B.pt ...] --sizes one`", True),  # not an integer
    # snakemake: its own flags, and this workflow's config files, profiles, rules and results folders
    ("```bash\nsnakemake --cores 2 --configfile config/paper.yaml -n\n```", False),
    ("```bash\nsnakemake --cores 2 --configfile config/no_such.yaml -n\n```", True),
    ("`snakemake --dryrun-all`", True),  # no such flag
    ("`snakemake --cores two`", True),  # not a number of cores
    ("`snakemake --forcerun train_stack`", False),
    ("`snakemake --forcerun train_stacks`", True),  # no such rule
    ("`snakemake --cores 1 no_such_rule`", True),
    ("`snakemake results/models/<id>/metrics.json`", False),
    ("`snakemake result/models/student/w8-s4-l1/seed1/metrics.json`", True),  # no config writes into result/
    ("`snakemake --workflow-profile profiles/slurm`", False),
    ("`snakemake --workflow-profile profiles/no-such-site`", True),
    ("`.venv/bin/snakemake --report report.html`", False),
    ("`snakemake results/figures/capacity.pdf`", False),
    ("`snakemake results/figures/capacity_curve.pdf`", True),  # no such figure
    ("`snakemake results/models/student/w16-s4-l1/seed1/metrics.json`", False),
    ("`snakemake results/models/student/w16-l1/seed1/metrics.json`", True),  # not a model id
])
def test_the_command_check_catches_drift(text, broken):
    cmds = commands_in(text)
    assert cmds, text
    assert any(command_problems(c) for c in cmds) == broken, [(c, command_problems(c)) for c in cmds]
