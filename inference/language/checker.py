"""Static check of a parsed source against the model-language whitelist.

Runs before compilation: counts nodes, bounds nesting depth, refuses every syntax node
outside the subset (with the reason and the allowed alternative), dunder and private
names, forbidden builtins, ``**kwargs`` calls and f-string format specs that could
build huge strings.
"""

from __future__ import annotations

import ast

from .errors import ForbiddenConstruct, LimitExceeded
from .limits import MAX_AST_DEPTH, Limits
from .policy import FORBIDDEN_NAMES, SAFE_FORMAT_SPEC

_ALLOWED = (
    ast.Module,
    ast.FunctionDef,
    ast.Return,
    ast.Assign,
    ast.AugAssign,
    ast.AnnAssign,
    ast.For,
    ast.If,
    ast.With,
    ast.Expr,
    ast.Pass,
    ast.Break,
    ast.Continue,
    ast.Import,
    ast.ImportFrom,
    ast.Assert,
    ast.BoolOp,
    ast.BinOp,
    ast.UnaryOp,
    ast.Lambda,
    ast.IfExp,
    ast.Dict,
    ast.List,
    ast.Tuple,
    ast.ListComp,
    ast.DictComp,
    ast.GeneratorExp,
    ast.Compare,
    ast.Call,
    ast.JoinedStr,
    ast.FormattedValue,
    ast.Constant,
    ast.Attribute,
    ast.Subscript,
    ast.Name,
    ast.Slice,
    ast.Load,
    ast.Store,
    ast.boolop,
    ast.operator,
    ast.unaryop,
    ast.cmpop,
    ast.comprehension,
    ast.arguments,
    ast.arg,
    ast.keyword,
    ast.alias,
    ast.withitem,
    ast.Starred,
    ast.ClassDef,
    ast.Global,
)

_REFUSED: dict[str, str] = {
    "While": "`while` loops are not allowed; use `for i in range(n)` or `for t in pyro.markov(range(n))`",
    "Try": "`try`/`except` is not allowed; an error stops the program and is reported with its line",
    "TryStar": "`try`/`except*` is not allowed; an error stops the program and is reported with its line",
    "AsyncFunctionDef": "async functions are not allowed; use `def`",
    "AsyncFor": "`async for` is not allowed; use `for`",
    "AsyncWith": "`async with` is not allowed; use `with pyro.plate(...)`",
    "Await": "`await` is not allowed",
    "Nonlocal": "`nonlocal` is not allowed; pass values as arguments and return results",
    "Delete": "`del` is not allowed; rebind the name instead",
    "Raise": '`raise` is not allowed; use `assert condition, "message"`',
    "Match": "`match` is not allowed; use `if`/`elif`/`else`",
    "Yield": "generators (`yield`) are not allowed; return a value or a list",
    "YieldFrom": "generators (`yield from`) are not allowed; return a value or a list",
    "NamedExpr": "the walrus operator `:=` is not allowed; assign on its own line",
    "Set": "set literals are not allowed; use a list or a tuple",
    "SetComp": "set comprehensions are not allowed; use a list comprehension",
    "Del": "`del` is not allowed",
    "TypeAlias": "`type` aliases are not allowed",
}


def _column(node: ast.AST) -> int | None:
    """1-based column, as editors count (``ast`` counts from 0)."""
    offset = getattr(node, "col_offset", None)
    return None if offset is None else offset + 1


def _refuse(node: ast.AST, message: str) -> ForbiddenConstruct:
    return ForbiddenConstruct(
        message,
        line=getattr(node, "lineno", None),
        col=_column(node),
    )


def check_tree(tree: ast.Module, limits: Limits) -> None:
    """Raise a ``ModelLanguageError`` for the first construct outside the subset."""
    count = 0
    bound = _bound_names(tree)
    exempt = _super_init_calls(tree)
    # iterative walk: a hostile source must not be able to blow the Python stack here
    stack: list[tuple[ast.AST, int, ast.AST | None]] = [(tree, 0, None)]
    while stack:
        node, depth, parent = stack.pop()
        count += 1
        if count > limits.max_ast_nodes:
            raise LimitExceeded(
                f"max_ast_nodes={limits.max_ast_nodes} exceeded: the source is too large",
                limit="max_ast_nodes",
                line=getattr(node, "lineno", None),
                col=_column(node),
            )
        if depth > MAX_AST_DEPTH:
            raise LimitExceeded(
                f"expressions and blocks may be nested at most {MAX_AST_DEPTH} deep",
                limit="max_ast_depth",
                line=getattr(node, "lineno", None),
                col=_column(node),
            )
        if id(node) not in exempt:  # `super().__init__`: the compiler checks its place
            _check_node(node, parent, bound)
        # children pushed in reverse: the walk is in source order, so the FIRST violation
        # in the file is the one reported
        for child in reversed(list(ast.iter_child_nodes(node))):
            stack.append((child, depth + 1, node))


def is_super_init(call: ast.AST) -> bool:
    """``super().__init__(...)`` or ``super(Cls, self).__init__(...)``."""
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
        return False
    f = call.func
    inner = f.value
    return (
        f.attr == "__init__"
        and isinstance(inner, ast.Call)
        and isinstance(inner.func, ast.Name)
        and inner.func.id == "super"
        and not inner.keywords
        and (not inner.args or (len(inner.args) == 2 and all(isinstance(a, ast.Name) for a in inner.args)))
    )


def _super_init_calls(tree: ast.Module) -> set[int]:
    out: set[int] = set()
    for node in ast.walk(tree):
        if is_super_init(node):
            # the attribute `.__init__` and the name `super`; the arguments are checked
            out.add(id(node.func))
            out.add(id(node.func.value))  # type: ignore[attr-defined]
            out.add(id(node.func.value.func))  # type: ignore[attr-defined]
    return out


def _bound_names(tree: ast.Module) -> set[str]:
    """Names the source binds itself (parameters, assignments, defs): a parameter
    called ``input`` or ``filter`` shadows the builtin, as in Python."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            out.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out.add(node.name)
    return out


def _check_node(node: ast.AST, parent: ast.AST | None, bound: frozenset | set = frozenset()) -> None:
    """One node of the source against the language: its type, then the rule of that type."""
    name = type(node).__name__
    if not isinstance(node, _ALLOWED):
        message = _REFUSED.get(
            name, f"`{name}` syntax is not allowed in the model language"
        )
        raise _refuse(node if hasattr(node, "lineno") else parent or node, message)
    if isinstance(node, ast.Name):
        _check_name(node, bound)
    elif isinstance(node, ast.Attribute):
        if node.attr.startswith("_"):
            raise _refuse(
                node,
                f"attribute `.{node.attr}` is not allowed: names starting with `_` are private "
                "or interpreter internals",
            )
        # attribute stores are checked at run time (instances of the source's classes,
        # PyroSample/PyroParam on a PyroModule's parameters)
    elif isinstance(node, ast.ClassDef):
        _check_class(node, parent)
    elif isinstance(node, ast.Global):
        if isinstance(parent, ast.Module):
            raise _refuse(node, "`global` only means something inside a function")
        for name in node.names:
            _check_identifier(node, name)
    elif isinstance(node, (ast.FunctionDef, ast.Lambda)):
        _check_function(node, parent)
    elif isinstance(node, ast.arg):
        _check_identifier(node, node.arg)
    elif isinstance(node, ast.Starred):
        if not (isinstance(parent, ast.Call) and node in parent.args):
            raise _refuse(
                node,
                "`*` unpacking is only allowed in call arguments (`f(*args)`); write the "
                "targets or items out explicitly",
            )
    elif isinstance(node, ast.keyword):
        if node.arg is not None:
            _check_identifier(parent or node, node.arg)
    elif isinstance(node, ast.alias):
        for part in node.name.split(".") + ([node.asname] if node.asname else []):
            _check_identifier(parent or node, part)
    elif isinstance(node, ast.Constant):
        if isinstance(node.value, bytes):
            raise _refuse(
                node, "bytes literals are not allowed; use numbers, strings or tensors"
            )
    elif isinstance(node, ast.comprehension):
        if node.is_async:
            raise _refuse(parent or node, "async comprehensions are not allowed")
    elif isinstance(node, ast.FormattedValue):
        _check_format_spec(node)


def _check_name(node: ast.Name, bound: frozenset | set) -> None:
    _check_identifier(node, node.id)
    if node.id in FORBIDDEN_NAMES and node.id not in bound:
        raise _refuse(
            node,
            f"`{node.id}` is not available in the model language ({FORBIDDEN_NAMES[node.id]}); "
            "use the torch/pyro functions and the builtins listed in docs/model-language.md",
        )


def _check_function(node: ast.FunctionDef | ast.Lambda, parent: ast.AST | None) -> None:
    if isinstance(node, ast.FunctionDef) and not (
        node.name == "__init__" and isinstance(parent, ast.ClassDef)
    ):
        _check_identifier(node, node.name)
    args = node.args
    if args.vararg is not None or args.kwarg is not None:
        raise _refuse(
            node,
            "`*args` and `**kwargs` parameters are not allowed; name every parameter",
        )
    for a in args.posonlyargs + args.args + args.kwonlyargs:
        _check_identifier(a, a.arg)


def _check_format_spec(node: ast.FormattedValue) -> None:
    spec = node.format_spec
    if spec is None:
        return
    if not (
        isinstance(spec, ast.JoinedStr)
        and all(
            isinstance(v, ast.Constant) and isinstance(v.value, str)
            for v in spec.values
        )
    ):
        raise _refuse(
            node, 'f-string format specs must be literal, e.g. f"{x:.3f}"'
        )
    text = "".join(v.value for v in spec.values)  # type: ignore[attr-defined]
    if not SAFE_FORMAT_SPEC.match(text):
        raise _refuse(
            node,
            f"f-string format spec {text!r} is not allowed; use a simple spec such as "
            "`.3f`, `>8` or `d` (width at most 99)",
        )


_CLASS_HINT = (
    "classes may subclass nn.Module, PyroModule or PyroModule[nn.<layer>] (or another class of "
    "the source) and hold methods (`def __init__(self, ...)`, `def forward(self, ...)`, ...)"
)


def _check_class(node: ast.ClassDef, parent: ast.AST | None) -> None:
    _check_identifier(node, node.name)
    if not isinstance(parent, ast.Module):
        raise _refuse(node, f"classes may only be defined at the top level of the source; {_CLASS_HINT}")
    if node.decorator_list:
        raise _refuse(node, "class decorators are not allowed")
    if node.keywords:
        raise _refuse(node, f"class keywords (metaclass=..., ...) are not allowed; {_CLASS_HINT}")
    for stmt in node.body:
        if isinstance(stmt, ast.FunctionDef):
            if stmt.decorator_list:
                raise _refuse(
                    stmt,
                    "method decorators (@property, @staticmethod, ...) are not allowed; write a "
                    "plain method and call it",
                )
            if not (stmt.args.posonlyargs + stmt.args.args):
                raise _refuse(stmt, f"method `{stmt.name}` needs `self` as its first parameter")
        elif isinstance(stmt, ast.Pass) or (
            isinstance(stmt, ast.Expr)
            and isinstance(stmt.value, ast.Constant)
            and isinstance(stmt.value.value, str)
        ):
            continue
        elif isinstance(stmt, ast.Assign) and all(isinstance(t, ast.Name) for t in stmt.targets):
            continue
        else:
            raise _refuse(
                stmt,
                f"a class body may hold methods, constants (`name = value`) and a docstring; {_CLASS_HINT}",
            )


def _check_identifier(node: ast.AST, name: str) -> None:
    if name.startswith("__"):
        raise _refuse(
            node,
            f"the name `{name}` is not allowed: names starting with `__` are interpreter internals",
        )
