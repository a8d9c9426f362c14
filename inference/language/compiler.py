"""The closure compiler: turns a checked syntax tree into nested Python closures.

Every syntax node becomes a small Python function taking the current ``Frame``; names
are resolved to local / enclosing / global slots at compile time, attribute reads go
through a per-node cache of whitelisted (type, name) pairs, and every statement, loop
iteration and user-function call is charged to the per-call budget. No user text is
ever handed to ``exec``/``eval``/``compile``.
"""

from __future__ import annotations

import ast
import difflib
import operator
import types
from collections.abc import Callable
from typing import Any

import torch
from pyro.poutine.runtime import NonlocalExit

from . import classes, extras, guards
from .checker import is_super_init
from .attributes import (
    Namespace,
    attribute_rules,
    describe,
    get_attribute,
    is_context_manager,
)
from .errors import (
    ForbiddenConstruct,
    LimitExceeded,
    ModelLanguageError,
    ModelRuntimeError,
    UnknownName,
)
from .functions import (
    BREAK,
    CONTINUE,
    MISSING,
    RETURN,
    CallError,
    Frame,
    Unit,
    UserFunction,
)
from .limits import MAX_STRING_CHARS
from .namespaces import BUILTINS, MODULES, PRELUDE
from .policy import FORBIDDEN_NAMES, PYRO_PRIMITIVE_NAMES
from .runtime import RunState
from .runtime import counted as runtime_counted
from .scope import (
    Scope,
    bound_names,
    scope_names,
    star_members,
    static_bindings,
    targets,
)

Tensor = torch.Tensor
Module = torch.nn.Module
Distribution = torch.distributions.Distribution
Transform = torch.distributions.transforms.Transform
Evaluator = Callable[["Frame"], Any]

# exceptions that Pyro's machinery uses for control flow: never wrapped
_PASS_THROUGH = (NonlocalExit,)


# ----------------------------------------------------------------------------------
# operators with size guards


_BINOPS: dict[type, tuple[str, Callable, Callable]] = {
    ast.Add: ("add", operator.add, operator.iadd),
    ast.Sub: ("sub", operator.sub, operator.isub),
    ast.Mult: ("mul", operator.mul, operator.imul),
    ast.Div: ("div", operator.truediv, operator.itruediv),
    ast.FloorDiv: ("floordiv", operator.floordiv, operator.ifloordiv),
    ast.Mod: ("mod", operator.mod, operator.imod),
    ast.Pow: ("pow", operator.pow, operator.ipow),
    ast.MatMult: ("matmul", operator.matmul, operator.imatmul),
    ast.BitAnd: ("and", operator.and_, operator.iand),
    ast.BitOr: ("or", operator.or_, operator.ior),
    ast.BitXor: ("xor", operator.xor, operator.ixor),
    ast.LShift: ("lshift", operator.lshift, operator.ilshift),
    ast.RShift: ("rshift", operator.rshift, operator.irshift),
}


def make_binop_fn(kind: str, fn: Callable) -> Callable[[Any, Any, RunState], Any]:
    """``fn(a, b)`` with the size guards for ``kind``; returns f(a, b, run)."""
    check_pair = guards.check_pair
    py_guard = guards.py_binop_guard
    check_result = guards.check_result
    if kind == "matmul":

        def matmul(a: Any, b: Any, run: RunState) -> Any:
            if (
                isinstance(a, Tensor)
                and isinstance(b, Tensor)
                and guards.numel(a) * guards.numel(b) > run.max_elements
            ):
                guards.check_combined(torch.matmul, "`@`", (a, b), {})
            return fn(a, b)

        return matmul

    def binop(a: Any, b: Any, run: RunState) -> Any:
        ta = type(a)
        tb = type(b)
        if ta is float and tb is float:
            return fn(a, b)
        if isinstance(a, Tensor):
            if isinstance(b, Tensor):
                check_pair(a, b)
            elif tb is str or tb is list or tb is tuple:
                py_guard(kind, a, b)
            return fn(a, b)
        if isinstance(b, Tensor):
            if ta is str or ta is list or ta is tuple:
                # `"a" * torch.tensor(10**9)` repeats the string (Tensor.__index__)
                py_guard(kind, a, b)
                return check_result(fn(a, b))
            return fn(a, b)
        py_guard(kind, a, b)
        return check_result(fn(a, b))

    return binop


_UNARY = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Not: operator.not_,
    ast.Invert: operator.invert,
}

_CONTAINERS = (list, tuple, dict)

_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
    ast.In: guards.contains,
    ast.NotIn: lambda a, b: not guards.contains(a, b),
}


def _runtime_error(
    exc: BaseException, line: int | None, col: int | None, source_line: str
) -> ModelLanguageError:
    if isinstance(exc, RecursionError):
        return LimitExceeded(
            "the program nests calls or expressions too deeply (Python recursion limit)",
            limit="max_recursion_depth",
            line=line,
            col=col,
        )
    if isinstance(exc, CallError):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    if len(text) > 800:
        text = text[:800] + " ..."
    where = f" in `{source_line.strip()[:120]}`" if source_line.strip() else ""
    err = ModelRuntimeError(f"runtime error{where}: {text}", line=line, col=col)
    err.__cause__ = exc
    return err


# ----------------------------------------------------------------------------------
# the compiler


class Compiler:
    def __init__(self, unit: Unit) -> None:
        self.unit = unit
        self.lines = unit.source.splitlines()
        declared_global = {
            n for node in ast.walk(unit.tree) if isinstance(node, ast.Global) for n in node.names
        }
        self.module_names: set[str] = (
            set(PRELUDE) | bound_names(unit.tree.body) | declared_global
        )
        self.static_values = {
            k: v for k, v in static_bindings(unit.tree.body).items() if k not in declared_global
        }
        #: (class name, name of the method's first parameter) while compiling a method
        #: (class name, name of `self`, a cell that holds the class once it is created)
        self.method_context: tuple[str, str, list] | None = None

    # -- helpers ---------------------------------------------------------------------

    def error(self, cls: type, node: ast.AST, message: str) -> ModelLanguageError:
        return cls(
            message,
            line=getattr(node, "lineno", None),
            col=None
            if getattr(node, "col_offset", None) is None
            else node.col_offset + 1,
        )

    def source_line(self, line: int | None) -> str:
        if line is None or line < 1 or line > len(self.lines):
            return ""
        return self.lines[line - 1]

    # -- module ----------------------------------------------------------------------

    def compile_module(self) -> Evaluator:
        scope = Scope("module", None, self.module_names)
        return self.block(self.unit.tree.body, scope, module_level=True)

    # -- statements ------------------------------------------------------------------

    def block(
        self, stmts: list[ast.stmt], scope: Scope, module_level: bool = False
    ) -> Evaluator:
        compiled: list[tuple[Evaluator, int, int]] = []
        for s in stmts:
            if isinstance(s, ast.Pass):
                continue
            if (
                module_level
                and isinstance(s, ast.Expr)
                and isinstance(s.value, ast.Constant)
                and isinstance(s.value.value, str)
            ):
                continue  # docstring
            if module_level:
                self._check_module_statement(s)
            elif isinstance(s, (ast.Import, ast.ImportFrom)):
                raise self.error(
                    ForbiddenConstruct,
                    s,
                    "imports are only allowed at the top level of the source",
                )
            compiled.append((self.stmt(s, scope), s.lineno, s.col_offset + 1))
        fns = tuple(c[0] for c in compiled)
        positions = tuple((c[1], c[2]) for c in compiled)
        source_line = self.source_line

        def run_block(frame: Frame) -> Any:
            run = frame.run
            i = 0
            try:
                for i, fn in enumerate(fns):
                    run.steps += 1
                    if run.steps > run.max_steps:
                        raise run.step_limit()
                    r = fn(frame)
                    if r is not None:
                        return r
            except ModelLanguageError as err:
                line, col = positions[i]
                raise err.locate(line, col)
            except _PASS_THROUGH:
                raise
            except Exception as exc:
                line, col = positions[i]
                raise _runtime_error(exc, line, col, source_line(line)) from exc
            return None

        return run_block

    def _check_module_statement(self, s: ast.stmt) -> None:
        if isinstance(s, ast.Return):
            raise self.error(ForbiddenConstruct, s, "`return` outside a function")
        if isinstance(s, (ast.Break, ast.Continue)):
            raise self.error(ForbiddenConstruct, s, "`break`/`continue` outside a loop")
        # Pyro primitives at module level would run at compile time, outside any model.
        pending: list[ast.AST] = [s]
        while pending:
            node = pending.pop()
            if isinstance(node, (ast.FunctionDef, ast.Lambda)):
                pending.extend(
                    node.decorator_list if isinstance(node, ast.FunctionDef) else []
                )
                pending.extend(
                    node.args.defaults + [d for d in node.args.kw_defaults if d]
                )
                continue
            pending.extend(ast.iter_child_nodes(node))
            if isinstance(node, ast.Call):
                f = node.func
                name = None
                if (
                    isinstance(f, ast.Attribute)
                    and isinstance(f.value, ast.Name)
                    and f.value.id == "pyro"
                ):
                    name = f.attr
                if name in PYRO_PRIMITIVE_NAMES:
                    raise self.error(
                        ForbiddenConstruct,
                        node,
                        f"`pyro.{name}` may only be called inside a function (the model or guide), "
                        "not at the top level of the source",
                    )

    def stmt(self, s: ast.stmt, scope: Scope) -> Evaluator:
        method = getattr(self, "stmt_" + type(s).__name__, None)
        if method is None:  # pragma: no cover - the checker refuses these first
            raise self.error(
                ForbiddenConstruct, s, f"`{type(s).__name__}` is not allowed"
            )
        return method(s, scope)

    def stmt_Expr(self, s: ast.Expr, scope: Scope) -> Evaluator:
        ev = self.expr(s.value, scope)

        def expr_stmt(frame: Frame) -> None:
            ev(frame)

        return expr_stmt

    def stmt_Assign(self, s: ast.Assign, scope: Scope) -> Evaluator:
        value = self.expr(s.value, scope)
        if len(s.targets) == 1:
            target = s.targets[0]
            if isinstance(target, ast.Name) and target.id not in getattr(
                scope, "global_names", ()
            ):
                name = target.id

                def assign_name(frame: Frame) -> None:
                    frame.vars[name] = value(frame)

                return assign_name
            store = self.store(target, scope)

            def assign(frame: Frame) -> None:
                store(frame, value(frame))

            return assign
        stores = [self.store(t, scope) for t in s.targets]

        def assign_many(frame: Frame) -> None:
            v = value(frame)
            for st in stores:
                st(frame, v)

        return assign_many

    def stmt_AnnAssign(self, s: ast.AnnAssign, scope: Scope) -> Evaluator:
        if s.value is None:
            return lambda frame: None
        value = self.expr(s.value, scope)
        store = self.store(s.target, scope)

        def ann_assign(frame: Frame) -> None:
            store(frame, value(frame))

        return ann_assign

    def stmt_AugAssign(self, s: ast.AugAssign, scope: Scope) -> Evaluator:
        kind, _, inplace = _BINOPS[type(s.op)]
        op = make_binop_fn(kind, inplace)
        value = self.expr(s.value, scope)
        target = s.target
        if isinstance(target, ast.Name):
            load = self.name_load(target, scope)
            store_to = self.name_store(target.id, scope)

            def aug_name(frame: Frame) -> None:
                store_to(frame, op(load(frame), value(frame), frame.run))

            return aug_name
        if isinstance(target, ast.Subscript):
            obj_ev = self.expr(target.value, scope)
            key_ev = self.expr(target.slice, scope)

            def aug_item(frame: Frame) -> None:
                obj = obj_ev(frame)
                _check_item_store(obj)
                key = key_ev(frame)
                if isinstance(obj, Tensor):
                    guards.check_index(obj, key)
                    obj[key] = op(obj[key], value(frame), frame.run)
                else:
                    new = op(obj[key], value(frame), frame.run)
                    obj[key] = guards.checked_item_value(obj, key, new)

            return aug_item
        if isinstance(target, ast.Attribute):
            obj_ev = self.expr(target.value, scope)
            attr = target.attr

            def aug_attr(frame: Frame) -> None:
                obj = obj_ev(frame)
                current = get_attribute(obj, attr)
                classes.set_attribute(obj, attr, op(current, value(frame), frame.run))

            return aug_attr
        raise self.error(
            ForbiddenConstruct, s, "this augmented assignment target is not allowed"
        )

    def stmt_If(self, s: ast.If, scope: Scope) -> Evaluator:
        test = self.expr(s.test, scope)
        body = self.block(s.body, scope)
        orelse = self.block(s.orelse, scope) if s.orelse else None
        if orelse is None:

            def if_(frame: Frame) -> Any:
                if test(frame):
                    return body(frame)
                return None

            return if_

        def if_else(frame: Frame) -> Any:
            if test(frame):
                return body(frame)
            return orelse(frame)

        return if_else

    def stmt_For(self, s: ast.For, scope: Scope) -> Evaluator:
        iterable = self.expr(s.iter, scope)
        if isinstance(s.target, ast.Name):
            store = self.name_store(s.target.id, scope)
        else:
            store = self.store(s.target, scope)
        body = self.block(s.body, scope)
        orelse = self.block(s.orelse, scope) if s.orelse else None

        def for_(frame: Frame) -> Any:
            run = frame.run
            it = iter(iterable(frame))
            try:
                for item in it:
                    run.loop_iterations += 1
                    if run.loop_iterations > run.max_loop_iterations:
                        raise run.loop_limit()
                    store(frame, item)
                    r = body(frame)
                    if r is not None:
                        if r is BREAK:
                            return None
                        if r is CONTINUE:
                            continue
                        return r
            finally:
                # leave pyro.markov/plate iterators' handler stacks clean on break/error
                if type(it) is types.GeneratorType:
                    it.close()
            if orelse is not None:
                return orelse(frame)
            return None

        return for_

    def stmt_Break(self, s: ast.Break, scope: Scope) -> Evaluator:
        return lambda frame: BREAK

    def stmt_Continue(self, s: ast.Continue, scope: Scope) -> Evaluator:
        return lambda frame: CONTINUE

    def stmt_Return(self, s: ast.Return, scope: Scope) -> Evaluator:
        if s.value is None:

            def return_none(frame: Frame) -> Any:
                frame.ret = None
                return RETURN

            return return_none
        value = self.expr(s.value, scope)

        def return_(frame: Frame) -> Any:
            frame.ret = value(frame)
            return RETURN

        return return_

    def stmt_Assert(self, s: ast.Assert, scope: Scope) -> Evaluator:
        test = self.expr(s.test, scope)
        msg = self.expr(s.msg, scope) if s.msg is not None else None
        text = ast.unparse(s.test)[:200]

        def assert_(frame: Frame) -> None:
            if not test(frame):
                detail = (
                    f": {guards.to_text(msg(frame))[:500]}" if msg is not None else ""
                )
                raise ModelRuntimeError(f"assertion `{text}` failed{detail}")

        return assert_

    def stmt_With(self, s: ast.With, scope: Scope) -> Evaluator:
        body = self.block(s.body, scope)
        for item in reversed(s.items):
            body = self._with_item(item, body, scope)
        return body

    def _with_item(
        self, item: ast.withitem, body: Evaluator, scope: Scope
    ) -> Evaluator:
        ctx_ev = self.expr(item.context_expr, scope)
        store = (
            self.store(item.optional_vars, scope)
            if item.optional_vars is not None
            else None
        )

        def with_(frame: Frame) -> Any:
            mgr = ctx_ev(frame)
            if not is_context_manager(mgr):
                raise ForbiddenConstruct(
                    f"`with` is only allowed on pyro.plate, pyro.markov and poutine handlers, "
                    f"not on {describe(mgr)}"
                )
            cls = type(mgr)
            value = cls.__enter__(mgr)
            try:
                if store is not None:
                    store(frame, value)
                r = body(frame)
            except BaseException as exc:
                if not cls.__exit__(mgr, type(exc), exc, exc.__traceback__):
                    raise
                return None
            cls.__exit__(mgr, None, None, None)
            return r

        return with_

    def stmt_FunctionDef(self, s: ast.FunctionDef, scope: Scope) -> Evaluator:
        if s.decorator_list and scope.kind != "module":
            raise self.error(
                ForbiddenConstruct,
                s,
                "decorators are only allowed on top-level functions",
            )
        decorators = [self._decorator(d, scope) for d in s.decorator_list]
        make = self.function(s, scope, s.name, s.body, is_lambda=False)
        name = s.name
        unit = self.unit
        if scope.kind == "module":
            unit.function_nodes[name] = s

        def def_(frame: Frame) -> None:
            fn = make(frame)
            if scope.kind == "module":
                unit.functions[name] = fn
            value: Any = fn
            for dec in reversed(decorators):
                value = dec(frame)(value)
            frame.vars[name] = value

        return def_

    def stmt_ClassDef(self, s: ast.ClassDef, scope: Scope) -> Evaluator:
        """A class of the source: methods compiled like top-level functions (a class body
        is not a scope methods can see), bases and constants evaluated when it runs."""
        if scope.kind != "module":  # pragma: no cover - the checker refuses this first
            raise self.error(ForbiddenConstruct, s, "classes may only be defined at the top level")
        bases = [self.expr(b, scope) for b in s.bases]
        methods = []
        constants = []
        # this statement's class (not whatever the name is bound to later): the owner
        # of `super().__init__(...)` in its methods
        cell: list = []
        for stmt in s.body:
            if isinstance(stmt, ast.FunctionDef):
                first = (stmt.args.posonlyargs + stmt.args.args)[0].arg
                outer, self.method_context = self.method_context, (s.name, first, cell)
                try:
                    make = self.function(stmt, scope, f"{s.name}.{stmt.name}", stmt.body, is_lambda=False)
                finally:
                    self.method_context = outer
                methods.append((stmt.name, make))
            elif isinstance(stmt, ast.Assign):
                value = self.expr(stmt.value, scope)
                constants.append(([t.id for t in stmt.targets], value))  # type: ignore[attr-defined]
        name = s.name
        unit = self.unit

        def class_(frame: Frame) -> None:
            base_values = [b(frame) for b in bases]
            consts: dict[str, Any] = {}
            for names, value in constants:
                v = value(frame)
                for n in names:
                    consts[n] = v
            cls = classes.UserClass(
                name, base_values, {m: make(frame) for m, make in methods}, consts
            )
            unit.classes[name] = cls
            cell[:] = [cls]
            frame.vars[name] = cls

        return class_

    def _super_init(self, e: ast.Call, scope: Scope) -> Evaluator:
        if self.method_context is None:
            raise self.error(
                ForbiddenConstruct, e, "`super().__init__(...)` may only be called in a method of a class"
            )
        class_name, self_name, cell = self.method_context
        inner = e.func.value  # type: ignore[attr-defined]
        if inner.args and (inner.args[0].id != class_name or inner.args[1].id != self_name):
            raise self.error(
                ForbiddenConstruct, e, f"write `super().__init__(...)` (or `super({class_name}, {self_name})`)"
            )
        load_self = self.name_load(ast.Name(id=self_name, ctx=ast.Load(), lineno=e.lineno, col_offset=e.col_offset), scope)
        args = tuple(self.expr(a, scope) for a in e.args)
        kw = tuple((k.arg, self.expr(k.value, scope)) for k in e.keywords)
        unit = self.unit
        if any(isinstance(a, ast.Starred) for a in e.args) or any(k.arg is None for k in e.keywords):
            raise self.error(ForbiddenConstruct, e, "pass the arguments of super().__init__ explicitly")

        def super_init(frame: Frame) -> None:
            owner = cell[0] if cell else unit.classes[class_name]
            obj = load_self(frame)
            if classes.user_class_of(obj) is None:
                raise ForbiddenConstruct("super().__init__() needs an instance of the class as `self`")
            owner.base_init(owner, obj, [a(frame) for a in args], {k: v(frame) for k, v in kw})

        return super_init

    def _decorator(self, d: ast.expr, scope: Scope) -> Evaluator:
        target = d.func if isinstance(d, ast.Call) else d
        ok = (isinstance(target, ast.Name) and target.id == "config_enumerate") or (
            isinstance(target, ast.Attribute)
            and (
                target.attr == "config_enumerate"
                or (isinstance(target.value, ast.Name) and target.value.id == "poutine")
            )
        )
        if isinstance(d, ast.Call) and d.args:
            ok = ok and all(isinstance(a, ast.Constant) for a in d.args)
        if not ok:
            raise self.error(
                ForbiddenConstruct,
                d,
                "only `@config_enumerate`, `@config_enumerate(default=...)` and `@poutine.<handler>(...)` "
                "decorators are allowed",
            )
        ev = self.expr(d, scope)

        def decorator(frame: Frame) -> Any:
            value = ev(frame)
            # the syntax was checked above; every value reachable is whitelisted, so
            # applying it to a function is no more than calling it with one
            if not callable(value):
                raise ForbiddenConstruct(
                    f"{describe(value)} cannot be used as a decorator"
                )
            return value

        return decorator

    def function(
        self,
        node: ast.FunctionDef | ast.Lambda,
        scope: Scope,
        name: str,
        body_nodes: Any,
        is_lambda: bool,
    ) -> Callable[[Frame], UserFunction]:
        args = node.args
        params = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
        if len(set(params)) != len(params):
            raise self.error(ForbiddenConstruct, node, "duplicate parameter names")
        kwonly = {a.arg for a in args.kwonlyargs}
        positional = [a.arg for a in args.posonlyargs + args.args]
        default_evs: list[tuple[str, Evaluator]] = []
        for p, d in zip(
            positional[len(positional) - len(args.defaults) :], args.defaults
        ):
            default_evs.append((p, self.expr(d, scope)))
        for a, d in zip(args.kwonlyargs, args.kw_defaults):
            if d is not None:
                default_evs.append((a.arg, self.expr(d, scope)))
        if is_lambda:
            fscope = Scope(
                "function", scope if scope.kind != "module" else None, set(params)
            )
            body = self.expr(body_nodes, fscope)
        else:
            declared = _global_names(body_nodes)
            fscope = Scope(
                "function",
                scope if scope.kind != "module" else None,
                (set(params) | bound_names(body_nodes)) - declared,
            )
            fscope.global_names = declared  # type: ignore[attr-defined]
            body = self.block(body_nodes, fscope)
        unit = self.unit
        line = node.lineno
        nested = scope.kind != "module"

        def make(frame: Frame) -> UserFunction:
            defaults = {p: ev(frame) for p, ev in default_evs}
            return UserFunction(
                unit,
                name,
                params,
                defaults,
                kwonly,
                body,
                frame if nested else None,
                is_lambda,
                line,
            )

        return make

    def stmt_Import(self, s: ast.Import, scope: Scope) -> Evaluator:
        bindings: list[tuple[str, Any]] = []
        for alias in s.names:
            module = MODULES.get(alias.name)
            if module is None and alias.asname and extras.is_settings_module(alias.name):
                bindings.append((alias.asname, extras.SettingsOnly(alias.name)))
                continue
            if module is None and not alias.asname and extras.is_settings_module(alias.name):
                module = MODULES["pyro"] if alias.name.startswith("pyro.") else MODULES["torch"]
            if module is None:
                raise self.error(ForbiddenConstruct, s, _import_refusal(alias.name))
            if alias.asname:
                bindings.append((alias.asname, module))
            else:
                top = alias.name.split(".")[0]
                bindings.append((top, MODULES[top]))
        return _binder(bindings)

    def stmt_ImportFrom(self, s: ast.ImportFrom, scope: Scope) -> Evaluator:
        if s.module == "__future__":
            return lambda frame: None
        module = MODULES.get(s.module or "") if not s.level else None
        if module is None and not s.level and extras.is_settings_module(s.module or ""):
            if any(alias.name == "*" for alias in s.names):
                raise self.error(ForbiddenConstruct, s, _import_refusal(s.module or ""))
            settings_only = [
                (alias.asname or alias.name, extras.SettingsOnly(f"{s.module}.{alias.name}"))
                for alias in s.names
            ]
            return _binder(settings_only)
        if module is None:
            raise self.error(
                ForbiddenConstruct,
                s,
                _import_refusal(("." * s.level) + (s.module or "")),
            )
        bindings = []
        for alias in s.names:
            if alias.name == "*":
                bindings.extend(star_members(module))
                continue
            value = module.members.get(alias.name, MISSING)
            if value is MISSING:
                value = MODULES.get(f"{s.module}.{alias.name}", MISSING)
            if value is MISSING and extras.is_settings_module(s.module or ""):
                value = extras.SettingsOnly(f"{s.module}.{alias.name}")
            if value is MISSING:
                close = difflib.get_close_matches(alias.name, list(module.members), n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise self.error(
                    UnknownName,
                    s,
                    f"`{s.module}.{alias.name}` is not available in the model language{hint}",
                )
            bindings.append((alias.asname or alias.name, value))
        return _binder(bindings)

    def stmt_Global(self, s: ast.Global, scope: Scope) -> Evaluator:
        return lambda frame: None  # resolved at compile time (Scope.global_names)

    def name_store(self, name: str, scope: Scope) -> Callable[[Frame, Any], None]:
        if name in getattr(scope, "global_names", ()):
            g = self.unit.globals

            def store_global(frame: Frame, v: Any) -> None:
                g[name] = v

            return store_global

        def store_name(frame: Frame, v: Any) -> None:
            frame.vars[name] = v

        return store_name

    # -- assignment targets ------------------------------------------------------------

    def store(self, target: ast.expr, scope: Scope) -> Callable[[Frame, Any], None]:
        if isinstance(target, ast.Name):
            return self.name_store(target.id, scope)
        if isinstance(target, (ast.Tuple, ast.List)):
            stores = [self.store(e, scope) for e in target.elts]
            n = len(stores)

            def store_unpack(frame: Frame, v: Any) -> None:
                if type(v) is tuple or type(v) is list:
                    items = v
                else:
                    if isinstance(v, Tensor) and (v.dim() == 0 or v.shape[0] != n):
                        raise ValueError(
                            f"cannot unpack a tensor of shape {tuple(v.shape)} into {n} names"
                        )
                    items = []
                    for x in iter(v):
                        items.append(x)
                        if len(items) > n:
                            break
                if len(items) != n:
                    raise ValueError(
                        f"expected {n} values to unpack, got {len(items)}{'+' if len(items) > n else ''}"
                    )
                for st, x in zip(stores, items):
                    st(frame, x)

            return store_unpack
        if isinstance(target, ast.Attribute):
            obj_ev = self.expr(target.value, scope)
            attr = target.attr
            set_attribute = classes.set_attribute

            def store_attr(frame: Frame, v: Any) -> None:
                set_attribute(obj_ev(frame), attr, v)

            return store_attr
        if isinstance(target, ast.Subscript):
            obj_ev = self.expr(target.value, scope)
            key_ev = self.expr(target.slice, scope)

            def store_item(frame: Frame, v: Any) -> None:
                obj = obj_ev(frame)
                _check_item_store(obj)
                key = key_ev(frame)
                if isinstance(obj, Tensor):
                    # writing through a tensor index touches as many elements as reading
                    guards.check_index(obj, key)
                else:
                    v = guards.checked_item_value(obj, key, v)
                obj[key] = v

            return store_item
        raise self.error(
            ForbiddenConstruct,
            target,
            "this assignment target is not allowed; assign to a name",
        )

    # -- expressions -------------------------------------------------------------------

    def expr(self, e: ast.expr, scope: Scope) -> Evaluator:
        method = getattr(self, "expr_" + type(e).__name__, None)
        if method is None:  # pragma: no cover - the checker refuses these first
            raise self.error(
                ForbiddenConstruct, e, f"`{type(e).__name__}` is not allowed"
            )
        return method(e, scope)

    def expr_Constant(self, e: ast.Constant, scope: Scope) -> Evaluator:
        value = e.value
        return lambda frame: value

    def expr_Name(self, e: ast.Name, scope: Scope) -> Evaluator:
        return self.name_load(e, scope)

    def name_load(self, e: ast.Name, scope: Scope) -> Evaluator:
        name = e.id
        if scope.kind != "module":
            depth = 0
            s: Scope | None = scope
            while s is not None:
                if name in s.names:
                    break
                s = s.parent
                depth += 1
            if s is not None:
                if depth == 0:

                    def load_local(frame: Frame) -> Any:
                        try:
                            return frame.vars[name]
                        except KeyError:
                            raise UnknownName(
                                f"`{name}` is used before it is assigned"
                            ) from None

                    return load_local

                def load_enclosing(frame: Frame) -> Any:
                    f = frame
                    for _ in range(depth):
                        f = f.parent  # type: ignore[assignment]
                    try:
                        return f.vars[name]
                    except KeyError:
                        raise UnknownName(
                            f"`{name}` is used before it is assigned"
                        ) from None

                return load_enclosing
        if name in self.module_names or name in BUILTINS:
            g = self.unit.globals
            b = BUILTINS

            def load_global(frame: Frame) -> Any:
                try:
                    return g[name]
                except KeyError:
                    try:
                        return b[name]
                    except KeyError:
                        raise UnknownName(
                            f"`{name}` is used before it is assigned"
                        ) from None

            return load_global
        if (
            name in FORBIDDEN_NAMES
        ):  # pragma: no cover - the checker refuses these first
            raise self.error(
                ForbiddenConstruct,
                e,
                f"`{name}` is not available in the model language",
            )
        known = sorted(self.module_names | set(BUILTINS) | scope_names(scope))
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {', '.join(f'`{c}`' for c in close)}?" if close else ""
        raise self.error(UnknownName, e, f"name `{name}` is not defined{hint}")

    def static_value(self, e: ast.expr, scope: Scope) -> Any:
        """The value of a namespace path such as ``dist.Normal``, known at compile time."""
        if isinstance(e, ast.Name):
            if e.id in scope_names(scope) or e.id not in self.static_values:
                return MISSING
            return self.static_values[e.id]
        if isinstance(e, ast.Attribute):
            base = self.static_value(e.value, scope)
            if type(base) is Namespace:
                try:
                    return get_attribute(base, e.attr)
                except ModelLanguageError as err:
                    raise err.locate(e.lineno, e.col_offset + 1)
        return MISSING

    def expr_Attribute(self, e: ast.Attribute, scope: Scope) -> Evaluator:
        static = self.static_value(e, scope)
        if static is not MISSING:
            return lambda frame: static
        base = self.expr(e.value, scope)
        attr = e.attr
        direct_types: set[type] = set()
        ns_cache: list[Any] = [None, None]

        def load_attr(frame: Frame) -> Any:
            obj = base(frame)
            if obj is ns_cache[0]:
                return ns_cache[1]
            t = type(obj)
            if t in direct_types:
                return getattr(obj, attr)
            value = get_attribute(obj, attr)
            if t is Namespace:
                ns_cache[0], ns_cache[1] = obj, value
            else:
                allowed, guarded = attribute_rules(t)
                if attr in allowed and attr not in guarded:
                    direct_types.add(t)
            return value

        return load_attr

    def expr_Subscript(self, e: ast.Subscript, scope: Scope) -> Evaluator:
        base = self.expr(e.value, scope)
        key = self.expr(e.slice, scope)

        def load_item(frame: Frame) -> Any:
            obj = base(frame)
            k = key(frame)
            if isinstance(obj, Tensor):
                if type(k) is tuple or isinstance(k, (Tensor, list)):
                    guards.check_index(obj, k)
            elif type(obj) is Namespace:
                raise TypeError(f"{describe(obj)} cannot be indexed")
            return obj[k]

        return load_item

    def expr_Slice(self, e: ast.Slice, scope: Scope) -> Evaluator:
        none = lambda frame: None
        lower = self.expr(e.lower, scope) if e.lower is not None else none
        upper = self.expr(e.upper, scope) if e.upper is not None else none
        step = self.expr(e.step, scope) if e.step is not None else none
        return lambda frame: slice(lower(frame), upper(frame), step(frame))

    def expr_Tuple(self, e: ast.Tuple, scope: Scope) -> Evaluator:
        elts = tuple(self.expr(x, scope) for x in e.elts)
        if len(elts) == 2:
            a, b = elts
            return lambda frame: (a(frame), b(frame))
        return lambda frame: tuple([ev(frame) for ev in elts])

    def expr_List(self, e: ast.List, scope: Scope) -> Evaluator:
        elts = tuple(self.expr(x, scope) for x in e.elts)
        return lambda frame: [ev(frame) for ev in elts]

    def expr_Dict(self, e: ast.Dict, scope: Scope) -> Evaluator:
        if any(k is None for k in e.keys):
            raise self.error(
                ForbiddenConstruct, e, "`**` unpacking in dict literals is not allowed"
            )
        pairs = tuple(
            (self.expr(k, scope), self.expr(v, scope)) for k, v in zip(e.keys, e.values)
        )  # type: ignore[arg-type]
        return lambda frame: {k(frame): v(frame) for k, v in pairs}

    def expr_BinOp(self, e: ast.BinOp, scope: Scope) -> Evaluator:
        kind, fn, _ = _BINOPS[type(e.op)]
        op = make_binop_fn(kind, fn)
        left = self.expr(e.left, scope)
        right = self.expr(e.right, scope)
        if kind == "mod":
            percent_format = extras.percent_format

            def mod(frame: Frame) -> Any:
                a = left(frame)
                if type(a) is str:
                    return percent_format(a, right(frame))
                return op(a, right(frame), frame.run)

            return mod

        def binop(frame: Frame) -> Any:
            return op(left(frame), right(frame), frame.run)

        return binop

    def expr_UnaryOp(self, e: ast.UnaryOp, scope: Scope) -> Evaluator:
        fn = _UNARY[type(e.op)]
        if (
            isinstance(e.op, (ast.USub, ast.UAdd))
            and isinstance(e.operand, ast.Constant)
            and type(e.operand.value) in (int, float)
        ):
            folded = fn(
                e.operand.value
            )  # `-1` is a constant, not an operation per call
            return lambda frame: folded
        operand = self.expr(e.operand, scope)
        return lambda frame: fn(operand(frame))

    def expr_BoolOp(self, e: ast.BoolOp, scope: Scope) -> Evaluator:
        values = tuple(self.expr(v, scope) for v in e.values)
        if isinstance(e.op, ast.And):

            def and_(frame: Frame) -> Any:
                v = None
                for ev in values:
                    v = ev(frame)
                    if not v:
                        return v
                return v

            return and_

        def or_(frame: Frame) -> Any:
            v = None
            for ev in values:
                v = ev(frame)
                if v:
                    return v
            return v

        return or_

    def expr_Compare(self, e: ast.Compare, scope: Scope) -> Evaluator:
        left = self.expr(e.left, scope)
        ops = tuple(_COMPARE[type(o)] for o in e.ops)
        rights = tuple(self.expr(c, scope) for c in e.comparators)
        if len(ops) == 1:
            op, right = ops[0], rights[0]

            def compare(frame: Frame) -> Any:
                a = left(frame)
                b = right(frame)
                if isinstance(a, Tensor) and isinstance(b, Tensor):
                    guards.check_pair(a, b)
                elif isinstance(a, _CONTAINERS) and isinstance(b, _CONTAINERS):
                    guards.check_container_work(a, b)
                return op(a, b)

            return compare

        def compare_chain(frame: Frame) -> Any:
            a = left(frame)
            result: Any = True
            for op, right in zip(ops, rights):
                b = right(frame)
                if isinstance(a, Tensor) and isinstance(b, Tensor):
                    guards.check_pair(a, b)
                elif isinstance(a, _CONTAINERS) and isinstance(b, _CONTAINERS):
                    guards.check_container_work(a, b)
                result = op(a, b)
                if not result:
                    return result
                a = b
            return result

        return compare_chain

    def expr_IfExp(self, e: ast.IfExp, scope: Scope) -> Evaluator:
        test = self.expr(e.test, scope)
        body = self.expr(e.body, scope)
        orelse = self.expr(e.orelse, scope)
        return lambda frame: body(frame) if test(frame) else orelse(frame)

    def expr_JoinedStr(self, e: ast.JoinedStr, scope: Scope) -> Evaluator:
        parts = tuple(self.expr(v, scope) for v in e.values)

        limit = MAX_STRING_CHARS

        def fstring(frame: Frame) -> str:
            # a running length check: f"{s}{s}{s}..." must not build gigabytes first
            out = []
            used = 0
            for p in parts:
                text = p(frame)
                used += len(text)
                if used > limit:
                    raise guards.string_limit_error(used)
                out.append(text)
            return "".join(out)

        return fstring

    def expr_FormattedValue(self, e: ast.FormattedValue, scope: Scope) -> Evaluator:
        value = self.expr(e.value, scope)
        conversion = e.conversion
        spec = ""
        if e.format_spec is not None:
            spec = "".join(v.value for v in e.format_spec.values)  # type: ignore[attr-defined]
        format_value = guards.format_value

        def formatted(frame: Frame) -> str:
            return format_value(value(frame), spec, conversion)

        return formatted

    def expr_Call(self, e: ast.Call, scope: Scope) -> Evaluator:
        if is_super_init(e):
            return self._super_init(e, scope)
        if any(isinstance(a, ast.Starred) for a in e.args) or any(
            k.arg is None for k in e.keywords
        ):
            return self._call_unpacking(e, scope)
        func = self.expr(e.func, scope)
        args = tuple(self.expr(a, scope) for a in e.args)
        kw = tuple((k.arg, self.expr(k.value, scope)) for k in e.keywords)
        n = len(args)
        if not kw:
            if n == 0:

                def call0(frame: Frame) -> Any:
                    f = func(frame)
                    if type(f) is UserFunction:
                        return f.invoke(frame.run, (), {})
                    if isinstance(f, Distribution):
                        guards.call_distribution(f, (), {})
                    return f()

                return call0
            if n == 1:
                a0 = args[0]

                def call1(frame: Frame) -> Any:
                    f = func(frame)
                    if type(f) is UserFunction:
                        return f.invoke(frame.run, (a0(frame),), {})
                    if isinstance(f, Module):
                        x = a0(frame)
                        guards.check_module_call(f, (x,))
                        return f(x)
                    if isinstance(f, Distribution):
                        x = a0(frame)
                        guards.call_distribution(f, (x,), {})
                        return f(x)
                    if isinstance(f, Transform):
                        x = a0(frame)
                        guards.call_transform(f, (x,))
                        return f(x)
                    return f(a0(frame))

                return call1
            if n == 2:
                a0, a1 = args

                def call2(frame: Frame) -> Any:
                    f = func(frame)
                    if type(f) is UserFunction:
                        return f.invoke(frame.run, (a0(frame), a1(frame)), {})
                    if isinstance(f, Module):
                        x, y = a0(frame), a1(frame)
                        guards.check_module_call(f, (x, y))
                        return f(x, y)
                    if isinstance(f, Distribution):
                        x, y = a0(frame), a1(frame)
                        guards.call_distribution(f, (x, y), {})
                        return f(x, y)
                    return f(a0(frame), a1(frame))

                return call2

        def call(frame: Frame) -> Any:
            f = func(frame)
            pos = [a(frame) for a in args]
            kwargs = {k: v(frame) for k, v in kw}
            if type(f) is UserFunction:
                return f.invoke(frame.run, pos, kwargs)
            if isinstance(f, Module):
                guards.check_module_call(f, pos)
            elif isinstance(f, Distribution):
                guards.call_distribution(f, tuple(pos), kwargs)
            elif isinstance(f, Transform):
                guards.call_transform(f, tuple(pos))
            return f(*pos, **kwargs)

        return call

    def _call_unpacking(self, e: ast.Call, scope: Scope) -> Evaluator:
        """``f(*args, **kwargs)``: the unpacked values are bounded like list()/dict()."""
        func = self.expr(e.func, scope)
        parts = tuple(
            (isinstance(a, ast.Starred), self.expr(a.value if isinstance(a, ast.Starred) else a, scope))
            for a in e.args
        )
        kws = tuple((k.arg, self.expr(k.value, scope)) for k in e.keywords)

        def call_unpacking(frame: Frame) -> Any:
            f = func(frame)
            pos: list = []
            for starred, ev in parts:
                if starred:
                    pos.extend(runtime_counted(ev(frame)))
                    guards.check_sequence(pos)
                else:
                    pos.append(ev(frame))
            kwargs: dict = {}
            for name, ev in kws:
                value = ev(frame)
                if name is not None:
                    kwargs[name] = value
                    continue
                if not isinstance(value, dict):
                    raise TypeError("`**` needs a dict")
                for k, v in value.items():
                    if type(k) is not str or k.startswith("__"):
                        raise ForbiddenConstruct(f"`**` keyword {k!r} is not allowed")
                    kwargs[k] = v
            if type(f) is UserFunction:
                return f.invoke(frame.run, pos, kwargs)
            if isinstance(f, Module):
                guards.check_module_call(f, pos)
            elif isinstance(f, Distribution):
                guards.call_distribution(f, tuple(pos), kwargs)
            elif isinstance(f, Transform):
                guards.call_transform(f, tuple(pos))
            return f(*pos, **kwargs)

        return call_unpacking

    def expr_Lambda(self, e: ast.Lambda, scope: Scope) -> Evaluator:
        make = self.function(e, scope, "<lambda>", e.body, is_lambda=True)
        return make

    def _comprehension(
        self, generators: list[ast.comprehension], scope: Scope, node: ast.expr
    ) -> tuple[Scope, Callable]:
        names: set[str] = set()
        for g in generators:
            targets(g.target, names)
        cscope = Scope(
            "comprehension", scope if scope.kind != "module" else None, names
        )
        first_iter = self.expr(generators[0].iter, scope)
        levels = []
        for i, g in enumerate(generators):
            it = first_iter if i == 0 else self.expr(g.iter, cscope)
            store = self.store(g.target, cscope)
            conds = tuple(self.expr(c, cscope) for c in g.ifs)
            levels.append((it, store, conds, i == 0))
        return cscope, levels

    def _run_comprehension(self, levels: list, emit: Callable) -> Evaluator:
        def run(frame: Frame) -> None:
            cframe = Frame({}, frame, frame.run)
            r = frame.run

            def loop(level: int) -> None:
                it_ev, store, conds, outer = levels[level]
                iterable = it_ev(frame if outer else cframe)
                for item in iterable:
                    r.loop_iterations += 1
                    if r.loop_iterations > r.max_loop_iterations:
                        raise r.loop_limit()
                    store(cframe, item)
                    if conds and not all(c(cframe) for c in conds):
                        continue
                    if level + 1 < len(levels):
                        loop(level + 1)
                    else:
                        emit(cframe)

            loop(0)

        return run

    def expr_ListComp(self, e: ast.ListComp, scope: Scope) -> Evaluator:
        cscope, levels = self._comprehension(e.generators, scope, e)
        elt = self.expr(e.elt, cscope)

        def listcomp(frame: Frame) -> list:
            out: list = []
            self._run_comprehension(levels, lambda cf: out.append(elt(cf)))(frame)
            return out

        return listcomp

    # generator expressions are evaluated eagerly, as lists (documented)
    expr_GeneratorExp = expr_ListComp  # type: ignore[assignment]

    def expr_DictComp(self, e: ast.DictComp, scope: Scope) -> Evaluator:
        cscope, levels = self._comprehension(e.generators, scope, e)
        key = self.expr(e.key, cscope)
        value = self.expr(e.value, cscope)

        def dictcomp(frame: Frame) -> dict:
            out: dict = {}

            def emit(cf: Frame) -> None:
                out[key(cf)] = value(cf)

            self._run_comprehension(levels, emit)(frame)
            return out

        return dictcomp


def _global_names(body: list[ast.stmt]) -> set[str]:
    """Names a function declares ``global`` (not looking into nested functions/classes)."""
    out: set[str] = set()
    pending: list[ast.AST] = list(body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Global):
            out.update(node.names)
        elif not isinstance(node, (ast.FunctionDef, ast.Lambda, ast.ClassDef)):
            pending.extend(ast.iter_child_nodes(node))
    return out


def _check_item_store(obj: Any) -> None:
    if not (type(obj) is list or type(obj) is dict or isinstance(obj, Tensor)):
        raise ForbiddenConstruct(
            f"item assignment is only allowed on tensors, lists and dicts, not on {describe(obj)}"
        )


def _binder(bindings: list[tuple[str, Any]]) -> Evaluator:
    def bind(frame: Frame) -> None:
        for name, value in bindings:
            frame.vars[name] = value

    return bind


def _import_refusal(name: str) -> str:
    allowed = ", ".join(sorted(MODULES))
    if name.startswith("pyro.contrib"):
        return (
            f"importing `{name}` is not allowed: pyro.contrib (gp, forecast, epidemiology, "
            "timeseries, ...) builds models from library classes whose code runs outside the "
            "model language, so it cannot be checked and bounded; write the model as a "
            "function (or an nn.Module/PyroModule class) with pyro.sample, pyro.plate and "
            "pyro.markov (see docs/model-language.md, pyro.contrib)"
        )
    if name.startswith(("pyro.infer", "pyro.optim")):
        extra = (
            " (guides, ELBOs and optimizers are chosen in the job's settings, not in the "
            "source; of pyro.infer the source may use config_enumerate and pyro.infer.reparam)"
        )
    else:
        extra = ""
    return f"importing `{name}` is not allowed{extra}; the model language provides only: {allowed}"


__all__ = ["CallError", "Compiler", "Frame", "Unit", "UserFunction"]
