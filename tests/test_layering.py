"""The layering of CONTRIBUTING.md, checked on the source: who may import whom.

``inference`` knows nothing of HTTP, SQL or queues; ``api`` and ``worker`` never import
each other; the server never depends on the client package.
"""

from __future__ import annotations

import ast
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
    "client/vihub_client": {"torch", "pyro", "inference", "common", "store", "api", "worker", "fastapi",
                            "sqlalchemy"},
}


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
