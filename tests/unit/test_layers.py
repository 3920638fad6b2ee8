"""ezmsg_lab's modules import each other without a cycle, and the model stays at the bottom.

Every import counts: module level, inside functions (lazy imports) and under
``if TYPE_CHECKING:`` alike, since a cycle of files is a cycle whichever way it is
imported. A package's ``__init__`` counts for the imports it makes itself, not as the
parent of each of its modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import ezmsg_lab

ROOT = Path(ezmsg_lab.__file__).parent
PACKAGE = "ezmsg_lab"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The ezmsg_lab modules ``name`` imports."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.add(sub if sub in known else target)
    out.discard(name)
    return {m for m in out if m in known}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (as a path of module names), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_is_read() -> None:
    graph = _graph()
    # The checks below would pass on an empty graph; make sure edges are found.
    assert "ezmsg_lab.services.settings" in graph["ezmsg_lab.lab"]
    assert "ezmsg_lab.runtime.compat" in graph["ezmsg_lab.runtime.cleanup"]
    assert "ezmsg_lab.model.listeners" in graph["ezmsg_lab.model.settings_store"]


def test_no_import_cycle_among_ezmsg_lab_modules() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


# Each layer may import only the layers listed below it (errors is everyone's leaf).
BELOW = {
    "model": {"errors", "model"},
    "runtime": {"errors", "model", "runtime"},
    "feeds": {"errors", "model", "runtime", "feeds"},
    "widgets": {"errors", "model", "widgets"},
    # The experiment drivers and their statistics run on a Bench the experiments
    # service provides: no ezmsg, no feeds, no services.
    "experiments": {"errors", "model", "experiments"},
    # Recordings are pure format code: no ezmsg, no control loop (the graph widget only
    # for drawing a stored topology).
    "recording": {"errors", "model", "widgets", "recording"},
}


def test_layers_point_one_way() -> None:
    for name, deps in _graph().items():
        layer = name.split(".")[1] if "." in name else None
        if layer not in BELOW:
            continue
        bad = sorted(d for d in deps if d == PACKAGE or d.split(".")[1] not in BELOW[layer])
        assert not bad, f"{name} ({layer}) imports {bad}: allowed are {sorted(BELOW[layer])}"
