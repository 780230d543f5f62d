"""The ``ingestion`` package has no import cycle among its modules' top-level imports.

Imports inside functions (deferred on purpose: heavy libraries, optional extras) and under ``TYPE_CHECKING`` do not
run at import time and are not counted. A cycle of module-level imports makes the import order matter, and usually
means a helper lives in the wrong module. The jobs are held to more: no cycle even through deferred imports (their
commands, runs and flow backfill once imported each other in a circle because the progress bar lived in a command).
"""

from __future__ import annotations

import ast
from pathlib import Path

import ingestion

PACKAGE = Path(ingestion.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _top_level_imports(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """Modules named by the module-level imports of ``tree`` (``if``/``try`` blocks included, TYPE_CHECKING not)."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                found.add(base)
                # ``from pkg import mod`` imports the submodule ``pkg.mod`` when there is one.
                found.update(f"{base}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If) and not _is_type_checking(node.test):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)

    visit(tree.body)
    return found


def _all_imports(tree: ast.Module) -> set[str]:
    """Modules named by every absolute import of ``tree``, deferred ones included."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def import_graph(under: str = "ingestion", deferred: bool = False) -> dict[str, set[str]]:
    """Each module of ``under`` -> the modules of ``under`` it imports (at module level, or anywhere)."""
    files = {m: p for p in PACKAGE.rglob("*.py") if (m := _module_name(p)) == under or m.startswith(f"{under}.")}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        named = _all_imports(tree) if deferred else _top_level_imports(tree, module, path.name == "__init__.py")
        graph[module] = {m for m in named if m in files and m != module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of modules (first == last), or None when it is acyclic."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_find_cycle_sees_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert "ingestion.jobs.engine" in graph and "ingestion.jobs.landing" in graph["ingestion.jobs.engine"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_jobs_have_no_import_cycle_even_through_deferred_imports() -> None:
    graph = import_graph("ingestion.jobs", deferred=True)
    assert "ingestion.jobs.progress" in graph["ingestion.jobs.runs"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
