"""Code stamps: what code computed a step's result, so that a change reruns exactly the steps it can change.

Each ``tsmlip <step>`` command (:data:`tsmlip.cli.COMMANDS`) runs one module of the package. Its code stamp
(:func:`code_stamp`) is the sha256 of that module's *import closure* within the package: the module, every
package module it imports (also an import inside a function), transitively, with the ``__init__`` of every
package on the way (Python runs them), the command-line entry (:mod:`tsmlip.cli`), and the package data those
modules read (:data:`DATA`). The rules put the stamp of their step into ``params:``, so Snakemake's params
rerun trigger reruns a job after a change to its code, and its outputs' new times rerun what reads them: a
change to ``plots.py`` reruns the figures only, a change to the training loop retrains every model and
everything downstream. Comments count (a result never outlives the code that made it).

The graph is read from the source (:mod:`ast`), never by importing: planning a run imports nothing heavy.
"""
from __future__ import annotations

import ast
import hashlib
from pathlib import Path

PACKAGE = "tsmlip"
#: the package's folder; its parent is the folder on ``sys.path`` (workflow/)
PACKAGE_DIR = Path(__file__).resolve().parent

#: package data (files or folders relative to the package, not ``.py``) -> the modules that read them; a step
#: whose closure holds such a module carries the data's bytes in its stamp. Read by planning only, never by a
#: step: ``schema.yaml`` (the workflow validates the configuration once, when it is planned).
DATA = {
    "tsmlip.rdf.error": ("reference_data",),  # the measured liquid-Al g(r) (rdf.experiment)
    "tsmlip.core.pair_kernels": ("core/pair_kernels.cpp",),  # the fused pair loops it builds
}
PLANNING_ONLY_DATA = ("schema.yaml",)


def module_name(path: Path, package_dir: Path = PACKAGE_DIR) -> str:
    """The dotted name of the package's file ``path`` (``.../tsmlip/md/__init__.py`` -> ``tsmlip.md``)."""
    parts = Path(path).relative_to(package_dir.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_path(name: str, package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The file of the package's module ``name``, or None when the package has no such module."""
    p = package_dir.parent.joinpath(*name.split("."))
    for f in (p.with_suffix(".py"), p / "__init__.py"):
        if f.is_file():
            return f
    return None


def _imported(path: Path, name: str, package_dir: Path):
    """Every module name an import statement of ``path`` may load (``from m import x``: m and m.x)."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            yield module
            yield from (f"{module}.{a.name}" for a in node.names)


def import_graph(package_dir: Path = PACKAGE_DIR) -> dict[str, set[str]]:
    """module -> the package's modules it imports, with the packages whose ``__init__`` such an import runs; a
    package that holds the importer is left out (Python has run its ``__init__`` before the importer's)."""
    package_dir = Path(package_dir).resolve()
    files = tuple(sorted(p for p in package_dir.rglob("*.py") if "__pycache__" not in p.parts))
    # parsed once per process while no file changes (a planning asks once per rule)
    key = (package_dir, tuple((p, p.stat().st_mtime_ns, p.stat().st_size) for p in files))
    if key not in _GRAPHS:
        _GRAPHS.clear()
        _GRAPHS[key] = _parse_graph(package_dir, files)
    return {m: set(e) for m, e in _GRAPHS[key].items()}


_GRAPHS: dict = {}


def _parse_graph(package_dir: Path, files) -> dict[str, set[str]]:
    graph = {}
    for path in files:
        name = module_name(path, package_dir)
        edges = set()
        for target in _imported(path, name, package_dir):
            if not (target == PACKAGE or target.startswith(PACKAGE + ".")) or module_path(target, package_dir) is None:
                continue
            parts = target.split(".")
            edges |= {up for up in (".".join(parts[:i]) for i in range(1, len(parts) + 1))
                      if not name.startswith(up + ".")}
        edges.discard(name)
        graph[name] = edges
    return graph


def closure(module: str, graph: dict[str, set[str]]) -> set[str]:
    """``module``, everything it imports within the package (transitively) and every package above each."""
    if module not in graph:
        raise KeyError(f"{module!r} is not a module of the package")
    seen, todo = set(), [module]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        parts = m.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # the packages Python runs first
        todo += sorted(graph.get(m, ()))
    return seen


def step_modules() -> dict[str, str]:
    """``tsmlip`` command -> the module that runs it (from :data:`tsmlip.cli.COMMANDS`)."""
    from .cli import COMMANDS

    return {step: target.split(":")[0] for step, target in COMMANDS.items()}


def step_files(step: str, package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """The files whose bytes make ``step``'s stamp: its closure's ``.py`` files and the data they read, sorted."""
    modules = step_modules()
    if step not in modules:
        raise KeyError(f"unknown step {step!r}; one of: {', '.join(sorted(modules))}")
    package_dir = Path(package_dir)
    graph = import_graph(package_dir)
    names = closure(modules[step], graph) | closure(f"{PACKAGE}.cli", graph)
    files = {module_path(n, package_dir) for n in names}
    for reader, data in DATA.items():
        if reader in names:
            for rel in data:
                p = package_dir / rel
                files |= {f for f in p.rglob("*") if f.is_file() and "__pycache__" not in f.parts} if p.is_dir() else {p}
    return sorted(files)


def code_stamp(step: str, package_dir: str | Path = PACKAGE_DIR) -> str:
    """The code stamp of ``tsmlip <step>``: the sha256 (first 16 hex digits) over the relative path and bytes of
    each of :func:`step_files`, in sorted order."""
    package_dir = Path(package_dir).resolve()
    files = step_files(step, package_dir)
    # hashed once per process while none of its files changes (a planning asks once per rule and per stamp)
    key = (step, package_dir, tuple((f, f.stat().st_mtime_ns, f.stat().st_size) for f in files))
    if key not in _STAMPS:
        h = hashlib.sha256()
        for f in files:
            h.update(f.relative_to(package_dir).as_posix().encode() + b"\0")
            h.update(f.read_bytes() + b"\0")
        _STAMPS[key] = h.hexdigest()[:16]
    return _STAMPS[key]


_STAMPS: dict = {}
