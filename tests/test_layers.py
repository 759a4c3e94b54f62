"""The shape of the code: `subscribers/` is the lower layer and never
imports `pipeline/`, and no module imports itself back through others."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pipeline", "subscribers")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path, known: dict[str, Path], *, at_import_time: bool) -> set[str]:
    """The project modules ``path`` imports: all of them, or only those
    imported when it is imported (not inside functions or TYPE_CHECKING)."""

    def targets(node: ast.Import | ast.ImportFrom) -> set[str]:
        if isinstance(node, ast.Import):
            names = {alias.name for alias in node.names}
        else:
            base = node.module or ""
            names = {f"{base}.{alias.name}" for alias in node.names} | {base}
        out = set()
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                out.add(name)
        return out

    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                found.update(targets(node))
            elif (isinstance(node, ast.If) and _is_type_checking(node)) or isinstance(
                node, ast.FunctionDef | ast.AsyncFunctionDef
            ):
                continue  # not run when the module is imported
            elif isinstance(node, ast.ClassDef | ast.If | ast.Try | ast.With):
                for field in ("body", "orelse", "finalbody", "handlers"):
                    for child in getattr(node, field, []):
                        visit(child.body if isinstance(child, ast.ExceptHandler) else [child])

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not at_import_time and isinstance(node, ast.Import | ast.ImportFrom):
            found.update(targets(node))
    if at_import_time:
        visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return found


def test_subscribers_never_imports_pipeline():
    known = modules()
    wrong = {
        name: sorted(t for t in imports(path, known, at_import_time=False) if t.startswith("pipeline"))
        for name, path in known.items()
        if name.startswith("subscribers")
    }
    assert {name: found for name, found in wrong.items() if found} == {}
    # The check sees lazy imports too: the CLI imports the store inside commands.
    assert "subscribers.store" in imports(known["pipeline.cli.subscribers"], known, at_import_time=False)


def test_no_import_cycles():
    known = modules()
    graph = {name: imports(path, known, at_import_time=True) - {name} for name, path in known.items()}
    # A package's own __init__ importing its modules, and a module importing
    # its package's __init__ for a sibling's name, is the usual re-export:
    # the edge from a module to its own package does not count.
    for name, edges in graph.items():
        graph[name] = {e for e in edges if not name.startswith(e + ".")}
    assert "subscribers.ledger" in graph["pipeline.delivery"]  # the graph sees real imports
    cycles = []
    state: dict[str, int] = {}

    def walk(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt) :], nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                walk(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name, [name])
    assert cycles == []


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_is_over_400_lines(name):
    lines = modules()[name].read_text(encoding="utf-8").count("\n")
    assert lines <= 400, f"{name} has {lines} lines: it is doing more than one job"
