"""The package's modules import each other without a cycle (every import counts, also one inside a function)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "workflow"
PACKAGE = ROOT / "tsmlip"


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_package(name: str) -> bool:
    return (ROOT.joinpath(*name.split(".")) / "__init__.py").is_file()


def _is_module(name: str) -> bool:
    p = ROOT.joinpath(*name.split("."))
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def _imported(path: Path, name: str):
    """Every module name an import statement of ``path`` may load (``from m import x``: m and m.x)."""
    package = name if _is_package(name) else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
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


def import_graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports, with the packages whose ``__init__`` such an import runs; a
    package that holds the importer is left out (Python has run its ``__init__`` before the importer's)."""
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _name(path)
        edges = set()
        for target in _imported(path, name):
            if not (target == "tsmlip" or target.startswith("tsmlip.")) or not _is_module(target):
                continue
            parts = target.split(".")
            edges |= {up for up in (".".join(parts[:i]) for i in range(1, len(parts) + 1))
                      if not name.startswith(up + ".")}
        edges.discard(name)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_graph_sees_function_level_and_relative_imports():
    graph = import_graph()
    assert "tsmlip.kinds" in graph["tsmlip.losses"]
    assert "tsmlip.data.io" in graph["tsmlip.config"]  # imported inside has_reference_atom_energies
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_package_imports_have_no_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
