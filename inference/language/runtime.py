"""Per-call state of a running program and the size guards shared by the namespaces.

A ``RunState`` exists for each top-level call of a program (and for the module-level
code run at compile time). Whitelisted functions that can allocate (``torch.zeros``,
``Tensor.expand``, ``pyro.plate``, ...) find the active state through a thread-local so
they can check the limits *before* allocating.
"""

from __future__ import annotations

import math
import operator
import threading
from typing import Any

import torch

from .errors import LimitExceeded
from .limits import (
    DEFAULT_LIMITS,
    MAX_INT_BITS,
    MAX_PRINT_LINE_CHARS,
    MAX_PRINT_LINES,
    MAX_SEQUENCE_LENGTH,
    MAX_STRING_CHARS,
    SMALLEST,
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
        "limits",
        "loop_iterations",
        "max_depth",
        "max_elements",
        "max_loop_iterations",
        "max_steps",
        "print_log",
        "steps",
    )

    def __init__(self, limits: Limits, print_log: PrintLog) -> None:
        self.limits = limits
        self.steps = 0
        self.max_steps = limits.max_call_steps
        self.loop_iterations = 0
        self.max_loop_iterations = limits.max_loop_iterations
        self.depth = 0
        self.max_depth = limits.max_recursion_depth
        self.max_elements = limits.max_tensor_elements
        self.print_log = print_log

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


# ----------------------------------------------------------------------------------
# size guards


def _as_int(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        if torch.jit.is_tracing():
            return 1  # a traced size: it comes from data shapes, which are bounded
        return int(value)
    return operator.index(value)


def shape_numel(shape: Any) -> int:
    """Number of elements of a shape given as ints, a tuple/list/Size, or a tensor."""
    if isinstance(shape, torch.Tensor):
        return (
            math.prod(int(v) for v in shape.reshape(-1).tolist())
            if shape.dim()
            else int(shape)
        )
    if isinstance(shape, (tuple, list, torch.Size)):
        total = 1
        for v in shape:
            total *= max(_as_int(v), 0)
        return total
    return max(_as_int(shape), 0)


def size_from_args(args: tuple, kwargs: dict) -> int:
    """Element count of ``*size`` / ``size`` arguments of creation functions."""
    if not kwargs and len(args) == 1 and type(args[0]) is int:
        return max(args[0], 0)
    if "size" in kwargs:
        return shape_numel(kwargs["size"])
    if len(args) == 1 and isinstance(args[0], (tuple, list, torch.Size)):
        return shape_numel(args[0])
    return shape_numel(tuple(args))


def check_elements(n: int, what: str) -> None:
    if type(n) is int and n <= SMALLEST["max_tensor_elements"]:
        return
    if isinstance(
        n, torch.Tensor
    ):  # a traced size under torch.jit: data-derived, bounded
        return
    limit = current_limits().max_tensor_elements
    if n > limit:
        raise LimitExceeded(
            f"max_tensor_elements={limit} exceeded: {what} would have {n} elements",
            limit="max_tensor_elements",
        )


def check_plate_size(n: int, what: str) -> None:
    if n <= SMALLEST["max_plate_size"]:
        return
    limit = current_limits().max_plate_size
    if n > limit:
        raise LimitExceeded(
            f"max_plate_size={limit} exceeded: {what} is {n}", limit="max_plate_size"
        )


def check_int_bits(value: int) -> int:
    if value.bit_length() > MAX_INT_BITS:
        raise LimitExceeded(
            f"integer results are limited to {MAX_INT_BITS} bits", limit="max_int_bits"
        )
    return value


def check_sequence(value: Any) -> Any:
    if isinstance(value, str):
        if len(value) > MAX_STRING_CHARS:
            raise LimitExceeded(
                f"strings are limited to {MAX_STRING_CHARS} characters",
                limit="max_string_chars",
            )
    elif len(value) > MAX_SEQUENCE_LENGTH:
        raise LimitExceeded(
            f"lists and tuples are limited to {MAX_SEQUENCE_LENGTH} items",
            limit="max_sequence_length",
        )
    return value


def check_result_tensor(value: Any, what: str) -> Any:
    if isinstance(value, torch.Tensor):
        check_elements(value.numel(), what)
    elif isinstance(value, (tuple, list)):
        for item in value:
            if isinstance(item, torch.Tensor):
                check_elements(item.numel(), what)
    return value
