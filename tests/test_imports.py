"""How rlnas's modules import one another: no cycles, and a light ``import rlnas``.

The cycle check reads every module's source (no import runs): each ``import`` statement,
at the top of a module, inside a function or under ``TYPE_CHECKING``, is an edge to the
rlnas module it names. A strongly connected group of two or more modules is a cycle.

The lazy-import guard starts a fresh interpreter, imports the framework-free parts and
checks that neither TensorFlow, Keras nor MLflow was loaded on the way.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import rlnas

ROOT = Path(rlnas.__file__).parent
HEAVY = ("tensorflow", "keras", "mlflow")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """rlnas module -> the rlnas modules it imports anywhere in its source."""
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolve against this module's package
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                for alias in node.names:  # `from pkg import mod` names the module pkg.mod
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if sub in modules else base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of two or more modules (Tarjan), each as one cycle's path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_path(graph, group) for group in groups]


def _path(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """One closed path through ``group``, from its first module back to it (breadth-first)."""
    start = min(group)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & group):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if w not in came_from:
                    came_from[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {sorted(group)}")  # a strongly connected group has one


def test_cycle_finder_names_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_graph_resolves_from_imports_to_modules() -> None:
    graph = import_graph()
    assert "rlnas.space" in graph["rlnas.trial"]
    assert "rlnas.errors" in graph["rlnas.space"]
    assert "rlnas.factory" in graph["rlnas.envs"]  # `from rlnas import factory`, in a function


def test_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" -> ".join(c) for c in found)


LIGHT_IMPORTS = (
    "rlnas",
    "rlnas.config",
    "rlnas.space",
    "rlnas.strategies.random_search",
    "rlnas.search",
    "rlnas.nb201.evaluator",
    "rlnas.nb201.command",
    "rlnas.factory",
)


def heavy_modules_loaded_by(names: tuple[str, ...]) -> dict[str, list[str]]:
    """Import ``names`` in order in a fresh interpreter: name -> heavy modules it loaded."""
    code = (
        "import importlib, json, sys\n"
        "found = {}\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        f"    found[name] = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(json.dumps(found))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT.parent
    )
    assert run.returncode == 0, run.stderr[-2000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    loaded: set[str] = set()
    out = {}
    for name in names:  # what each import added to what the earlier ones had loaded
        out[name] = [m for m in found[name] if m not in loaded]
        loaded.update(found[name])
    return out


def test_guard_sees_a_framework_import() -> None:
    assert "keras" in heavy_modules_loaded_by(("rlnas", "rlnas.keras_build"))["rlnas.keras_build"]


def test_framework_free_imports_load_no_framework() -> None:
    """The core and the NAS-Bench-201 table mode import neither TensorFlow, Keras nor MLflow."""
    heavy = {k: v for k, v in heavy_modules_loaded_by(LIGHT_IMPORTS).items() if v}
    assert not heavy, "; ".join(f"import {k} loaded {', '.join(v)}" for k, v in heavy.items())
