"""The package's import graph: no circles, and dependencies that point down to the runtime.

Read from the source as text (ast), so a circle is found whether its imports run at module load, inside
a function (a lazy import that hides a circle at load time still ties the two modules together), or
only under `TYPE_CHECKING`. Nothing is imported or run.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _package_dirs() -> dict[str, Path]:
    """`ner_export.<pkg>` -> folder, from pyproject's setuptools package-dir (the map the install uses)."""
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[tool.setuptools.package-dir]", 1)[1].split("\n[", 1)[0]
    return {name: ROOT / folder for name, folder in re.findall(r'^"([\w.]+)" = "([\w/]+)"', section, re.M)}


def _modules() -> dict[str, Path]:
    """Every module of the project by dotted name (tests, benchmark results and samples aside)."""
    found: dict[str, Path] = {}
    for package, folder in _package_dirs().items():
        for path in folder.rglob("*.py"):
            relative = path.relative_to(folder).with_suffix("")
            parts = [p for p in relative.parts if p != "__init__"]
            if any(part in {"sample", "results"} for part in parts):
                continue
            found[".".join([package, *parts])] = path
    return found


def _imported(module: str, path: Path, known: set[str]) -> Iterator[str]:
    """Project modules that `module` imports anywhere in its file (top level, functions, TYPE_CHECKING)."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # `from pkg import name` imports pkg.name when that is a module, else pkg itself
            targets = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in known else prefix for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` where c is a name, not a module
                target = target.rpartition(".")[0]
            if target and target != module:
                yield target


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: set(_imported(name, path, known)) for name, path in modules.items()}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    circles.append(sorted(component))
    return circles


def test_the_graph_is_read():
    graph = _graph()
    assert "ner_export.runtime.model" in graph
    assert "ner_export.runtime.errors" in graph["ner_export.runtime.model"] or any(
        "ner_export.runtime.errors" in graph[name] for name in graph if name.startswith("ner_export.runtime.")
    )


def test_the_circle_finder_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _circles(graph) == [["a", "b", "c"]]


def test_no_import_circles():
    circles = _circles(_graph())
    assert not circles, "import circles (each line one circle):\n" + "\n".join(" <-> ".join(c) for c in circles)


# What each layer may import from the project: the runtime is the base; services and workers build on it only.
ALLOWED = {
    "ner_export.runtime": {"ner_export.runtime"},
    "ner_export.inputs": {"ner_export.runtime", "ner_export.inputs"},
    "ner_export.serve": {"ner_export.runtime", "ner_export.serve"},
    "ner_export.annotate": {"ner_export.runtime", "ner_export.inputs", "ner_export.annotate"},
}


def _layer(module: str) -> str:
    return ".".join(module.split(".")[:2])


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_dependencies_point_down(layer):
    graph = _graph()
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        if _layer(module) == layer
        for target in targets
        if _layer(target) not in ALLOWED[layer]
    )
    assert not wrong, "\n".join(wrong)


def test_every_package_ships_in_the_wheel():
    """Each folder with an `__init__.py` under a mapped package is listed in pyproject's `packages`."""
    text = (ROOT / "pyproject.toml").read_text()
    listed = set(re.findall(r'^\s+"(ner_export[\w.]*)",$', text.split("packages = [", 1)[1].split("]", 1)[0], re.M))
    packages = {name.rpartition(".")[0] if path.name == "__init__.py" else None for name, path in _modules().items()}
    packages |= {name for name, path in _modules().items() if path.name == "__init__.py"}
    missing = sorted(p for p in packages if p and p not in listed)
    assert not missing, f"packages missing from pyproject [tool.setuptools] packages: {missing}"
