"""``compile_source`` and ``Program``: the public face of the model language."""

from __future__ import annotations

import ast
from typing import Any

from .checker import check_tree
from .compiler import CallError, Compiler, Frame, Unit
from .errors import (
    DataBindingError,
    LimitExceeded,
    ModelSyntaxError,
    UnknownName,
)
from .handlers import close_run, open_run
from .limits import DEFAULT_LIMITS, Limits
from .runtime import current_run, set_run
from .scope import bound_names


class Program:
    """A compiled entry function; calling it runs the function as a Pyro model/guide.

    ``program(*args, **kwargs)`` binds arguments like Python does (positional in
    signature order, then keywords). ``parameters`` lists ``(name, has_default)``;
    ``print_log`` holds the lines printed by ``print`` (shared by all functions of the
    same source); ``function(name)`` gives another top-level function of the source
    as a ``Program`` (e.g. a guide written next to the model).
    """

    def __init__(self, unit: Unit, entry: str) -> None:
        fn = unit.functions.get(entry)
        #: parameters of ``_function`` that the caller does not pass (a method's ``self``)
        self._skip = 0
        if fn is None:
            fn, callable_ = _resolve_entry(unit, entry)
            # a method's `self` is passed by the bound method, not by the caller
            self._skip = 1 if fn.params and getattr(callable_, "__wrapped__", None) is not fn else 0
        else:
            callable_ = unit.globals.get(entry, fn)
        self._unit = unit
        self._function = fn
        self._callable = callable_
        self.entry = entry
        self.__name__ = entry

    @property
    def source(self) -> str:
        return self._unit.source

    @property
    def limits(self) -> Limits:
        return self._unit.limits

    @property
    def parameters(self) -> list[tuple[str, bool]]:
        fn = self._function
        return [(p, p in fn.defaults) for p in fn.params[self._skip :]]

    @property
    def defaults(self) -> dict[str, Any]:
        skipped = set(self._function.params[: self._skip])
        return {k: v for k, v in self._function.defaults.items() if k not in skipped}

    @property
    def print_log(self) -> list[str]:
        return self._unit.print_log

    @property
    def functions(self) -> list[str]:
        """Names of the top-level functions of the source."""
        return sorted(self._unit.functions)

    @property
    def tree(self) -> ast.Module:
        return self._unit.tree

    def function(self, name: str) -> Program:
        return Program(self._unit, name)

    def __repr__(self) -> str:
        params = ", ".join(p if not d else f"{p}=..." for p, d in self.parameters)
        return f"<Program {self.entry}({params})>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if current_run() is not None:  # called from inside another program's run
            return self._call(args, kwargs)
        # a model run: Pyro primitives are allowed, and whatever the run opens on
        # Pyro's global handler stack is closed when it ends
        run = self._unit.new_run()
        set_run(run)
        open_run(run)
        try:
            if self._callable is self._function and not self._skip:  # undecorated: no wrapper layers
                return self._call_direct(run, args, kwargs)
            return self._call(args, kwargs)
        finally:
            try:
                close_run(run)
            finally:
                set_run(None)

    def _call_direct(self, run: Any, args: Any, kwargs: dict) -> Any:
        try:
            return self._function.invoke(run, args, kwargs)
        except CallError as exc:
            raise DataBindingError(str(exc)) from exc
        except RecursionError as exc:
            raise LimitExceeded(
                "the program nests calls or expressions too deeply (Python recursion limit)",
                limit="max_recursion_depth",
            ) from exc

    def _call(self, args: Any, kwargs: dict) -> Any:
        try:
            return self._callable(*args, **kwargs)
        except CallError as exc:
            raise DataBindingError(str(exc)) from exc
        except RecursionError as exc:
            raise LimitExceeded(
                "the program nests calls or expressions too deeply (Python recursion limit)",
                limit="max_recursion_depth",
            ) from exc


def _resolve_entry(unit: Unit, entry: str) -> tuple[Any, Any]:
    """``vae.model`` (a method of a top-level instance) or ``model`` (a top-level instance
    of a class with ``forward``): the method's function and the callable to run."""
    from .attributes import get_attribute
    from .classes import MISSING, BoundUserMethod, user_class_of
    from .functions import UserFunction

    head, *rest = entry.split(".")
    if head not in unit.globals:
        defined = ", ".join(sorted(unit.functions)) or "none"
        raise UnknownName(
            f"the source defines no top-level function or instance `{head}` (functions defined: {defined})"
        )
    value = unit.globals[head]
    for part in rest:
        value = get_attribute(value, part)
    if type(value) is BoundUserMethod:
        return value.function, value
    wrapped = getattr(value, "__wrapped__", None) if not rest else None
    if isinstance(wrapped, UserFunction):  # `reparam_model = poutine.reparam(model, {...})`
        return wrapped, value
    uc = user_class_of(value)
    if uc is not None:
        forward = uc.lookup("forward") if uc.is_module() else MISSING
        if forward is not MISSING:
            return forward, value
        raise UnknownName(
            f"`{entry}` is an instance of {uc.name}, which has no forward(); name a method, e.g. `{entry}.model`"
        )
    raise UnknownName(
        f"`{entry}` is not a function, a method of an instance, nor a module with forward()"
    )


def parse(source: Any, limits: Limits) -> ast.Module:
    if not isinstance(source, str):
        raise ModelSyntaxError(f"the source must be text, got {type(source).__name__}")
    size = len(source.encode("utf-8", errors="replace"))
    if size > limits.max_source_bytes:
        raise LimitExceeded(
            f"max_source_bytes={limits.max_source_bytes} exceeded: the source has {size} bytes",
            limit="max_source_bytes",
        )
    try:
        return ast.parse(source, filename="<model>", mode="exec")
    except SyntaxError as exc:
        raise ModelSyntaxError(
            f"invalid syntax: {exc.msg}",
            line=exc.lineno,
            col=exc.offset if exc.offset else None,
        ) from None
    except (ValueError, MemoryError, RecursionError, OverflowError) as exc:
        raise ModelSyntaxError(
            f"the source cannot be parsed: {type(exc).__name__}: {exc}"
        ) from None


def compile_source(
    source: str, entry: str = "model", *, limits: Limits | None = None
) -> Program:
    """Check and compile ``source``; return its function ``entry`` as a ``Program``.

    The top-level statements (imports, constants, ``nn`` modules, function definitions)
    run once here, under the same limits as a call. Raises ``ModelLanguageError``.
    """
    limits = limits or DEFAULT_LIMITS
    if not isinstance(entry, str) or not all(
        part.isidentifier() and not part.startswith("_") for part in entry.split(".")
    ) or entry.count(".") > 4:
        raise UnknownName(
            f"entry must be a function name (or `instance.method`), got {str(entry)[:100]!r}"
        )
    tree = parse(source, limits)
    check_tree(tree, limits)
    head = entry.split(".")[0]
    if not any(
        (isinstance(s, ast.FunctionDef) and s.name == head)
        or head in bound_names([s])
        for s in tree.body
    ):
        defined = (
            ", ".join(s.name for s in tree.body if isinstance(s, ast.FunctionDef))
            or "none"
        )
        raise UnknownName(
            f"the source defines no top-level function `{entry}` (functions defined: {defined})"
        )
    unit = Unit(source, tree, limits)
    outer = current_run()
    # the top-level code runs once, now: not a model run (no Pyro primitives)
    run = unit.new_run(model=False)
    set_run(run)
    open_run(run)
    try:
        module_code = Compiler(unit).compile_module()
        module_code(Frame(unit.globals, None, run))
    except RecursionError:
        raise LimitExceeded(
            "the source nests expressions too deeply", limit="max_ast_depth"
        ) from None
    finally:
        try:
            close_run(run)
        finally:
            set_run(outer)
    return Program(unit, entry)


__all__ = ["Program", "compile_source", "parse"]
