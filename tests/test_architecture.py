"""The house rules, checked from the source: arrows run one way, no module-import cycles,
typed records instead of free-form dicts, functions short enough to read at once.

Rooms: the runtime (``app`` without ``app.lab``, ``app.toolchain`` and the CLI), the lab
(``app.lab``), the CLI (``app.cli``, ``app.__main__``) and the toolchain (``app.toolchain``
and the ``models`` shim). The CLI may use the lab and the toolchain, the lab and the
toolchain may use the runtime, the toolchain may use the lab; the runtime uses neither.

Wings of the runtime: ``stages`` import only each other and types/config/paths/logs;
the ``window`` imports no source and no output; only the composition root (``factory``)
and the stages' own modules construct concrete stages. No runtime class is over 250 lines.
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


def absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a (possibly relative) ``from X import`` names."""
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[:len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports(module: str, tree: ast.Module, modules: set[str], is_package: bool) -> set[str]:
    """Project modules imported anywhere in ``tree`` (top level or inside functions)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = absolute(module, is_package, node)
            # "from app.lab import bench" imports the module app.lab.bench
            names = [f"{target}.{alias.name}" for alias in node.names] + [target]
        else:
            continue
        found |= {name for name in names if name in modules}
    return found


def graph() -> dict[str, set[str]]:
    trees = sources()
    modules = set(trees)
    packages = {name for name in modules if (ROOT / name.replace(".", "/")).is_dir()}
    return {name: imports(name, tree, modules, name in packages) - {name}
            for name, tree in trees.items()}


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def room(module: str) -> str:
    if module in CLI_MODULES:
        return "cli"
    if within(module, "app.lab"):
        return "lab"
    if within(module, "app.toolchain") or within(module, "models"):
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
           "cli": {"runtime", "lab", "cli", "toolchain"}}


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


MAX_CLASS_LINES = 250
STAGE_SHARED = {"app.types", "app.config", "app.paths", "app.logs"}
# Concrete stages: only the composition root builds them (the lab and toolchain measure
# them one by one, so they may too).
CONCRETE_STAGES = {"BlazeFaceDetector", "HogDetector", "CnnLandmarks", "Dlib68Landmarks",
                   "TfliteEmbedder", "PbEmbedder", "Tracker", "LandmarkSmoother", "CutDetector"}
COMPOSITION_ROOT = {"app.factory"}


def test_stages_import_only_stages_and_shared_types():
    wrong = [f"{src} imports {dst}" for src, targets in sorted(graph().items())
             if within(src, "app.stages") for dst in sorted(targets)
             if not within(dst, "app.stages") and dst not in STAGE_SHARED]
    assert wrong == []


def test_window_imports_no_source_or_output():
    wrong = [f"{src} imports {dst}" for src, targets in sorted(graph().items())
             if within(src, "app.window") for dst in sorted(targets)
             if within(dst, "app.sources") or within(dst, "app.outputs")]
    assert wrong == []


def test_only_the_composition_root_constructs_stages():
    wrong = [f"{name}:{node.lineno} builds {node.func.id}"
             for name, tree in sources().items()
             if room(name) == "runtime" and name not in COMPOSITION_ROOT
             and not within(name, "app.stages")
             for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
             and node.func.id in CONCRETE_STAGES]
    assert wrong == []


def test_runtime_classes_are_small():
    big = [f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
           for name, tree in sources().items() if room(name) == "runtime"
           for node in ast.walk(tree)
           if isinstance(node, ast.ClassDef)
           and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES]
    assert big == []
