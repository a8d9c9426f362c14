"""Per-call state of a running program, reached through a thread-local.

A ``RunState`` exists for each top-level call of a program (a *model run*: the entry
function called by Pyro or by our engine) and for the module-level code run once at
compile time (not a model run). Guards find the active limits through it, the
compiled code charges statements, loop iterations and calls to it, and the Pyro
handler bookkeeping (``handlers.py``) records in it every handler and plate/markov
iterator opened during the run so that all of them are closed when the run ends.
"""

from __future__ import annotations

import threading
from typing import Any

from .errors import LimitExceeded
from .limits import (
    DEFAULT_LIMITS,
    MAX_PRINT_LINE_CHARS,
    MAX_PRINT_LINES,
    Limits,
)

_local = threading.local()


class PrintLog(list):
    """Lines written by ``print``; bounded so a print flood cannot fill memory."""

    dropped: int = 0

    def write(self, text: str) -> None:
        if len(self) >= MAX_PRINT_LINES:
            self.dropped += 1
            if len(self) == MAX_PRINT_LINES:
                self.append(
                    f"... (print output beyond {MAX_PRINT_LINES} lines dropped)"
                )
            return
        if len(text) > MAX_PRINT_LINE_CHARS:
            text = text[:MAX_PRINT_LINE_CHARS] + " ...(truncated)"
        self.append(text)


class RunState:
    __slots__ = (
        "depth",
        "dims_at_entry",
        "generators",
        "handlers",
        "limits",
        "loop_iterations",
        "max_depth",
        "max_elements",
        "max_loop_iterations",
        "max_steps",
        "model",
        "print_log",
        "stack_at_entry",
        "steps",
    )

    def __init__(self, limits: Limits, print_log: PrintLog, model: bool = True) -> None:
        self.limits = limits
        self.steps = 0
        self.max_steps = limits.max_call_steps
        self.loop_iterations = 0
        self.max_loop_iterations = limits.max_loop_iterations
        self.depth = 0
        self.max_depth = limits.max_recursion_depth
        self.max_elements = limits.max_tensor_elements
        self.print_log = print_log
        #: True for a model/guide run; False for the module-level code at compile time
        self.model = model
        #: Pyro handlers entered during this run and not exited yet
        self.handlers: list[Any] = []
        #: plate/markov iterators (generators) created during this run
        self.generators: list[Any] = []
        self.stack_at_entry: list[Any] | None = None
        self.dims_at_entry: list[Any] | None = None

    def step_limit(self) -> LimitExceeded:
        return LimitExceeded(
            f"max_call_steps={self.max_steps} exceeded (the program executed too many "
            "statements in one call)",
            limit="max_call_steps",
        )

    def loop_limit(self) -> LimitExceeded:
        return LimitExceeded(
            f"max_loop_iterations={self.max_loop_iterations} exceeded (too many loop "
            "iterations in one call)",
            limit="max_loop_iterations",
        )


def current_run() -> RunState | None:
    return getattr(_local, "run", None)


def set_run(run: RunState | None) -> None:
    _local.run = run


def current_limits() -> Limits:
    run = getattr(_local, "run", None)
    return run.limits if run is not None else DEFAULT_LIMITS


def count_iteration(run: RunState) -> None:
    run.loop_iterations += 1
    if run.loop_iterations > run.max_loop_iterations:
        raise run.loop_limit()


def counted(iterable: Any) -> Any:
    """Iterate ``iterable`` charging every item to the loop budget of the active call."""
    run = current_run()
    if run is None:
        run = RunState(DEFAULT_LIMITS, PrintLog())
    for item in iterable:
        run.loop_iterations += 1
        if run.loop_iterations > run.max_loop_iterations:
            raise run.loop_limit()
        yield item
