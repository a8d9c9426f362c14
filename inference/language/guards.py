"""Every size and placement check of the model language, in one place.

Rule: an operation reachable from user code that can produce a tensor, a string, a list
or an integer checks the size of its *result* before anything is allocated, using
arithmetic on shapes (cheap) and, only where the arithmetic has no closed form and the
cheap bound is exceeded, a replay on ``meta`` tensors (no memory, no data). Operations
without a check are provably bounded by their inputs (elementwise maps and reductions
of one tensor, views that never grow): every tensor a program holds has at most
``max_tensor_elements`` elements, so those stay bounded too.

Guards work on shapes only, so they hold under ``torch.jit`` tracing as well (sizes
read from traced tensors are converted to the concrete values of the trace).

The guards find the active limits through :func:`runtime.current_limits`; sizes below
the smallest limit any ``Limits`` has had skip that lookup.
"""

from __future__ import annotations

import math
import operator
import string
import warnings
from collections.abc import Callable
from typing import Any

import pyro.distributions as pyro_dist
import torch
from pyro.nn import PyroModule
from pyro.poutine.indep_messenger import IndepMessenger
from pyro.poutine.runtime import _PYRO_STACK

from .errors import ForbiddenConstruct, LimitExceeded
from .limits import (
    MAX_INT_BITS,
    MAX_RECURRENT_LAYERS,
    MAX_SEQUENCE_LENGTH,
    MAX_STRING_CHARS,
    SMALLEST,
)
from .policy import FIELD_NAME, SAFE_FORMAT_SPEC
from .runtime import counted, current_limits, current_run

Tensor = torch.Tensor
Distribution = torch.distributions.Distribution

# ----------------------------------------------------------------------------------
# numbers and shapes


def as_int(value: Any) -> int:
    """An int from an int-like size; a traced size tensor gives its traced value."""
    if type(value) is int:
        return value
    if isinstance(value, Tensor):
        if torch.jit.is_tracing():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return int(value)
        return int(value)
    return operator.index(value)


def shape_ints(shape: Any) -> tuple[int, ...]:
    return tuple(as_int(s) for s in shape)


def shape_numel(shape: Any) -> int:
    """Number of elements of a shape given as ints, a tuple/list/Size, or a tensor."""
    if isinstance(shape, Tensor):
        if shape.dim():
            return math.prod(max(as_int(v), 0) for v in shape.reshape(-1))
        return max(as_int(shape), 0)
    if isinstance(shape, (tuple, list, torch.Size)):
        total = 1
        for v in shape:
            total *= max(as_int(v), 0)
        return total
    return max(as_int(shape), 0)


def size_from_args(args: tuple, kwargs: dict) -> int:
    """Element count of ``*size`` / ``size`` arguments of creation functions."""
    if not kwargs and len(args) == 1 and type(args[0]) is int:
        return max(args[0], 0)
    if "size" in kwargs:
        return shape_numel(kwargs["size"])
    if len(args) == 1 and isinstance(args[0], (tuple, list, torch.Size)):
        return shape_numel(args[0])
    return shape_numel(tuple(args))


def numel(t: Tensor) -> int:
    """``t.numel()`` as an int (under jit tracing ``numel()`` can be a traced tensor)."""
    n = t.numel()
    return n if type(n) is int else as_int(n)


def broadcast_numel(*shapes: Any) -> int | None:
    """Elements of the broadcast of ``shapes``; ``None`` if they do not broadcast.

    Plain arithmetic (``torch.broadcast_shapes`` would be traced under ``torch.jit``).
    """
    shapes_i = [shape_ints(s) for s in shapes]
    ndim = max((len(s) for s in shapes_i), default=0)
    out = [1] * ndim
    for s in shapes_i:
        offset = ndim - len(s)
        for i, d in enumerate(s):
            j = offset + i
            if d == 1:
                continue
            if out[j] == 1:
                out[j] = d
            elif out[j] != d:
                return None
    return math.prod(out)


# ----------------------------------------------------------------------------------
# the limit checks themselves


def check_elements(n: int, what: str) -> None:
    """Refuse a result of ``n`` elements if it exceeds ``max_tensor_elements``."""
    if type(n) is not int:
        n = as_int(n)
    if n <= SMALLEST["max_tensor_elements"]:
        return
    limit = current_limits().max_tensor_elements
    if n > limit:
        raise LimitExceeded(
            f"max_tensor_elements={limit} exceeded: {what} would have {n} elements",
            limit="max_tensor_elements",
        )


def element_limit() -> int:
    return current_limits().max_tensor_elements


def check_plate_size(n: Any, what: str) -> None:
    n = as_int(n)
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


def string_limit_error(n: int | None = None) -> LimitExceeded:
    extra = f" (this one would have at least {n})" if n is not None else ""
    return LimitExceeded(
        f"strings are limited to {MAX_STRING_CHARS} characters{extra}",
        limit="max_string_chars",
    )


def sequence_limit_error(n: int | None = None) -> LimitExceeded:
    extra = f" (this one would have {n})" if n is not None else ""
    return LimitExceeded(
        f"lists and tuples are limited to {MAX_SEQUENCE_LENGTH} items{extra}",
        limit="max_sequence_length",
    )


def check_sequence(value: Any) -> Any:
    if isinstance(value, str):
        if len(value) > MAX_STRING_CHARS:
            raise string_limit_error()
    elif len(value) > MAX_SEQUENCE_LENGTH:
        raise sequence_limit_error()
    return value


def check_result(value: Any) -> Any:
    """Post-check of a Python-level result (ints, strings, lists) that was cheap to make."""
    t = type(value)
    if t is int:
        return check_int_bits(value)
    if t is str:
        if len(value) > MAX_STRING_CHARS:
            raise string_limit_error()
    elif (t is list or t is tuple) and len(value) > MAX_SEQUENCE_LENGTH:
        raise sequence_limit_error()
    return value


def check_placement(kwargs: dict) -> None:
    # The job chooses the device; a model may follow an existing tensor's device
    # (`device=x.device`) but may not name one (which could initialise CUDA).
    if not kwargs:
        return
    device = kwargs.get("device")
    if device is not None and not isinstance(device, torch.device):
        raise ForbiddenConstruct(
            "device=... accepts only another tensor's device (e.g. device=x.device); "
            "the job chooses the device"
        )
    if kwargs.get("pin_memory"):
        raise ForbiddenConstruct("pin_memory=True is not allowed")
    if "out" in kwargs:
        raise ForbiddenConstruct(
            "out=... is not allowed (it writes into another tensor); assign the result"
        )


# ----------------------------------------------------------------------------------
# ops on several tensors: broadcasting, products, indexing


def tensor_args_numel(args: Any, kwargs: dict) -> tuple[int, int]:
    """(product of the sizes of the tensor arguments, how many there are)."""
    total, count = 1, 0
    for a in (*args, *kwargs.values()) if kwargs else args:
        if isinstance(a, Tensor):
            total *= max(numel(a), 1)
            count += 1
        elif isinstance(a, (list, tuple)):
            for b in a:
                if isinstance(b, Tensor):
                    total *= max(numel(b), 1)
                    count += 1
        elif isinstance(a, Distribution):
            total *= max(dist_numel(a), 1)
            count += 1
    return total, count


def _to_meta(value: Any) -> Any:
    if isinstance(value, Tensor):
        return torch.empty(shape_ints(value.shape), dtype=value.dtype, device="meta")
    if isinstance(value, (list, tuple)):
        return type(value)(_to_meta(v) for v in value)
    return value


def _shapes_of(args: Any, kwargs: dict) -> list[tuple[int, ...]]:
    out = []
    for a in (*args, *kwargs.values()):
        if isinstance(a, Tensor):
            out.append(shape_ints(a.shape))
        elif isinstance(a, (list, tuple)):
            out.extend(shape_ints(b.shape) for b in a if isinstance(b, Tensor))
        elif isinstance(a, Distribution):
            out.append(tuple(a.batch_shape) + tuple(a.event_shape))
    return out


def _out_numel(out: Any) -> int:
    if isinstance(out, Tensor):
        return numel(out)
    if isinstance(out, (list, tuple)):
        return sum(_out_numel(o) for o in out)
    return 0


def check_combined(fn: Callable, what: str, args: tuple, kwargs: dict) -> None:
    """Bound the result size of an op that combines several tensors, before it runs.

    The product of the operands' sizes bounds the result of broadcasting, matmul,
    einsum, outer/kron products, cdist, indexing ops, ... so the (cheap) product is
    checked first; only when it is large is the op replayed on meta tensors to learn
    the exact shape. An op that cannot be replayed is bounded by the broadcast of its
    operands' shapes, or else by the product itself.
    """
    total, count = tensor_args_numel(args, kwargs)
    if count < 2 or total <= SMALLEST["max_tensor_elements"]:
        return
    limit = element_limit()
    if total <= limit:
        return
    try:
        n = _out_numel(
            fn(*_to_meta(args), **{k: _to_meta(v) for k, v in kwargs.items()})
        )
    except Exception:  # noqa: BLE001 - no meta kernel (or data-dependent): bound it
        n = broadcast_numel(*_shapes_of(args, kwargs))
        if n is None:
            n = total
    check_elements(n, what)


def check_pair(a: Tensor, b: Tensor) -> None:
    """Broadcasting two tensors (``a + b``, ``a == b``, ...)."""
    if numel(a) * numel(b) <= SMALLEST["max_tensor_elements"]:
        return
    n = broadcast_numel(a.shape, b.shape)
    if n is None:
        return  # torch raises the shape error itself
    limit = element_limit()
    if n > limit:
        raise LimitExceeded(
            f"max_tensor_elements={limit} exceeded: broadcasting "
            f"{tuple(shape_ints(a.shape))} with {tuple(shape_ints(b.shape))} "
            f"would make {n} elements",
            limit="max_tensor_elements",
        )


def _nested_list_shape(data: Any) -> tuple[int, ...]:
    shape = []
    item = data
    for _ in range(64):
        if isinstance(item, (list, tuple)):
            shape.append(len(item))
            if not item:
                break
            item = item[0]
        else:
            break
    return tuple(shape)


def _is_advanced(k: Any) -> bool:
    return isinstance(k, Tensor) or type(k) is list


def check_index(obj: Tensor, key: Any) -> None:
    """Indexing a tensor: advanced (tensor/list) indices can make results of any size."""
    if type(key) is tuple:
        if not any(_is_advanced(k) for k in key):
            return  # basic indexing: a view no larger than ``obj``
        keys = key
    elif _is_advanced(key):
        keys = (key,)
    else:
        return
    bound = max(numel(obj), 1)
    for k in keys:
        if isinstance(k, Tensor):
            bound *= max(numel(k), 1)
        elif type(k) is list:
            bound *= max(math.prod(_nested_list_shape(k)), 1)
    if bound <= SMALLEST["max_tensor_elements"]:
        return
    shape = shape_ints(obj.shape)
    consumed = 0
    for k in keys:
        if isinstance(k, Tensor) and k.dtype in (torch.bool, torch.uint8):
            consumed += max(k.dim(), 1)
        elif k is not None and k is not Ellipsis:
            consumed += 1
    dim = 0
    other = 1
    adv: list[tuple[int, ...]] = []
    for k in keys:
        if k is None:
            continue
        if k is Ellipsis:
            for _ in range(max(len(shape) - consumed, 0)):
                other *= shape[dim] if dim < len(shape) else 1
                dim += 1
        elif isinstance(k, slice):
            if dim < len(shape):
                other *= len(range(*k.indices(shape[dim])))
            dim += 1
        elif isinstance(k, Tensor):
            if k.dtype in (torch.bool, torch.uint8):
                adv.append((numel(k),))  # at most every element selected
                dim += max(k.dim(), 1)
            else:
                adv.append(shape_ints(k.shape))
                dim += 1
        elif type(k) is list:
            adv.append(_nested_list_shape(k))
            dim += 1
        else:
            dim += 1
    for d in range(dim, len(shape)):
        other *= shape[d]
    a = broadcast_numel(*adv) if adv else 1
    if a is None:
        return  # torch raises the shape error itself
    check_elements(a * other, "indexing with tensors")


# ----------------------------------------------------------------------------------
# wrappers for torch functions


def named(fn: Callable, name: str) -> Callable:
    fn.__name__ = fn.__qualname__ = name
    return fn


def generic(fn: Callable, name: str) -> Callable:
    """Any torch function: ``out=`` refused; several tensor operands are bounded."""

    def guarded(*args: Any, **kwargs: Any) -> Any:
        if kwargs:
            check_placement(kwargs)
        check_combined(fn, f"torch.{name}(...)", args, kwargs)
        return fn(*args, **kwargs)

    return named(guarded, name)


def creation(fn: Callable, name: str) -> Callable:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        check_placement(kwargs)
        check_elements(size_from_args(args, kwargs), f"torch.{name}(...)")
        return fn(*args, **kwargs)

    return named(guarded, name)


def placed(fn: Callable, name: str) -> Callable:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        check_placement(kwargs)
        return fn(*args, **kwargs)

    return named(guarded, name)


def full(*args: Any, **kwargs: Any) -> Any:
    check_placement(kwargs)
    size = kwargs["size"] if "size" in kwargs else args[0]
    check_elements(shape_numel(size), "torch.full(...)")
    return torch.full(*args, **kwargs)


def randint(*args: Any, **kwargs: Any) -> Any:
    check_placement(kwargs)
    size = kwargs.get("size")
    if size is None:
        size = next((a for a in args if isinstance(a, (tuple, list, torch.Size))), ())
    check_elements(shape_numel(size), "torch.randint(...)")
    return torch.randint(*args, **kwargs)


def _as_float(v: Any) -> float:
    if isinstance(v, Tensor):
        if torch.jit.is_tracing():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return float(v)
        return float(v)
    return float(v)


def arange(*args: Any, **kwargs: Any) -> Any:
    check_placement(kwargs)
    start, end, step = 0, None, 1
    if len(args) == 1:
        end = args[0]
    elif len(args) >= 2:
        start, end = args[0], args[1]
        if len(args) >= 3:
            step = args[2]
    start = kwargs.get("start", start)
    end = kwargs.get("end", end)
    step = kwargs.get("step", step)
    if end is not None:
        try:
            n = math.ceil((_as_float(end) - _as_float(start)) / _as_float(step))
        except ZeroDivisionError:
            n = 0  # torch refuses a zero step itself
        except (OverflowError, ValueError):
            n = 1 << 62  # an infinite or NaN length: refuse
        check_elements(max(n, 0), "torch.arange(...)")
    return torch.arange(*args, **kwargs)


def linspace_like(fn: Callable, name: str) -> Callable:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        check_placement(kwargs)
        steps = (
            kwargs["steps"] if "steps" in kwargs else (args[2] if len(args) > 2 else 0)
        )
        check_elements(shape_numel(steps), f"torch.{name}(...)")
        return fn(*args, **kwargs)

    return named(guarded, name)


def eye(*args: Any, **kwargs: Any) -> Any:
    check_placement(kwargs)
    n = kwargs.get("n", args[0] if args else 0)
    m = kwargs.get(
        "m", args[1] if len(args) > 1 and not isinstance(args[1], torch.dtype) else n
    )
    check_elements(shape_numel((n, m)), "torch.eye(...)")
    return torch.eye(*args, **kwargs)


def nested_shape_numel(data: Any) -> int:
    """Elements torch allocates for nested lists: it infers the shape from first items."""
    n = 1
    item = data
    for _ in range(64):
        if isinstance(item, (list, tuple)):
            n *= len(item)
            if not item:
                return n
            item = item[0]
        elif isinstance(item, Tensor):
            return n * numel(item)
        else:
            return n
    return n


def tensor_like(fn: Callable, name: str) -> Callable:
    def guarded(data: Any, *args: Any, **kwargs: Any) -> Any:
        check_placement(kwargs)
        if isinstance(data, range):
            check_elements(len(data), f"torch.{name}(range(...))")
        elif isinstance(data, (list, tuple)):
            check_elements(nested_shape_numel(data), f"torch.{name}(...)")
        return fn(data, *args, **kwargs)

    return named(guarded, name)


def cartesian_like(fn: Callable, name: str) -> Callable:
    def guarded(*tensors: Any, **kwargs: Any) -> Any:
        n = len(tensors)
        for t in tensors:
            n *= max(numel(t) if isinstance(t, Tensor) else 1, 1)
        check_elements(n, f"torch.{name}(...)")
        return fn(*tensors, **kwargs)

    return named(guarded, name)


def tril_indices(fn: Callable, name: str) -> Callable:
    def guarded(row: Any, col: Any, *args: Any, **kwargs: Any) -> Any:
        check_placement(kwargs)
        check_elements(2 * shape_numel((row, col)), f"torch.{name}(...)")
        return fn(row, col, *args, **kwargs)

    return named(guarded, name)


def repeat_interleave(
    input: Any, repeats: Any = None, dim: Any = None, **kwargs: Any
) -> Any:
    if not isinstance(input, Tensor) or repeats is None:
        if isinstance(input, Tensor):  # repeat_interleave(counts): sum of counts
            check_elements(
                int(input.sum()) if numel(input) else 0, "repeat_interleave(...)"
            )
        return torch.repeat_interleave(input)
    if isinstance(repeats, Tensor) and numel(repeats) > 1:
        per = as_int(repeats.sum())
        along = as_int(input.shape[dim]) if dim is not None else numel(input)
        n = per * (numel(input) // max(along, 1))
    else:
        n = numel(input) * max(as_int(repeats), 0)
    check_elements(n, "repeat_interleave(...)")
    return torch.repeat_interleave(input, repeats, dim, **kwargs)


def tile(input: Any, dims: Any) -> Any:
    check_elements(numel(input) * shape_numel(dims), "torch.tile(...)")
    return torch.tile(input, dims)


def combinations(input: Any, r: int = 2, with_replacement: bool = False) -> Any:
    if not 0 <= r <= 8:
        raise ForbiddenConstruct("torch.combinations(..., r) is limited to r <= 8")
    n = numel(input)
    count = math.comb(n + r - 1, r) if with_replacement else math.comb(n, r)
    check_elements(count * r, "torch.combinations(...)")
    return torch.combinations(input, r, with_replacement)


def concatenating(fn: Callable, name: str) -> Callable:
    def guarded(tensors: Any, *args: Any, **kwargs: Any) -> Any:
        check_placement(kwargs)
        if isinstance(tensors, (list, tuple)):
            check_elements(
                sum(numel(t) if isinstance(t, Tensor) else 1 for t in tensors),
                f"torch.{name}(...)",
            )
        return fn(tensors, *args, **kwargs)

    return named(guarded, name)


def block_diag(*tensors: Any) -> Any:
    rows = cols = 0
    for t in tensors:
        if isinstance(t, Tensor):
            s = shape_ints(t.shape)
            rows += s[0] if len(s) == 2 else 1
            cols += s[-1] if s else 1
    check_elements(rows * cols, "torch.block_diag(...)")
    return torch.block_diag(*tensors)


def broadcast_to(input: Any, size: Any) -> Any:
    check_expand_shape(input, size, "torch.broadcast_to(...)")
    return torch.broadcast_to(input, size)


def mvlgamma(fn: Callable, name: str) -> Callable:
    def guarded(input: Any, p: Any, **kwargs: Any) -> Any:
        check_placement(kwargs)
        if isinstance(input, Tensor):
            check_elements(numel(input) * max(as_int(p), 1), f"torch.{name}(...)")
        return fn(input, p, **kwargs)

    return named(guarded, name)


def diff(
    input: Any, n: int = 1, dim: int = -1, prepend: Any = None, append: Any = None
) -> Any:
    if isinstance(input, Tensor) and as_int(n) > max(numel(input), 1) + 1:
        raise ForbiddenConstruct("torch.diff(x, n) needs n at most the length of x")
    check_combined(torch.diff, "torch.diff(...)", (input, prepend, append), {})
    return torch.diff(input, n, dim, prepend, append)


def nonzero(input: Any, **kwargs: Any) -> Any:
    check_placement(kwargs)
    if isinstance(input, Tensor):
        check_elements(numel(input) * max(input.dim(), 1), "torch.nonzero(...)")
    return torch.nonzero(input, **kwargs)


def _piece_count(t: Tensor, name: str, args: tuple, kwargs: dict) -> int:
    """How many tensors chunk/split/tensor_split/unbind return (a Python tuple)."""
    dim = kwargs.get("dim", None)
    if name == "unbind":
        d = args[0] if args else (dim if dim is not None else 0)
        return as_int(t.shape[d]) if t.dim() else 0
    if not args and not kwargs:
        return 1
    first = (
        args[0]
        if args
        else kwargs.get(
            "split_size_or_sections",
            kwargs.get("chunks", kwargs.get("sections", kwargs.get("indices", 1))),
        )
    )
    d = args[1] if len(args) > 1 else (dim if dim is not None else 0)
    length = as_int(t.shape[d]) if t.dim() else 1
    if isinstance(first, (list, tuple)) or (isinstance(first, Tensor) and first.dim()):
        return len(first) + 1
    k = max(as_int(first), 1)
    if name == "split":
        return -(-length // k)
    return k  # chunk / tensor_split(sections)


def check_pieces(t: Tensor, name: str, args: tuple, kwargs: dict) -> None:
    n = _piece_count(t, name, args, kwargs)
    if n > MAX_SEQUENCE_LENGTH:
        raise LimitExceeded(
            f"{name}(...) would return {n} tensors; lists and tuples are limited to "
            f"{MAX_SEQUENCE_LENGTH} items",
            limit="max_sequence_length",
        )


def splitting(fn: Callable, name: str) -> Callable:
    def guarded(input: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(input, Tensor):
            check_pieces(input, name, args, kwargs)
        return fn(input, *args, **kwargs)

    return named(guarded, name)


def diagonal_size(t: Any, name: str, *args: Any, **kwargs: Any) -> int:
    if not isinstance(t, Tensor):
        return 0
    offset = abs(
        as_int(
            kwargs.get("offset", kwargs.get("diagonal", args[0] if args else 0)) or 0
        )
    )
    if name == "diag_embed":
        n = as_int(t.shape[-1]) + offset if t.dim() else 1
        return numel(t) * n
    if name == "diagflat" or t.dim() <= 1:
        n = numel(t) + offset
        return n * n
    return numel(t)


def diagonalizing(fn: Callable, name: str) -> Callable:
    def guarded(input: Any, *args: Any, **kwargs: Any) -> Any:
        check_elements(
            diagonal_size(input, name, *args, **kwargs), f"torch.{name}(...)"
        )
        return fn(input, *args, **kwargs)

    return named(guarded, name)


# ----------------------------------------------------------------------------------
# tensor methods (factories: tensor -> guarded bound method)


def check_expand_shape(t: Tensor, sizes: Any, what: str) -> None:
    shape = (
        (
            sizes[0]
            if len(sizes) == 1 and isinstance(sizes[0], (tuple, list, torch.Size))
            else sizes
        )
        if isinstance(sizes, tuple)
        else sizes
    )
    shape = list(shape)
    offset = len(shape) - t.dim()
    n = 1
    for i, s in enumerate(shape):
        s = as_int(s)
        if s == -1 and i >= offset:
            s = as_int(t.shape[i - offset])
        n *= max(s, 0)
    check_elements(n, what)


def tensor_expand(t: Tensor) -> Callable:
    def expand(*sizes: Any) -> Any:
        check_expand_shape(t, sizes, "Tensor.expand(...)")
        return t.expand(*sizes)

    return expand


def tensor_broadcast_to(t: Tensor) -> Callable:
    def broadcast_to_(size: Any) -> Any:
        check_expand_shape(t, size, "Tensor.broadcast_to(...)")
        return t.broadcast_to(size)

    return broadcast_to_


def tensor_expand_as(t: Tensor) -> Callable:
    def expand_as(other: Any) -> Any:
        if isinstance(other, Tensor):
            check_elements(numel(other), "Tensor.expand_as(...)")
        return t.expand_as(other)

    return expand_as


def tensor_repeat(t: Tensor) -> Callable:
    def repeat(*sizes: Any) -> Any:
        check_elements(numel(t) * size_from_args(sizes, {}), "Tensor.repeat(...)")
        return t.repeat(*sizes)

    return repeat


def tensor_tile(t: Tensor) -> Callable:
    def tile_(*dims: Any) -> Any:
        check_elements(numel(t) * size_from_args(dims, {}), "Tensor.tile(...)")
        return t.tile(*dims)

    return tile_


def tensor_nonzero(t: Tensor) -> Callable:
    def nonzero_(**kwargs: Any) -> Any:
        check_elements(numel(t) * max(t.dim(), 1), "Tensor.nonzero(...)")
        return t.nonzero(**kwargs)

    return nonzero_


def tensor_new(name: str) -> Callable:
    def factory(t: Tensor) -> Callable:
        # uninitialised memory could hold another job's data: new_empty gives zeros
        method = getattr(t, "new_zeros" if name == "new_empty" else name)

        def new(*args: Any, **kwargs: Any) -> Any:
            check_placement(kwargs)
            if name == "new_full":
                size = kwargs.get("size", args[0] if args else ())
            else:
                size = kwargs.get(
                    "size",
                    args[0]
                    if len(args) == 1 and isinstance(args[0], (tuple, list, torch.Size))
                    else args,
                )
            check_elements(shape_numel(size), f"Tensor.{name}(...)")
            return method(*args, **kwargs)

        return new

    return factory


def tensor_new_tensor(t: Tensor) -> Callable:
    return tensor_like(t.new_tensor, "Tensor.new_tensor")


def tensor_to(t: Tensor) -> Callable:
    def to(*args: Any, **kwargs: Any) -> Any:
        for a in list(args) + list(kwargs.values()):
            if not isinstance(a, (torch.dtype, Tensor, bool)):
                raise ForbiddenConstruct(
                    "Tensor.to(...) accepts only a dtype or another tensor here; the "
                    "device is chosen by the job"
                )
        if "device" in kwargs:
            raise ForbiddenConstruct("Tensor.to(device=...) is not allowed")
        return t.to(*args, **kwargs)

    return to


def tensor_combining(name: str) -> Callable:
    unbound = getattr(Tensor, name)

    def factory(t: Tensor) -> Callable:
        method = getattr(t, name)

        def combined(*args: Any, **kwargs: Any) -> Any:
            if kwargs:
                check_placement(kwargs)
            check_combined(unbound, f"Tensor.{name}(...)", (t, *args), kwargs)
            return method(*args, **kwargs)

        return combined

    return factory


def tensor_splitting(name: str) -> Callable:
    def factory(t: Tensor) -> Callable:
        method = getattr(t, name)

        def split(*args: Any, **kwargs: Any) -> Any:
            check_pieces(t, name, args, kwargs)
            return method(*args, **kwargs)

        return split

    return factory


def tensor_diagonalizing(name: str) -> Callable:
    def factory(t: Tensor) -> Callable:
        method = getattr(t, name)

        def guarded(*args: Any, **kwargs: Any) -> Any:
            check_elements(
                diagonal_size(t, name, *args, **kwargs), f"Tensor.{name}(...)"
            )
            return method(*args, **kwargs)

        return guarded

    return factory


def tensor_repeat_interleave(t: Tensor) -> Callable:
    def ri(repeats: Any = None, dim: Any = None, **kwargs: Any) -> Any:
        return repeat_interleave(t, repeats, dim, **kwargs)

    return ri


# ----------------------------------------------------------------------------------
# distributions


def size_numel(size: Any) -> int:
    if type(size) is not torch.Size:  # some distributions keep a plain tuple
        return math.prod(shape_ints(size))
    n = size.numel()
    return n if type(n) is int else as_int(n)


def dist_numel(d: Any) -> int:
    return size_numel(d.batch_shape) * size_numel(d.event_shape)


def _lkj_dim(args: tuple, kwargs: dict) -> int:
    dim = kwargs.get("dim", args[0] if args else 1)
    return as_int(dim) if not isinstance(dim, Tensor) or numel(dim) == 1 else 1


def guard_distribution(cls: type, name: str) -> Callable:
    """``dist.<Name>(...)``: the batch x event size is bounded before validation runs.

    Constructors broadcast their parameters (as views) and validate them (which
    allocates the full broadcast), so the shape is learnt first: by the product of the
    parameter sizes when that is small, else by constructing on meta tensors without
    validation, else by broadcasting the parameter shapes.
    """
    lkj = name.startswith("LKJ")

    def construct(*args: Any, **kwargs: Any) -> Any:
        if lkj:
            d = _lkj_dim(args, kwargs)
            check_elements(d * d, f"dist.{name}(...)")
        total, count = tensor_args_numel(args, kwargs)
        if count >= 2 and total > SMALLEST["max_tensor_elements"]:
            n = None
            if not any(isinstance(a, Distribution) for a in (*args, *kwargs.values())):
                try:
                    meta_kwargs = {k: _to_meta(v) for k, v in kwargs.items()}
                    meta_kwargs["validate_args"] = False
                    n = dist_numel(cls(*_to_meta(args), **meta_kwargs))
                except Exception:  # noqa: BLE001 - fall back to the broadcast bound
                    n = None
            if n is None:
                n = broadcast_numel(*_shapes_of(args, kwargs))
            if n is None:
                n = total
            check_elements(n, f"dist.{name}(...)")
        d = cls(*args, **kwargs)
        check_elements(dist_numel(d), f"dist.{name}(...)")
        return d

    return named(construct, name)


def _sample_shape_arg(args: tuple, kwargs: dict) -> Any:
    return kwargs.get("sample_shape", args[0] if args else ())


def sampled_numel(d: Any, sample_shape: Any) -> int:
    n = shape_numel(sample_shape) * dist_numel(d)
    total_count = getattr(d, "total_count", None)
    if isinstance(d, torch.distributions.Multinomial) and total_count is not None:
        n *= max(as_int(total_count), 1)  # sampled as total_count categorical draws
    return n


def dist_method(name: str) -> Callable:
    def factory(d: Any) -> Callable:
        method = getattr(d, name)

        def guarded(*args: Any, **kwargs: Any) -> Any:
            if name in ("sample", "rsample"):
                n = sampled_numel(d, _sample_shape_arg(args, kwargs))
            elif name == "expand_by":
                n = shape_numel(_sample_shape_arg(args, kwargs)) * dist_numel(d)
            elif name == "expand":
                shape = kwargs.get("batch_shape", args[0] if args else ())
                n = shape_numel(shape) * math.prod(shape_ints(d.event_shape))
            elif name in ("log_prob", "cdf", "icdf", "score_parts"):
                value = kwargs.get("value", args[0] if args else None)
                n = 0
                if isinstance(value, Tensor):
                    n = (
                        broadcast_numel(
                            value.shape, tuple(d.batch_shape) + tuple(d.event_shape)
                        )
                        or 0
                    )
            elif name == "enumerate_support":
                n = support_size(d) * math.prod(shape_ints(d.batch_shape))
            else:  # mask, to_event, independent: the result's size
                out = method(*args, **kwargs)
                check_elements(dist_numel(out), f"Distribution.{name}(...)")
                return out
            check_elements(n, f"Distribution.{name}(...)")
            return method(*args, **kwargs)

        return guarded

    return factory


def dist_matrix_property(name: str) -> Callable:
    """``covariance_matrix``/``precision_matrix``/``scale_tril``: computed on demand by
    low-rank distributions as batch x D x D (D = the event size)."""

    def factory(d: Any) -> Any:
        event = shape_ints(d.event_shape)
        dim = event[-1] if event else 1
        check_elements(size_numel(d.batch_shape) * dim * dim, f"Distribution.{name}")
        return getattr(d, name)

    return factory


def call_distribution(d: Any, args: tuple, kwargs: dict) -> None:
    """``d(sample_shape)`` samples, like ``d.sample(sample_shape)``."""
    check_elements(
        sampled_numel(d, _sample_shape_arg(args, kwargs)), "sampling a distribution"
    )


def support_size(d: Any) -> int:
    total = getattr(d, "total_count", None)
    if isinstance(total, Tensor):
        return (as_int(total.max()) + 1) if numel(total) else 1
    if isinstance(total, int):
        return total + 1
    for attr in ("probs", "logits"):
        p = d.__dict__.get(attr)
        if isinstance(p, Tensor) and p.dim():
            return as_int(p.shape[-1]) * max(math.prod(shape_ints(d.event_shape)), 1)
    return 2


def kl_divergence(p: Any, q: Any) -> Any:
    if isinstance(p, Distribution) and isinstance(q, Distribution):
        n = broadcast_numel(p.batch_shape, q.batch_shape)
        if n is not None:
            event = max(
                math.prod(shape_ints(p.event_shape)),
                math.prod(shape_ints(q.event_shape)),
            )
            check_elements(n * event, "dist.kl_divergence(...)")
    return torch.distributions.kl_divergence(p, q)


def _active_plate_shape() -> list[int]:
    """The batch shape that the vectorized plates now active impose on a sample site.

    Includes plates opened outside user code (e.g. the particle plate of
    ``vectorize_particles=True``).
    """
    shape: list[int] = []
    for m in _PYRO_STACK:
        if (
            isinstance(m, IndepMessenger)
            and m._vectorized is True
            and m.dim is not None
        ):
            dim = as_int(m.dim)
            size = getattr(m, "subsample_size", None)
            if size is None:
                size = m.size
            size = as_int(size)
            if len(shape) < -dim:
                shape = [1] * (-dim - len(shape)) + shape
            shape[dim] = size
    return shape


#: count distributions whose latent sites TraceEnum_ELBO may enumerate
WIDE_SUPPORT: tuple[type, ...] = tuple(
    getattr(pyro_dist, n)
    for n in ("Binomial", "BetaBinomial", "ExtendedBinomial", "ExtendedBetaBinomial")
    if hasattr(pyro_dist, n)
)


def check_sample_site(name: Any, fn: Any, args: tuple, kwargs: dict) -> None:
    """``pyro.sample``: the value's size, with the active plates, before Pyro samples."""
    if not isinstance(fn, Distribution):
        raise ForbiddenConstruct(
            f"pyro.sample({name!r}, ...) needs a distribution (e.g. dist.Normal(0., 1.)) "
            f"as its second argument"
        )
    obs = kwargs.get("obs")
    sample_n = (
        shape_numel(_sample_shape_arg(args, kwargs))
        if (args or "sample_shape" in kwargs)
        else 1
    )
    # cheap upper bound first: batch x event x every active plate x obs x sample_shape
    quick = dist_numel(fn) * sample_n
    for m in _PYRO_STACK:
        if isinstance(m, IndepMessenger) and m._vectorized is True:
            size = getattr(m, "subsample_size", None)
            quick *= max(as_int(size if size is not None else m.size), 1)
    if isinstance(obs, Tensor):
        quick *= max(numel(obs), 1)
    if isinstance(fn, torch.distributions.Multinomial):
        quick *= max(as_int(fn.total_count), 1)
    if quick <= SMALLEST["max_tensor_elements"] and not (
        obs is None and isinstance(fn, WIDE_SUPPORT)
    ):
        return
    batch = shape_ints(fn.batch_shape)
    event = math.prod(shape_ints(fn.event_shape))
    plates = _active_plate_shape()
    full = broadcast_numel(batch, plates)
    if full is None:
        full = math.prod(batch) * math.prod(plates)
    n = full * event * sample_n
    if isinstance(fn, torch.distributions.Multinomial):
        n *= max(as_int(fn.total_count), 1)
    check_elements(n, f"the value of sample site {name!r}")
    if isinstance(obs, Tensor):
        # the log-density of obs is computed over obs's batch dims broadcast with the
        # site's batch shape and plates (event dims are not plate dims)
        obs_shape = shape_ints(obs.shape)
        event_dims = len(fn.event_shape)
        obs_batch = (
            obs_shape[: len(obs_shape) - event_dims] if event_dims else obs_shape
        )
        n_obs = broadcast_numel(obs_batch, batch, plates)
        if n_obs is not None:
            check_elements(
                n_obs * event,
                f"the observation at sample site {name!r} (broadcast with its plates)",
            )
    elif obs is None and isinstance(fn, WIDE_SUPPORT):
        # a latent count site may be enumerated by TraceEnum_ELBO outside our code:
        # bound its support x batch size here, where the user's line is known
        check_elements(
            support_size(fn) * max(full, 1),
            f"the enumerable support of {type(fn).__name__} at site {name!r}",
        )


def _tensor_attributes(obj: Any) -> list[Tensor]:
    return [v for v in vars(obj).values() if isinstance(v, Tensor)]


def check_applied(obj: Any, value: Any, what: str) -> None:
    """A transform applied to / a constraint checked on ``value`` broadcasts ``value``
    with the transform's or constraint's own tensors (``AffineTransform(loc, scale)``)."""
    if not isinstance(value, Tensor):
        return
    params = _tensor_attributes(obj)
    if not params:
        return
    n = broadcast_numel(value.shape, *(p.shape for p in params))
    if n is not None:
        check_elements(n, what)


def constraint_check(c: Any) -> Callable:
    def check(value: Any) -> Any:
        check_applied(c, value, "Constraint.check(...)")
        return c.check(value)

    return check


def call_transform(t: Any, args: tuple) -> None:
    if args:
        check_applied(t, args[0], f"applying {type(t).__name__}")
        for part in getattr(t, "parts", None) or ():
            check_applied(part, args[0], f"applying {type(part).__name__}")


def torch_size(dims: Any = ()) -> torch.Size:
    """``torch.Size(iterable)``: consumed item by item (``torch.Size(range(10**12))``)."""
    from .runtime import counted

    if not isinstance(dims, (tuple, list, torch.Size)):
        dims = tuple(counted(dims))
    check_sequence(dims)
    return torch.Size(dims)


# ----------------------------------------------------------------------------------
# nn modules

_RECURRENT_GATES = {
    "GRU": 3,
    "LSTM": 4,
    "RNN": 1,
    "GRUCell": 3,
    "LSTMCell": 4,
    "RNNCell": 1,
}
_SIZE_KWARGS = (
    "in_features",
    "in1_features",
    "in2_features",
    "out_features",
    "num_embeddings",
    "embedding_dim",
    "input_size",
    "hidden_size",
    "normalized_shape",
    "num_features",
    "num_parameters",
    "in_channels",
    "out_channels",
    "kernel_size",
)


def _size_int(a: Any) -> int | None:
    """A layer size argument as an int: ints and one-element integer tensors (torch
    takes those as sizes, through ``__index__``); None for anything else."""
    if a is None or isinstance(a, bool):
        return None
    if isinstance(a, int):
        return int(a)
    if isinstance(a, Tensor) and numel(a) == 1 and not a.is_floating_point() and not a.is_complex():
        return as_int(a)
    return None


def module_parameter_bound(name: str, args: tuple, kwargs: dict) -> int:
    ints: list[int] = []
    shapes = 1
    for a in (*args, *(kwargs.get(k) for k in _SIZE_KWARGS)):
        i = _size_int(a)
        if i is not None:
            ints.append(i)
        elif isinstance(a, (tuple, list, torch.Size)):
            items = [_size_int(x) for x in a]
            if all(x is not None for x in items):
                shapes *= shape_numel(items)
    gate = _RECURRENT_GATES.get(name)
    if gate is not None and ints:
        inp = ints[0]
        hidden = ints[1] if len(ints) > 1 else ints[0]
        layers = _size_int(kwargs.get("num_layers", ints[2] if len(ints) > 2 else 1)) or 1
        if layers > MAX_RECURRENT_LAYERS:
            raise LimitExceeded(
                f"nn.{name}(num_layers={layers}): at most {MAX_RECURRENT_LAYERS} layers "
                "(building and running each layer costs time no other limit counts)",
                limit="max_recurrent_layers",
            )
        bidirectional = kwargs.get("bidirectional", args[6] if len(args) > 6 else False)
        dirs = 2 if bidirectional else 1
        return (
            gate
            * layers
            * dirs
            * hidden
            * (max(inp, hidden) * dirs + hidden + 2)
        )
    if not ints:
        return shapes
    return math.prod(max(i, 1) for i in ints) * shapes


def guard_module(cls: type, name: str) -> Callable:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        check_placement(kwargs)
        check_elements(
            module_parameter_bound(name, args, kwargs), f"nn.{name}(...) parameters"
        )
        return cls(*args, **kwargs)

    return named(guarded, name)


def module_output_shape(module: Any, shape: tuple) -> tuple:
    """Output shape of ``module`` on an input of ``shape`` (shape-preserving if unknown)."""
    nn = torch.nn
    if isinstance(module, nn.Sequential):
        for layer in module:
            shape = module_output_shape(layer, shape)
        return shape
    if isinstance(module, (nn.Linear, nn.Bilinear)):
        return shape[:-1] + (module.out_features,)
    if isinstance(module, nn.Embedding):
        return shape + (module.embedding_dim,)
    if isinstance(module, nn.RNNBase):
        width = module.hidden_size * (2 if module.bidirectional else 1)
        return shape[:-1] + (width,)
    if isinstance(module, nn.RNNCellBase):
        return shape[:-1] + (module.hidden_size,)
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        # (N, C_in, *spatial) -> (N, C_out, *spatial'); padding can make spatial' larger
        d = len(module.kernel_size)
        if len(shape) < d + 1:
            return shape
        spatial = []
        for i in range(d):
            pad = module.padding[i] if isinstance(module.padding, tuple) else shape[-d + i]
            size = shape[-d + i] + 2 * pad - module.dilation[i] * (module.kernel_size[i] - 1) - 1
            spatial.append(max(size // module.stride[i] + 1, 1))
        return shape[: -d - 1] + (module.out_channels, *spatial)
    return shape


def check_module_call(module: Any, args: Any) -> None:
    """Bound the output of calling an ``nn`` module before it runs.

    A ``PyroModule`` samples its ``PyroSample`` attributes (and creates its ``PyroParam``s)
    through Pyro directly when called: only while the model or guide runs."""
    if isinstance(module, (PyroModule, torch.nn.Sequential)):
        run = current_run()
        # only outside a model run does it matter whether the call would sample; the
        # scan visits every sub-module, so it is charged to the loop budget (on every
        # call of a module with 50,000 sub-modules it was 40 ms of uncounted work)
        if (run is None or not run.model) and any(
            m.__dict__.get("_pyro_samples") or m.__dict__.get("_pyro_params")
            for m in counted(module.modules())
        ):
            from .handlers import require_model_run

            require_model_run(f"calling {type(module).__name__} (it samples PyroSample attributes)")
    if args and isinstance(args[0], Tensor):
        check_elements(
            shape_numel(module_output_shape(module, shape_ints(args[0].shape))),
            f"calling nn.{type(module).__name__}",
        )


def one_hot(tensor: Any, num_classes: int = -1) -> Any:
    import torch.nn.functional as F

    n = as_int(num_classes)
    if n < 0:
        n = as_int(tensor.max()) + 1 if numel(tensor) else 0
    check_elements(numel(tensor) * max(n, 1), "F.one_hot(...)")
    return F.one_hot(tensor, num_classes)


def pad(input: Any, pad: Any, mode: str = "constant", value: Any = None) -> Any:
    import torch.nn.functional as F

    shape = list(shape_ints(input.shape))
    pads = [as_int(p) for p in pad]
    for i in range(0, len(pads) - 1, 2):
        d = len(shape) - 1 - i // 2
        if d >= 0:
            shape[d] = shape[d] + pads[i] + pads[i + 1]
    check_elements(shape_numel(shape), "F.pad(...)")
    return F.pad(input, pad, mode, value)


# ----------------------------------------------------------------------------------
# Python operators and builtins


def _index_of(n: Any) -> int | None:
    """The repeat count of ``seq * n`` as Python computes it (``__index__``), or None."""
    if type(n) is int or type(n) is bool:
        return int(n)
    if isinstance(n, Tensor):
        if numel(n) == 1 and not n.is_floating_point() and not n.is_complex():
            return as_int(n)
        return None
    return None


def py_binop_guard(kind: str, a: Any, b: Any) -> None:
    """Refuse Python-level operations whose *result* would be huge, before computing."""
    ta, tb = type(a), type(b)
    ints = ta in (int, bool) and tb in (int, bool)
    if kind == "pow":
        # |a| ** b has about (bit_length(a) - 1) * b bits: refuse before computing it
        if (
            ints
            and b > 0
            and abs(a) > 1
            and (abs(a).bit_length() - 1) * b > MAX_INT_BITS
        ):
            shown_a = a if a.bit_length() < 64 else "<big int>"
            shown_b = b if b.bit_length() < 64 else "<big int>"
            raise LimitExceeded(
                f"`{shown_a} ** {shown_b}` exceeds the {MAX_INT_BITS}-bit integer limit",
                limit="max_int_bits",
            )
    elif kind == "lshift":
        if ints and b > 0 and a.bit_length() + b > MAX_INT_BITS:
            raise LimitExceeded(
                f"`<<` result exceeds the {MAX_INT_BITS}-bit integer limit",
                limit="max_int_bits",
            )
    elif kind == "mul":
        if ints:
            if a.bit_length() + b.bit_length() > MAX_INT_BITS + 1:
                raise LimitExceeded(
                    f"`*` result exceeds the {MAX_INT_BITS}-bit integer limit",
                    limit="max_int_bits",
                )
            return
        for seq, n in ((a, b), (b, a)):
            if isinstance(seq, (str, list, tuple)):
                count = _index_of(n)
                if count is None:
                    continue
                limit = (
                    MAX_STRING_CHARS if isinstance(seq, str) else MAX_SEQUENCE_LENGTH
                )
                if len(seq) * count > limit:
                    raise LimitExceeded(
                        f"repeating a {type(seq).__name__} would make {len(seq) * count} items "
                        f"(limit {limit})",
                        limit="max_string_chars"
                        if isinstance(seq, str)
                        else "max_sequence_length",
                    )
    elif kind == "add":
        if type(a) is list and type(b) is not list and type(b) is not tuple:
            # `xs += iterable` extends the list in C, consuming the whole iterable
            if (
                isinstance(b, (range, str, dict, Tensor))
                or type(b) in _BOUNDED_CONTAINERS
            ):
                if len(a) + len(b) > MAX_SEQUENCE_LENGTH:
                    raise sequence_limit_error(len(a) + len(b))
                return
            raise ForbiddenConstruct(
                "`+=` on a list takes a list or a tuple; wrap an iterator in list(...)"
            )
        if isinstance(a, (str, list, tuple)) and isinstance(b, (str, list, tuple)):
            limit = MAX_STRING_CHARS if isinstance(a, str) else MAX_SEQUENCE_LENGTH
            if len(a) + len(b) > limit:
                raise (
                    string_limit_error(len(a) + len(b))
                    if isinstance(a, str)
                    else sequence_limit_error(len(a) + len(b))
                )
    elif kind == "mod" and isinstance(a, str):
        raise ForbiddenConstruct(
            "`%` formatting of strings is not allowed; use an f-string"
        )


def contains(item: Any, container: Any) -> bool:
    """``item in container`` with ``range`` membership computed arithmetically.

    Python scans a range item by item (in C) for anything but an ``int``; a float or a
    tensor in ``range(10**18)`` would run for years.
    """
    if type(container) is range:
        t = type(item)
        if t is int or t is bool:
            return item in container
        if isinstance(item, Tensor):
            if numel(item) != 1:
                raise RuntimeError(
                    "Boolean value of Tensor with more than one value is ambiguous"
                )
            item = item.item()
            t = type(item)
        if t is int or t is bool:
            return item in container
        if t is float:
            return item.is_integer() and int(item) in container
        return False  # nothing else compares equal to an int
    if type(container) in _BOUNDED_CONTAINERS or isinstance(container, Tensor):
        if isinstance(container, (list, tuple)) and isinstance(item, _NESTED):
            check_container_work(container)
        return item in container
    # a lazy iterator (zip, enumerate, reversed, ...): Python would scan it in C;
    # scan it here, charging every item to the loop budget
    from .runtime import counted

    for x in counted(container):
        if x is item or x == item:
            return True
    return False


_BOUNDED_CONTAINERS = {
    list,
    tuple,
    dict,
    str,
    torch.Size,
    type({}.keys()),
    type({}.values()),
    type({}.items()),
}


def checked_item_value(obj: Any, key: Any, value: Any) -> Any:
    """``obj[key] = value`` on a list or dict: the container stays within its bound.

    A slice assignment on a list consumes its right side in C (``lst[:] =
    range(10**12)``) and can double a list per statement (``lst[:0] = lst``); a dict
    kept at module level could grow a little on every run.
    """
    if type(obj) is list and type(key) is slice:
        from .runtime import counted

        if type(value) is not list and type(value) is not tuple:
            value = list(counted(value))
        removed = len(range(*key.indices(len(obj))))
        if len(obj) - removed + len(value) > MAX_SEQUENCE_LENGTH:
            raise sequence_limit_error(len(obj) - removed + len(value))
    elif type(obj) is dict and len(obj) >= MAX_SEQUENCE_LENGTH and key not in obj:
        raise LimitExceeded(
            f"dicts are limited to {MAX_SEQUENCE_LENGTH} items",
            limit="max_sequence_length",
        )
    return value


# Element comparisons one C-level container comparison (==, in, count, max, sorted) may
# make: nested lists compare element by element, all in C, out of the loop budget's reach.
MAX_CONTAINER_COMPARISONS = 10_000_000
_NESTED = (list, tuple, dict)


def deep_size(value: Any, depth: int = 0) -> int:
    """Elements a comparison of ``value`` may visit: lengths multiplied down the nesting,
    following the largest of the first few items at each level (an estimate from above
    for the uniform nestings that make comparisons slow)."""
    if not isinstance(value, _NESTED) or depth > 16:
        return 1
    items = list(value.values()) if isinstance(value, dict) else value
    if not items:
        return 1
    inner = max(deep_size(x, depth + 1) for x in items[:4])
    return len(items) * inner


def check_container_work(*values: Any) -> None:
    """Refuse a comparison of nested containers that would make too many element
    comparisons in one C call (``[[0]*10**5]*10**5 == ...`` runs for seconds)."""
    nested = [v for v in values if isinstance(v, _NESTED)]
    if not nested:
        return
    work = min(deep_size(v) for v in nested) if len(nested) > 1 else deep_size(nested[0])
    if work > MAX_CONTAINER_COMPARISONS:
        raise LimitExceeded(
            f"comparing these containers would make about {work} element comparisons in one "
            f"step; the limit is {MAX_CONTAINER_COMPARISONS} (compare tensors instead)",
            limit="max_call_steps",
        )


def check_sort_cost(items: list) -> None:
    """Sorting compares items in C: long strings sharing prefixes make that slow, and so
    do nested lists."""
    check_container_work(items)
    chars = 0
    for x in items:
        if type(x) is str:
            chars += len(x)
    if chars > 10 * MAX_STRING_CHARS:
        raise LimitExceeded(
            f"sorting, min and max compare at most {10 * MAX_STRING_CHARS} characters "
            f"of text in one call (this one: {chars})",
            limit="max_string_chars",
        )


# ----------------------------------------------------------------------------------
# text: every conversion to text is built with a running length budget


def _tensor_text(value: Tensor, repr_mode: bool) -> str:
    # torch summarises only dims longer than 2 * edgeitems: a tensor of 2**25 elements
    # of shape (2, ..., 2) would print in full; such tensors are described instead
    shown = 1
    for s in shape_ints(value.shape):
        shown *= min(s, 6) if numel(value) > 1000 else s
    if shown > 10_000:
        return f"tensor(<{tuple(shape_ints(value.shape))} {value.dtype}>)"
    return repr(value) if repr_mode else str(value)


def to_text(value: Any, repr_mode: bool = False, budget: int = MAX_STRING_CHARS) -> str:
    """``str(value)`` (or ``repr``) built piece by piece, refused beyond ``budget``."""
    parts: list[str] = []
    used = [0]

    def emit(s: str) -> None:
        used[0] += len(s)
        if used[0] > budget:
            raise string_limit_error(used[0])
        parts.append(s)

    in_progress: set[int] = set()

    def walk(v: Any, as_repr: bool) -> None:
        t = type(v)
        if t is str:
            if as_repr:
                emit(repr(v))
            else:
                emit(v)
        elif t is list or t is tuple or t is dict:
            if id(v) in in_progress:
                emit("[...]" if t is list else ("{...}" if t is dict else "(...)"))
                return
            in_progress.add(id(v))
            try:
                if t is dict:
                    emit("{")
                    for i, (k, x) in enumerate(v.items()):
                        if i:
                            emit(", ")
                        walk(k, True)
                        emit(": ")
                        walk(x, True)
                    emit("}")
                else:
                    emit("[" if t is list else "(")
                    for i, x in enumerate(v):
                        if i:
                            emit(", ")
                        walk(x, True)
                    if t is tuple and len(v) == 1:
                        emit(",")
                    emit("]" if t is list else ")")
            finally:
                in_progress.discard(id(v))
        elif t is int:
            if v.bit_length() > MAX_INT_BITS:
                raise LimitExceeded(
                    f"integers of more than {MAX_INT_BITS} bits are not turned into text",
                    limit="max_int_bits",
                )
            emit(repr(v))
        elif isinstance(v, Tensor):
            emit(_tensor_text(v, as_repr))
        else:
            emit(repr(v) if as_repr else str(v))

    walk(value, repr_mode)
    return "".join(parts)


def format_value(value: Any, spec: str, conversion: int = -1) -> str:
    """One f-string / ``str.format`` field: ``format(value, spec)`` with bounded size.

    The spec was checked (width and precision at most 99), so the field is at most
    99 characters longer than the value's text.
    """
    if conversion == ord("r"):
        value = to_text(value, repr_mode=True)
    elif conversion == ord("a"):
        value = (
            to_text(value, repr_mode=True).encode("ascii", "backslashreplace").decode()
        )
    elif conversion == ord("s"):
        value = to_text(value)
    if isinstance(value, Tensor) and numel(value) == 1 and spec:
        value = value.item()
    if not spec or type(value) in (list, tuple, dict):
        return to_text(value) if type(value) is not str else value
    if type(value) is int and value.bit_length() > MAX_INT_BITS:
        raise LimitExceeded(
            f"integers of more than {MAX_INT_BITS} bits are not turned into text",
            limit="max_int_bits",
        )
    if isinstance(value, Tensor):
        return format(to_text(value), spec)
    return format(value, spec)


def str_format(template: str) -> Callable:
    """``str.format`` restricted to plain fields: no attribute/index lookups, no nesting.

    The result is assembled field by field and refused as soon as it grows past the
    string limit (``"{0}{0}...".format(long_text)`` never builds gigabytes).
    """

    def format_(*args: Any, **kwargs: Any) -> str:
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as exc:
            raise ForbiddenConstruct(f"invalid format string: {exc}") from None
        for _, field, spec, _conversion in parsed:
            if field is None:
                continue
            if not FIELD_NAME.match(field):
                raise ForbiddenConstruct(
                    f"format field {{{field}}} is not allowed: only {{}}, {{0}} or {{name}} "
                    "fields (no attribute or index lookups)"
                )
            if spec and ("{" in spec or not SAFE_FORMAT_SPEC.match(spec)):
                raise ForbiddenConstruct(
                    f"format spec {spec!r} is not allowed; use a simple spec such as `.3f` (width at most 99)"
                )
        args = tuple(
            a.item() if isinstance(a, Tensor) and numel(a) == 1 else a for a in args
        )
        out: list[str] = []
        used = 0
        auto = 0
        for literal, field, spec, conversion in parsed:
            out.append(literal)
            used += len(literal)
            if field is not None:
                if field == "":
                    key: Any = auto
                    auto += 1
                elif field.isdigit():
                    key = int(field)
                else:
                    key = field
                if isinstance(key, int):
                    if key >= len(args):
                        raise IndexError(
                            f"Replacement index {key} out of range for positional args tuple"
                        )
                    value = args[key]
                else:
                    if key not in kwargs:
                        raise KeyError(key)
                    value = kwargs[key]
                text = format_value(
                    value, spec or "", ord(conversion) if conversion else -1
                )
                out.append(text)
                used += len(text)
            if used > MAX_STRING_CHARS:
                raise string_limit_error(used)
        return "".join(out)

    return format_


__all__ = [name for name in dir() if not name.startswith("_")]


def str_split(s: str) -> Callable:
    def split(sep: Any = None, maxsplit: int = -1) -> list:
        return check_sequence(s.split(sep, maxsplit))

    return split


def str_join(sep: str) -> Callable:
    def join(items: Any) -> str:
        parts = check_sequence(list(items))
        total = len(sep) * max(len(parts) - 1, 0)
        for p in parts:
            if not isinstance(p, str):
                raise TypeError("join() takes strings")
            total += len(p)
        if total > MAX_STRING_CHARS:
            raise string_limit_error(total)
        return sep.join(parts)

    return join


def str_replace(s: str) -> Callable:
    def replace(old: str, new: str, count: int = -1) -> str:
        if not isinstance(old, str) or not isinstance(new, str):
            raise TypeError("replace() takes strings")
        n = s.count(old) if old else len(s) + 1
        if count >= 0:
            n = min(n, count)
        if len(s) + n * len(new) > MAX_STRING_CHARS:
            raise string_limit_error(len(s) + n * len(new))
        return s.replace(old, new, count)

    return replace
