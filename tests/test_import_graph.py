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
    assert "tsmlip.kinds" in graph["tsmlip.losses"]
    assert "tsmlip.data.io" in graph["tsmlip.config"]  # imported inside has_reference_atom_energies
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_package_imports_have_no_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
