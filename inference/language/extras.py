"""Helpers pasted Pyro code reaches for, made safe: ``Vindex``/``vindex``, the
``pyro.distributions.util`` and ``pyro.ops.special`` helpers, ``pyro.util.ignore_jit_warnings``,
``torch.no_grad``, ``torch.LongTensor``/``FloatTensor``, ``%``-formatting, ``map``/``filter``,
``logging`` (lines go to the print log) and nested data records.

Everything here is our own code wrapping a whitelisted torch/Pyro function; sizes are
checked before anything is allocated.
"""

from __future__ import annotations

import re
from typing import Any, Callable

import torch
from pyro.distributions import util as dist_util
from pyro.ops import indexing as pyro_indexing
from pyro.ops import special as pyro_special

from . import guards
from .errors import ForbiddenConstruct
from .guards import check_sequence, named, to_text
from .limits import MAX_PRINT_LINE_CHARS, MAX_STRING_CHARS
from .runtime import counted, current_run


class QuietContext:
    """``with pyro.util.ignore_jit_warnings():``: there is no JIT tracing in a model run, so
    there is nothing to silence; the block just runs."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> bool:
        return False


def ignore_jit_warnings(filter: Any = None) -> QuietContext:  # noqa: A002 - Pyro's name
    return QuietContext()


def no_grad() -> torch.no_grad:
    return torch.no_grad()


#: context managers a ``with`` statement may enter besides Pyro handlers
CONTEXT_TYPES: tuple[type, ...] = (QuietContext, torch.no_grad)


# ----------------------------------------------------------------------------------
# Vindex


def _meta(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return torch.empty(guards.shape_ints(value.shape), dtype=value.dtype, device="meta")
    if type(value) is tuple:
        return tuple(_meta(v) for v in value)
    return value


def vindex(tensor: Any, args: Any) -> Any:
    """``pyro.ops.indexing.vindex`` with the result's size checked first (on meta tensors)."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError("vindex() needs a tensor")
    if type(args) is not tuple:
        args = (args,)
    shapes = [guards.shape_ints(a.shape) for a in args if isinstance(a, torch.Tensor)]
    index_numel = guards.broadcast_numel(*shapes) if shapes else 1
    if index_numel is not None and index_numel * max(guards.numel(tensor), 1) > guards.element_limit():
        # the cheap bound is too loose: work out the real result shape on meta tensors
        try:
            shape = pyro_indexing.vindex(_meta(tensor), _meta(args)).shape
        except RuntimeError:
            guards.check_elements(index_numel * max(guards.numel(tensor), 1), "Vindex(...)[...]")
        else:
            guards.check_elements(guards.shape_numel(shape), "Vindex(...)[...]")
    return pyro_indexing.vindex(tensor, args)


class VindexView:
    """``Vindex(x)[...]``: only indexing is available on it."""

    __slots__ = ("_tensor",)

    def __init__(self, tensor: Any) -> None:
        if not isinstance(tensor, torch.Tensor):
            raise TypeError("Vindex() needs a tensor")
        self._tensor = tensor

    def __getitem__(self, args: Any) -> Any:
        return vindex(self._tensor, args)


# ----------------------------------------------------------------------------------
# pyro.distributions.util, pyro.ops.special


def _scalar_like(prototype: Any, fill_value: Any) -> Any:
    if not isinstance(fill_value, (int, float, bool)):
        raise TypeError("scalar_like(prototype, value) takes a number")
    return dist_util.scalar_like(prototype, fill_value)


def _eye_like(value: Any, m: Any, n: Any = None) -> Any:
    n = m if n is None else n
    guards.check_elements(guards.as_int(m) * guards.as_int(n), "eye_like(...)")
    return dist_util.eye_like(value, m, n)


def _broadcast_shape(*shapes: Any, **kwargs: Any) -> tuple:
    return dist_util.broadcast_shape(*shapes, **kwargs)


DIST_UTIL = {
    "scalar_like": named(_scalar_like, "scalar_like"),
    "broadcast_shape": named(_broadcast_shape, "broadcast_shape"),
    "sum_rightmost": guards.generic(dist_util.sum_rightmost, "sum_rightmost"),
    "sum_leftmost": guards.generic(dist_util.sum_leftmost, "sum_leftmost"),
    "is_identically_zero": dist_util.is_identically_zero,
    "is_identically_one": dist_util.is_identically_one,
    "eye_like": named(_eye_like, "eye_like"),
    "logsumexp": guards.generic(dist_util.logsumexp, "logsumexp"),
    "broadcast_all": guards.generic(dist_util.broadcast_all, "broadcast_all"),
}

def _log_I1(orders: Any, value: Any, terms: Any = 250) -> Any:
    """``pyro.ops.special.log_I1``: its intermediates are (orders+1) x (terms+orders+1),
    N x terms and (orders+1) x N x terms, far larger than its (orders+1) x N result."""
    if not isinstance(value, torch.Tensor):
        raise TypeError("log_I1(orders, value, terms) takes a tensor value")
    n_orders = guards.as_int(orders) + 1
    n_terms = guards.as_int(terms)
    if n_orders < 1 or n_terms < 1:
        raise ValueError("log_I1 needs orders >= 0 and terms >= 1")
    n_values = max(guards.numel(value), 1)
    guards.check_elements(
        max(n_orders * (n_terms + n_orders), n_orders * n_values * n_terms),
        "log_I1(...) (its intermediate tables)",
    )
    return pyro_special.log_I1(n_orders - 1, value, terms=n_terms)


OPS_SPECIAL = {
    **{
        n: guards.generic(getattr(pyro_special, n), n)
        for n in ("safe_log", "log_beta", "log_binomial")
    },
    "log_I1": named(_log_I1, "log_I1"),
}

OPS_INDEXING = {"Vindex": named(VindexView, "Vindex"), "vindex": named(vindex, "vindex")}


# ----------------------------------------------------------------------------------
# pyro.infer.reparam: reparameterizers for poutine.reparam(config={site: ...})


def _reparams() -> dict[str, Any]:
    from pyro.infer import reparam

    out = {}
    for name in (
        "LocScaleReparam",
        "TransformReparam",
        "CircularReparam",
        "StableReparam",
        "SymmetricStableReparam",
        "LatentStableReparam",
        "GumbelSoftmaxReparam",
        "ProjectedNormalReparam",
        "DiscreteCosineReparam",
        "HaarReparam",
    ):
        if hasattr(reparam, name):
            out[name] = named(_no_callables(getattr(reparam, name), name), name)
    return out


def _no_callables(cls: type, name: str) -> Callable:
    def construct(*args: Any, **kwargs: Any) -> Any:
        for a in (*args, *kwargs.values()):
            if callable(a) and not isinstance(a, torch.Tensor):
                raise ForbiddenConstruct(f"{name}(...) takes numbers or tensors, not functions")
        return cls(*args, **kwargs)

    return construct


REPARAMS = _reparams()


# ----------------------------------------------------------------------------------
# legacy tensor constructors


def _legacy(dtype: torch.dtype, name: str) -> Callable:
    def construct(*args: Any) -> Any:
        if len(args) == 1 and not isinstance(args[0], int):
            data = args[0]
            guards.check_elements(guards.nested_shape_numel(data), f"torch.{name}(...)")
            return torch.tensor(data, dtype=dtype)
        guards.check_elements(guards.shape_numel(args), f"torch.{name}(...)")
        return torch.zeros(*args, dtype=dtype)

    return named(construct, name)


LEGACY_TENSORS = {
    "FloatTensor": _legacy(torch.float32, "FloatTensor"),
    "DoubleTensor": _legacy(torch.float64, "DoubleTensor"),
    "LongTensor": _legacy(torch.int64, "LongTensor"),
    "IntTensor": _legacy(torch.int32, "IntTensor"),
    "BoolTensor": _legacy(torch.bool, "BoolTensor"),
    "Tensor": _legacy(torch.get_default_dtype(), "Tensor"),
}

_TYPE_NAMES = {
    "torch.FloatTensor": torch.float32,
    "torch.DoubleTensor": torch.float64,
    "torch.LongTensor": torch.int64,
    "torch.IntTensor": torch.int32,
    "torch.BoolTensor": torch.bool,
    "torch.HalfTensor": torch.float16,
}


def tensor_type(t: torch.Tensor) -> Callable:
    """``x.type()`` (the type name) and ``x.type(dtype)`` (a conversion)."""

    def type_(dtype: Any = None, non_blocking: bool = False) -> Any:
        if dtype is None:
            return t.type()
        if isinstance(dtype, str):
            if dtype not in _TYPE_NAMES:
                raise ForbiddenConstruct(
                    f"x.type({dtype!r}) is not available; use x.type(torch.float) or x.long()"
                )
            dtype = _TYPE_NAMES[dtype]
        if not isinstance(dtype, torch.dtype):
            raise TypeError("x.type(...) takes a dtype such as torch.long")
        return t.to(dtype)

    return type_


# ----------------------------------------------------------------------------------
# builtins


def _map(fn: Any, *iterables: Any) -> list:
    """``map`` is eager here: it returns a list (like generator expressions)."""
    if not iterables:
        raise TypeError("map() needs at least one iterable")
    items = zip(*iterables) if len(iterables) > 1 else ((x,) for x in iterables[0])
    out = []
    for args in counted(items):
        out.append(fn(*args))
    return check_sequence(out)


def _filter(fn: Any, iterable: Any) -> list:
    out = [x for x in counted(iterable) if (fn(x) if fn is not None else x)]
    return check_sequence(out)


MAP = named(_map, "map")
FILTER = named(_filter, "filter")

_PERCENT_SPEC = re.compile(r"%(?:\((?P<key>[A-Za-z_][A-Za-z0-9_]*)\))?(?P<spec>[-+ #0]*\d{0,2}(?:\.\d{1,2})?)(?P<conv>[diouxXeEfFgGcrsa%])")


def percent_format(template: str, values: Any) -> str:
    """``"x_%d" % t``: conversions with width and precision below 100, as f-strings."""
    if len(template) > MAX_STRING_CHARS:
        raise guards.string_limit_error(len(template))
    pos = 0
    for m in _PERCENT_SPEC.finditer(template):
        if "%" in template[pos : m.start()]:
            raise ForbiddenConstruct(
                "this `%` format is not available; use an f-string such as f\"{x:.3f}\""
            )
        pos = m.end()
    if "%" in template[pos:]:
        raise ForbiddenConstruct("this `%` format is not available; use an f-string")
    if isinstance(values, tuple):
        values = tuple(_plain(v) for v in values)
    elif isinstance(values, dict):
        values = {k: _plain(v) for k, v in values.items()}
    else:
        values = _plain(values)
    out = template % values
    if len(out) > MAX_STRING_CHARS:
        raise guards.string_limit_error(len(out))
    return out


def _plain(v: Any) -> Any:
    # %s of a container or tensor goes through our bounded text conversion
    if isinstance(v, (bool, int, float)) and not (type(v) is int and v.bit_length() > 256):
        return v
    if isinstance(v, torch.Tensor) and v.numel() == 1:
        return v.item()
    return to_text(v)


# ----------------------------------------------------------------------------------
# logging: a no-op logger whose messages go to the print log


class Logger:
    """``logging.getLogger()`` / ``logging.info(...)``: lines go to the job's print log."""

    __slots__ = ()

    def _write(self, level: str, msg: Any, *args: Any) -> None:
        text = to_text(msg)[:MAX_PRINT_LINE_CHARS]
        if args:
            try:
                text = percent_format(text, tuple(args))
            except (TypeError, ValueError):
                text = text + " " + " ".join(to_text(a)[:200] for a in args)
        run = current_run()
        if run is not None:
            run.print_log.write(f"{level}: {text}")

    def debug(self, msg: Any, *args: Any) -> None:
        self._write("DEBUG", msg, *args)

    def info(self, msg: Any, *args: Any) -> None:
        self._write("INFO", msg, *args)

    def warning(self, msg: Any, *args: Any) -> None:
        self._write("WARNING", msg, *args)

    def error(self, msg: Any, *args: Any) -> None:
        self._write("ERROR", msg, *args)


LOGGER = Logger()
LOGGER_ATTRS = frozenset({"debug", "info", "warning", "error"})


def _get_logger(name: Any = None) -> Logger:
    return LOGGER


LOGGING = {
    "getLogger": named(_get_logger, "getLogger"),
    "debug": LOGGER.debug,
    "info": LOGGER.info,
    "warning": LOGGER.warning,
    "error": LOGGER.error,
    "DEBUG": 10,
    "INFO": 20,
    "WARNING": 30,
    "ERROR": 40,
}


# ----------------------------------------------------------------------------------
# training-only imports (SVI, ELBOs, autoguides, optimizers)

#: module paths whose names are accepted in imports but cannot be used: the service runs
#: the training, so pasted ``from pyro.infer import SVI, Trace_ELBO`` lines do not stop a
#: source; using one of the names says where that choice is made instead
SETTINGS_MODULES = ("pyro.infer", "pyro.infer.autoguide", "pyro.optim", "torch.optim")


def is_settings_module(path: str) -> bool:
    return any(path == m or path.startswith(m + ".") for m in SETTINGS_MODULES)


class SettingsOnly:
    """A training-only name from a pasted import; using it is a pointed error."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __repr__(self) -> str:
        return f"<training-only name {self.what}>"

    def refusal(self) -> ForbiddenConstruct:
        return ForbiddenConstruct(
            f"`{self.what}` is for training, which the service runs: choose the guide, ELBO and "
            "optimizer in the job's settings (guide: {\"auto\": \"AutoNormal\"} or a guide "
            "function of the source; inference.elbo; inference.optimizer) and leave the "
            "training code out of the source"
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise self.refusal()


# ----------------------------------------------------------------------------------
# nested data


class DataRecord(dict):
    """A nested data field: read with ``cfg["key"]`` or ``cfg.key``; read-only."""

    __slots__ = ()

    def __ior__(self, other: Any) -> Any:
        # `cfg |= {...}`: dict's in-place union would change the bound data every later
        # call (the guide, the next step) sees; as for an immutable mapping, `|=` rebinds
        # the name to a new plain dict (`cfg | {...}`) and leaves the record unchanged
        return NotImplemented


DATA_RECORD_METHODS = frozenset({"get", "keys", "values", "items"})
