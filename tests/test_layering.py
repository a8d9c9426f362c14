"""The layering of CONTRIBUTING.md, checked on the source: who may import whom, and no
import cycles.

``inference`` knows nothing of HTTP, SQL or queues; ``api`` and ``worker`` never import
each other; the server never depends on the client package and the client never on the
server (the one ``vihub`` command is composed through the ``vihub.commands`` entry-point
group, not by importing each other). Among the project's own modules the imports form no
cycle: a cycle makes import order matter and hides which module owns what.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "inference": {"fastapi", "starlette", "celery", "kombu", "sqlalchemy", "alembic", "common", "store", "api",
                  "worker", "vihub", "vihub_client", "httpx"},
    # The kernel shared by api, worker, store and vihub: it imports none of them, no web
    # or SQL framework, and no torch/pyro (the worker's parent process never loads torch).
    "common": {"fastapi", "starlette", "sqlalchemy", "alembic", "torch", "pyro", "store", "api", "worker",
               "vihub", "vihub_client"},
    "store": {"fastapi", "starlette", "celery", "api", "worker", "vihub", "vihub_client"},
    "api": {"worker", "vihub_client"},
    "worker": {"api", "fastapi", "starlette", "vihub_client"},
    # The client is installable alone: HTTP only, and it finds the server's commands
    # through entry points, never by importing the server package.
    "client/vihub_client": {"torch", "pyro", "inference", "common", "store", "api", "worker", "vihub", "fastapi",
                            "sqlalchemy"},
}

# Folder -> the import name of the package it holds: the modules whose import graph must
# be acyclic.
PACKAGES = {"inference": "inference", "common": "common", "store": "store", "api": "api", "worker": "worker",
            "vihub": "vihub", "client/vihub_client": "vihub_client"}


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_respect_the_layering(package: str) -> None:
    files = sorted((REPO / package).rglob("*.py"))
    assert files, f"no sources under {package}"
    offenders = {
        str(path.relative_to(REPO)): sorted(_imported_roots(path) & FORBIDDEN[package])
        for path in files
        # Catalog model sources are user-language text (pyro/torch only), checked elsewhere.
        if _imported_roots(path) & FORBIDDEN[package]
    }
    assert not offenders, f"{package} imports what its layer may not: {offenders}"


# ---------------------------------------------------------------------------------------
# Import cycles


def project_modules(repo: Path = REPO) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package) for every module of the project."""
    modules = {}
    for folder, package in PACKAGES.items():
        for path in sorted((repo / folder).rglob("*.py")):
            parts = [package, *path.relative_to(repo / folder).with_suffix("").parts]
            is_package = parts[-1] == "__init__"
            modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth (function-level imports count: they run too),
    except those under ``if TYPE_CHECKING:``, which never run."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def import_graph(modules: dict[str, tuple[Path, bool]]) -> dict[str, set[str]]:
    """Module -> the project modules it imports.

    ``from a.b import c`` points at module ``a.b.c`` when there is one, else at ``a.b``
    (``c`` is a name defined in it); ``import a.b.c`` points at the deepest existing module
    of the name. The parent packages a dotted import initialises on the way are not edges:
    every submodule "imports" its package's ``__init__`` that way, and counting that would
    call every re-exporting ``__init__`` a cycle.
    """

    def deepest(name: str) -> str | None:
        parts = name.split(".")
        for end in range(len(parts), 0, -1):
            candidate = ".".join(parts[:end])
            if candidate in modules:
                return candidate
        return None

    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        edges: set[str] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _import_nodes(tree):
            if isinstance(node, ast.Import):
                targets = [deepest(alias.name) for alias in node.names]
            else:
                if node.level:
                    package = name if is_package else name.rpartition(".")[0]
                    base_parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(base_parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else deepest(base)
                    for alias in node.names
                ]
            edges.update(t for t in targets if t is not None and t != name)
        graph[name] = edges
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
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
                if child not in graph:
                    continue
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
                    components.append(sorted(component))
    return sorted(components)


def test_the_cycle_finder_finds_cycles() -> None:
    # The checker itself: a cycle through a function-level import and a relative import is
    # found, a TYPE_CHECKING-only import and a parent package's __init__ are not edges.
    graph = {"a": {"a.b"}, "a.b": {"a.c"}, "a.c": {"a.b"}, "d": {"a"}, "e": set()}
    assert import_cycles(graph) == [["a.b", "a.c"]]
    assert import_cycles({"x": {"y"}, "y": {"z"}, "z": {"x"}, "w": {"x"}}) == [["x", "y", "z"]]
    assert import_cycles({"x": {"y"}, "y": set()}) == []


def test_the_import_graph_reads_every_kind_of_import(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from pkg.a import thing\n")
    (package / "a.py").write_text("thing = 1\n\ndef later():\n    from . import b\n")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import c\nimport pkg.a\n")
    (package / "c.py").write_text("from .b import nothing\nfrom pkg import a as _a\n")
    modules = {"pkg": (package / "__init__.py", True), **{
        f"pkg.{n}": (package / f"{n}.py", False) for n in ("a", "b", "c")}}
    graph = import_graph(modules)
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}, "pkg.c": {"pkg.a", "pkg.b"}}
    assert import_cycles(graph) == [["pkg.a", "pkg.b"]]


def test_project_modules_import_no_cycle() -> None:
    modules = project_modules()
    assert {"inference.results.formats", "vihub.cli", "vihub_client.cli"} <= set(modules)
    cycles = import_cycles(import_graph(modules))
    assert not cycles, "import cycles among project modules (break each, e.g. by moving what both " \
                       f"need into a third module): {cycles}"
