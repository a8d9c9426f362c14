"""Compiled functions and their frames: ``Unit``, ``UserFunction``, ``Frame``.

A ``Unit`` is one compiled source (globals, functions, limits, print log); a
``UserFunction`` is a ``def`` or ``lambda`` of it, callable from Python (Pyro calls the
entry this way) and from compiled code (``invoke``, which skips argument re-checks).
"""

from __future__ import annotations

import ast
import inspect
from typing import Any

from .errors import LimitExceeded
from .handlers import close_run, open_run
from .namespaces import PRELUDE
from .runtime import PrintLog, RunState, current_run, set_run

Evaluator = Any

# control-flow signals returned by statement closures (None means "carry on")
RETURN = object()
BREAK = object()
CONTINUE = object()
MISSING = object()


class Frame:
    __slots__ = ("parent", "ret", "run", "vars")

    def __init__(self, vars: dict, parent: Frame | None, run: RunState) -> None:
        self.vars = vars
        self.parent = parent
        self.run = run
        self.ret = None


class CallError(TypeError):
    """A user function was called with arguments that do not fit its signature."""


class Unit:
    """One compiled source: its globals, functions, limits and print log."""

    def __init__(self, source: str, tree: ast.Module, limits: Any) -> None:
        self.source = source
        self.tree = tree
        self.limits = limits
        self.globals: dict[str, Any] = dict(PRELUDE)
        self.functions: dict[str, UserFunction] = {}
        self.function_nodes: dict[str, ast.FunctionDef] = {}
        self.classes: dict[str, Any] = {}
        self.print_log = PrintLog()

    def new_run(self, model: bool = True) -> RunState:
        return RunState(self.limits, self.print_log, model)


class UserFunction:
    """A function defined in the source (``def`` or ``lambda``)."""

    def __init__(
        self,
        unit: Unit,
        name: str,
        params: list[str],
        defaults: dict[str, Any],
        kwonly: set[str],
        body: Evaluator,
        closure: Frame | None,
        is_lambda: bool,
        line: int,
    ) -> None:
        self.unit = unit
        self.__name__ = self.__qualname__ = name
        self.__doc__ = None
        self.__module__ = "vihub_model"
        self.params = params
        self.positional = [p for p in params if p not in kwonly]
        self.param_set = frozenset(params)
        self.defaults = defaults
        self.body = body
        self.closure = closure
        self.is_lambda = is_lambda
        self.line = line

    def __repr__(self) -> str:
        return f"<model-language function {self.__name__}>"

    @property
    def __signature__(self) -> inspect.Signature:
        """For Pyro's introspection (``PyroSample(lambda self: ...)`` checks its arity)."""
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        return inspect.Signature(
            [
                inspect.Parameter(
                    p,
                    kind if p in self.positional else inspect.Parameter.KEYWORD_ONLY,
                    default=self.defaults.get(p, inspect.Parameter.empty),
                )
                for p in self.params
            ]
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        run = current_run()
        if run is not None:
            return self.invoke(run, args, kwargs)
        # called from outside any run (by Pyro or our engine): this is a model run
        run = self.unit.new_run()
        set_run(run)
        open_run(run)
        try:
            return self.invoke(run, args, kwargs)
        finally:
            try:
                close_run(run)
            finally:
                set_run(None)

    def bind(self, args: Any, kwargs: dict) -> dict:
        positional = self.positional
        if len(args) > len(positional):
            raise CallError(
                f"{self.__name__}() takes {len(positional)} positional argument(s) but "
                f"{len(args)} were given"
            )
        values = dict(zip(positional, args))
        if kwargs:
            for key, value in kwargs.items():
                if key not in self.param_set:
                    raise CallError(
                        f"{self.__name__}() got an unexpected argument {key!r}"
                    )
                if key in values:
                    raise CallError(
                        f"{self.__name__}() got multiple values for argument {key!r}"
                    )
                values[key] = value
        if len(values) < len(self.params):
            for p in self.params:
                if p not in values:
                    default = self.defaults.get(p, MISSING)
                    if default is MISSING:
                        raise CallError(
                            f"{self.__name__}() is missing the argument {p!r}"
                        )
                    values[p] = default
        return values

    def invoke(self, run: RunState, args: Any, kwargs: dict) -> Any:
        run.depth += 1
        try:
            if run.depth > run.max_depth:
                raise LimitExceeded(
                    f"max_recursion_depth={run.max_depth} exceeded calling {self.__name__}()",
                    limit="max_recursion_depth",
                )
            run.steps += 1
            if run.steps > run.max_steps:
                raise run.step_limit()
            frame = Frame(self.bind(args, kwargs), self.closure, run)
            if self.is_lambda:
                return self.body(frame)
            if self.body(frame) is RETURN:
                return frame.ret
            return None
        finally:
            run.depth -= 1
