"""Scopes of the closure compiler: which names a block binds, and where they live.

Names are resolved at compile time to local, enclosing or module-level (global) slots;
module names bound only to a namespace (``import torch``, the prelude) are static, so
``dist.Normal`` is looked up once at compile time.
"""

from __future__ import annotations

import ast
from typing import Any

from .attributes import Namespace
from .functions import MISSING
from .namespaces import MODULES, PRELUDE


class Scope:
    def __init__(self, kind: str, parent: Scope | None, names: set[str]) -> None:
        self.kind = kind  # "module", "function" or "comprehension"
        self.parent = (
            parent  # enclosing function/comprehension scope (None at module level)
        )
        self.names = names


def targets(node: ast.AST, out: set[str]) -> None:
    if isinstance(node, ast.Name):
        out.add(node.id)
    elif isinstance(node, (ast.Tuple, ast.List)):
        for elt in node.elts:
            targets(elt, out)


def bound_names(body: list[ast.stmt]) -> set[str]:
    """Names a block binds (not descending into nested functions/comprehensions)."""
    out: set[str] = set()

    def visit(stmts: list[ast.stmt]) -> None:
        for s in stmts:
            if isinstance(s, ast.Assign):
                for t in s.targets:
                    targets(t, out)
            elif isinstance(s, (ast.AugAssign, ast.AnnAssign)):
                targets(s.target, out)
            elif isinstance(s, ast.For):
                targets(s.target, out)
                visit(s.body)
                visit(s.orelse)
            elif isinstance(s, ast.If):
                visit(s.body)
                visit(s.orelse)
            elif isinstance(s, ast.With):
                for item in s.items:
                    if item.optional_vars is not None:
                        targets(item.optional_vars, out)
                visit(s.body)
            elif isinstance(s, (ast.FunctionDef, ast.ClassDef)):
                out.add(s.name)
            elif isinstance(s, (ast.Import, ast.ImportFrom)):
                for alias in s.names:
                    if alias.name == "*" and isinstance(s, ast.ImportFrom):
                        module = MODULES.get(s.module or "")
                        if module is not None:
                            out.update(name for name, _ in star_members(module))
                        continue
                    out.add(alias.asname or alias.name.split(".")[0])

    visit(body)
    return out


def static_bindings(body: list[ast.stmt]) -> dict[str, Any]:
    """Module names bound only to a namespace (prelude or import), never reassigned."""
    values: dict[str, Any] = dict(PRELUDE)
    rebound: set[str] = set()
    for s in body:
        if isinstance(s, ast.Import):
            for alias in s.names:
                if alias.asname:
                    values[alias.asname] = MODULES.get(alias.name, MISSING)
                else:
                    top = alias.name.split(".")[0]
                    values[top] = MODULES.get(top, MISSING)
        elif isinstance(s, ast.ImportFrom) and s.module in MODULES and not s.level:
            for alias in s.names:
                module = MODULES[s.module]
                if alias.name == "*":
                    values.update(star_members(module))
                    continue
                value = module.members.get(
                    alias.name, MODULES.get(f"{s.module}.{alias.name}", MISSING)
                )
                values[alias.asname or alias.name] = value
        else:
            rebound |= bound_names([s])
    return {
        k: v for k, v in values.items() if k not in rebound and type(v) is Namespace
    }


def star_members(module: Namespace) -> list[tuple[str, Any]]:
    """What ``from <module> import *`` binds: the namespace's public members."""
    return [(k, v) for k, v in module.members.items() if not k.startswith("_")]


def scope_names(scope: Scope | None) -> set[str]:
    out: set[str] = set()
    while scope is not None:
        out |= scope.names
        scope = scope.parent
    return out
