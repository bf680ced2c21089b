"""The package's modules import each other without a cycle (every import counts, also one inside a function)."""
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


#: what the core layer (tsmlip.core: model, losses, batches, elements, the MD engines) may import of the package:
#: itself and the house modules below it; never a step (a ``tsmlip <command>`` module)
CORE_MAY_IMPORT = {"tsmlip", "tsmlip.config", "tsmlip.io_utils", "tsmlip.kinds", "tsmlip.loss_weights", "tsmlip.records"}


def test_core_imports_no_step():
    graph = import_graph()
    core = [m for m in graph if m == "tsmlip.core" or m.startswith("tsmlip.core.")]
    assert "tsmlip.core.model" in core and "tsmlip.core.md.engines" in core
    up = {m: sorted(x for x in graph[m] if not x.startswith("tsmlip.core") and x not in CORE_MAY_IMPORT) for m in core}
    assert not any(up.values()), {m: x for m, x in up.items() if x}


def test_steps_live_outside_core():
    """Every ``tsmlip <command>`` runs a module outside the core, except export (the deployable model is the core's)."""
    from tsmlip.cli import STEPS

    inside = {name for name, step in STEPS.items() if step.target.startswith("tsmlip.core.")}
    assert inside == {"export"}
