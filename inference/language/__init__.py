"""The model language: a safe, Pyro-compatible subset of Python.

User source is parsed with ``ast``, checked against a whitelist (``checker`` with the
torch-free ``policy``), turned into nested Python closures by our own compiler
(``compiler``, with ``scope`` and ``functions``) and run against whitelisted namespaces
(``whitelists``, ``namespaces``, ``attributes``) under resource limits (``limits``)
enforced by ``guards`` (sizes, before allocating) and ``handlers`` (Pyro's global
handler stack). User text is never given to ``exec``, ``eval`` or ``compile``. See
docs/model-language.md.
"""

from .binding import BoundData, bind_data
from .errors import (
    DataBindingError,
    ForbiddenConstruct,
    LimitExceeded,
    ModelLanguageError,
    ModelRuntimeError,
    ModelSyntaxError,
    UnknownName,
)
from .limits import DEFAULT_LIMITS, Limits
from .program import Program, compile_source

__all__ = [
    "DEFAULT_LIMITS",
    "BoundData",
    "DataBindingError",
    "ForbiddenConstruct",
    "LimitExceeded",
    "Limits",
    "ModelLanguageError",
    "ModelRuntimeError",
    "ModelSyntaxError",
    "Program",
    "UnknownName",
    "bind_data",
    "compile_source",
]
