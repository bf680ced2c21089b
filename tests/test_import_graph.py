"""The package's modules import each other without a cycle (every import counts, also one inside a function)."""
import ast
import re
from pathlib import Path

from conftest import ROOT
from tsmlip.stamps import import_graph  # the one AST import graph (also the code stamps' closures)


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
    assert "tsmlip.kinds" in graph["tsmlip.loss_weights"]
    assert "tsmlip.data.io" in graph["tsmlip.config"]  # imported inside has_reference_atom_energies
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_package_imports_have_no_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


#: the base layer: the package's face, the kinds, the model ids and the configuration's error, the statement of what
#: the plain-torch HIPNN computes, atomic file writes, the loss weights. It imports nothing above itself
#: (:func:`test_base_imports_nothing_above_it`); the core imports nothing else of the package
#: (:func:`test_core_imports_only_the_base`)
BASE = {"tsmlip", "tsmlip.kinds", "tsmlip.ids", "tsmlip.network_support", "tsmlip.io_utils", "tsmlip.loss_weights"}


def test_base_imports_nothing_above_it():
    graph = import_graph()
    assert BASE <= set(graph)
    up = {m: sorted(graph[m] - BASE) for m in BASE}
    assert not any(up.values()), {m: x for m, x in up.items() if x}


def test_core_imports_only_the_base():
    """The core layer (tsmlip.core: model, losses, batches, elements, the MD engines) imports itself and the base,
    never the configuration (tsmlip.config), the command line (tsmlip.cli) or a step (a ``tsmlip <command>``
    module)."""
    graph = import_graph()
    core = [m for m in graph if m == "tsmlip.core" or m.startswith("tsmlip.core.")]
    assert "tsmlip.core.model" in core and "tsmlip.core.md.engines" in core
    up = {m: sorted(x for x in graph[m] if not x.startswith("tsmlip.core") and x not in BASE) for m in core}
    assert not any(up.values()), {m: x for m, x in up.items() if x}


def _defined(path: Path) -> set[str]:
    """The names a module defines at its top level (not those it imports)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def test_config_is_imported_for_its_own_names():
    """What moved out of tsmlip.config (the ids and the error to tsmlip.ids, the network support to
    tsmlip.network_support, the model-id planning to tsmlip.model_ids) is imported from its home: an import of
    tsmlip.config (package, scripts, tests, rules) names only what config.py defines, so no caller leans on a name it
    merely imports."""
    own = _defined(ROOT / "workflow" / "tsmlip" / "config.py")
    wrong = []
    for path in sorted([*(ROOT / "workflow").rglob("*.py"), *(ROOT / "scripts").rglob("*.py"),
                        *(ROOT / "tests").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[-1] == "config" and (
                    node.module == "tsmlip.config" or node.level and path.is_relative_to(ROOT / "workflow")):
                wrong += [f"{path.relative_to(ROOT)}: {a.name}" for a in node.names if a.name not in own]
    for path in [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]:
        wrong += [f"{path.relative_to(ROOT)}: {n}" for n in re.findall(r"\btsconfig\.(\w+)", path.read_text())
                  if n not in own]
    assert not wrong, wrong


def test_base_modules_name_their_public_names():
    """Each base module (and the core's model and network) lists in ``__all__`` the names other modules use, and
    each name it lists is its own."""
    for name in sorted(BASE - {"tsmlip"}) + ["tsmlip.core.model", "tsmlip.core.hipnn"]:
        path = ROOT / "workflow" / (name.replace(".", "/") + ".py")
        tree = ast.parse(path.read_text())
        listed = next((ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                       and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets)), None)
        assert listed, f"{name}: no __all__"
        assert not set(listed) - _defined(path), (name, sorted(set(listed) - _defined(path)))


def test_steps_live_outside_core():
    """Every ``tsmlip <command>`` runs a module outside the core, except export (the deployable model is the core's)."""
    from tsmlip.cli import STEPS

    inside = {name for name, step in STEPS.items() if step.target.startswith("tsmlip.core.")}
    assert inside == {"export"}
