"""The static policy of the model language: what the checker knows without torch.

Names refused outright, the module paths ``import`` accepts, the names of the Pyro
primitives, the handler arguments that would hand live Pyro messages to user code, and
the accepted format specs. Plain data: this module imports neither torch nor pyro, so
the static checker (``checker.py``) runs without them.
"""

from __future__ import annotations

import re

#: module paths accepted by ``import`` / ``from ... import`` (they bind namespaces)
IMPORTABLE_MODULES: tuple[str, ...] = (
    "torch",
    "torch.nn",
    "torch.nn.functional",
    "torch.nn.init",
    "pyro.nn",
    "torch.linalg",
    "torch.special",
    "torch.distributions",
    "torch.distributions.constraints",
    "torch.distributions.transforms",
    "pyro",
    "pyro.distributions",
    "pyro.distributions.constraints",
    "pyro.distributions.transforms",
    "pyro.distributions.util",
    "pyro.distributions.testing",
    "pyro.distributions.testing.fakes",
    "pyro.ops",
    "pyro.ops.indexing",
    "pyro.ops.special",
    "pyro.util",
    "logging",
    "pyro.infer",
    "pyro.infer.reparam",
    "pyro.poutine",
    "math",
)

#: Pyro primitives: they act on Pyro's global handler stack, so they run only while a
#: model or guide runs (checked at run time; the top-level syntactic check is a
#: friendlier early error for the common case)
PYRO_PRIMITIVE_NAMES: frozenset[str] = frozenset(
    {
        "sample",
        "param",
        "plate",
        "iarange",
        "markov",
        "deterministic",
        "factor",
        "module",
        "subsample",
    }
)

#: arguments of poutine handlers that Pyro calls with live messages: refused, with the
#: list-valued alternative to use instead
HANDLER_CALLBACK_ARGUMENTS: dict[str, str] = {
    "hide_fn": "hide=[...] or hide_types=[...]",
    "expose_fn": "expose=[...] or expose_types=[...]",
    "config_fn": "config={...} (a dict of infer settings)",
}

#: names that exist in Python but are refused with a pointed message
FORBIDDEN_NAMES: dict[str, str] = {
    name: "it could reach the interpreter's internals"
    for name in [
        "getattr",
        "setattr",
        "delattr",
        "hasattr",
        "open",
        "exec",
        "eval",
        "compile",
        "__import__",
        "globals",
        "locals",
        "vars",
        "type",
        "input",
        "breakpoint",
        "help",
        "dir",
        "memoryview",
        "object",
        "super",
        "classmethod",
        "staticmethod",
        "property",
        "id",
        "hash",
        "iter",
        "next",
        "callable",
        "isinstance",
        "issubclass",
        "__builtins__",
        "__loader__",
        "__spec__",
        "__name__",
        "__file__",
        "exit",
        "quit",
        "copyright",
        "credits",
        "license",
        "bytearray",
        "bytes",
        "frozenset",
        "set",
        "format",
        "repr",
        "ascii",
        "chr",
        "ord",
        "bin",
        "hex",
        "oct",
        "pow",
        "slice",
    ]
}

#: format specs of f-strings and ``str.format`` fields: width and precision < 100
SAFE_FORMAT_SPEC = re.compile(
    r"^[<>^=]?[+\- ]?#?0?\d{0,2}[,_]?(\.\d{1,2})?[bcdeEfFgGnosxX%]?$"
)
#: ``str.format`` fields: ``{}``, ``{0}`` or ``{name}``
FIELD_NAME = re.compile(r"^(\d+|[A-Za-z][A-Za-z0-9]*)?$")
