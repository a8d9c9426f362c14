"""The model language's resource limits as a plain dataclass (settings with safe defaults).

Torch-free and free of the language package's imports, so that the server's settings
(``common.settings``) can use this type as their ``limits`` section without loading the
engine: the operator's limits and the language's are one type.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Bounds applied when compiling and running a program.

    ``max_loop_iterations``, ``max_recursion_depth`` and ``max_call_steps`` apply per
    top-level call of a program (one model or guide execution) and, separately, to the
    module-level code run at compile time.
    """

    #: size of the source text in bytes (UTF-8)
    max_source_bytes: int = 100_000
    #: number of nodes in the parsed syntax tree
    max_ast_nodes: int = 20_000
    #: total ``for``/comprehension iterations per call
    max_loop_iterations: int = 100_000
    #: nesting of user-defined function calls (the entry counts as 1)
    max_recursion_depth: int = 32
    #: size of a ``pyro.plate`` (and of its ``subsample_size``)
    max_plate_size: int = 10_000_000
    #: elements of any tensor an operation would produce (checked before allocating:
    #: see ``guards.py``), an ``nn`` module's parameters, or a bound data array
    max_tensor_elements: int = 50_000_000
    #: statements + loop iterations + user function calls executed per call
    max_call_steps: int = 1_000_000

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(
                    f"Limits.{name} must be a positive integer, got {value!r}"
                )
        # Guards skip the (thread-local) lookup of the active limits for sizes below
        # the smallest limit any Limits has had: such sizes pass every run's check.
        SMALLEST["max_tensor_elements"] = min(
            SMALLEST["max_tensor_elements"], self.max_tensor_elements
        )
        SMALLEST["max_plate_size"] = min(
            SMALLEST["max_plate_size"], self.max_plate_size
        )


SMALLEST = {"max_tensor_elements": 1 << 62, "max_plate_size": 1 << 62}


DEFAULT_LIMITS = Limits()
