"""The house rules, checked from the source: arrows run one way, no module-import cycles,
typed records instead of free-form dicts, functions short enough to read at once.

Rooms: the runtime (``app`` without ``app.lab`` and the CLI), the lab (``app.lab``), the
CLI (``app.cli``, ``app.__main__``) and the toolchain (``models``). The CLI may use the
lab, the lab and the toolchain may use the runtime, the toolchain may use the lab; the
runtime uses neither.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("app", "models")
MAX_FUNCTION_LINES = 60
CLI_MODULES = {"app.cli", "app.__main__"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources() -> dict[str, ast.Module]:
    return {module_name(path): ast.parse(path.read_text(), str(path))
            for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def imports(tree: ast.Module, modules: set[str]) -> set[str]:
    """Project modules imported anywhere in ``tree`` (top level or inside functions)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # "from app.lab import bench" imports the module app.lab.bench
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        found |= {name for name in names if name in modules}
    return found


def graph() -> dict[str, set[str]]:
    trees = sources()
    modules = set(trees)
    return {name: imports(tree, modules) - {name} for name, tree in trees.items()}


def room(module: str) -> str:
    if module in CLI_MODULES:
        return "cli"
    if module == "app.lab" or module.startswith("app.lab."):
        return "lab"
    if module.startswith("models"):
        return "toolchain"
    return "runtime"


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


ALLOWED = {"runtime": {"runtime"}, "lab": {"runtime", "lab"},
           "toolchain": {"runtime", "lab", "toolchain"},
           "cli": {"runtime", "lab", "cli"}}


def test_arrows_run_one_way():
    wrong = [f"{src} ({room(src)}) imports {dst} ({room(dst)})"
             for src, targets in sorted(graph().items()) for dst in sorted(targets)
             if room(dst) not in ALLOWED[room(src)]]
    assert wrong == []


@pytest.mark.parametrize("module", ["app.config", "app.types"])
def test_config_and_types_import_no_stage(module):
    assert graph()[module] <= {"app.paths", "app.types"}


def test_no_free_form_extras():
    hits = [f"{name}:{node.lineno}" for name, tree in sources().items()
            for node in ast.walk(tree)
            if isinstance(node, (ast.Attribute, ast.Name, ast.arg))
            and "extras" in {getattr(node, "attr", None), getattr(node, "id", None),
                             getattr(node, "arg", None)}]
    assert hits == []


def test_functions_are_short():
    long = [f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
            for name, tree in sources().items() for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == []
