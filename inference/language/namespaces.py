"""The whitelisted namespaces and attributes a model can reach.

Everything a program can touch is listed here: the members of ``torch``, ``pyro``,
``dist``, ``constraints``, ``nn``, ``F``, ``poutine`` and ``math``, the Python builtins,
and per value type the attributes that may be read (tensor methods, distribution
methods, ...). Functions that can allocate memory are wrapped so that their sizes are
checked against the active :class:`~inference.language.limits.Limits` before torch
allocates anything.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
import string
from collections.abc import Callable
from typing import Any

import pyro
import pyro.distributions as pyro_dist
import pyro.poutine as pyro_poutine
import torch
import torch.nn as torch_nn
import torch.nn.functional as torch_F
from pyro.distributions import constraints as pyro_constraints
from pyro.distributions import transforms as pyro_transforms
from pyro.infer import config_enumerate as pyro_config_enumerate
from pyro.poutine.messenger import Messenger

from .errors import ForbiddenConstruct, LimitExceeded, UnknownName
from .limits import MAX_TEXT_ITEMS
from .runtime import (
    check_elements,
    check_plate_size,
    check_sequence,
    counted,
    current_run,
    shape_numel,
    size_from_args,
)


class Namespace:
    """A whitelisted module: only ``members`` can be reached through it."""

    __slots__ = ("members", "ns_name")

    def __init__(self, ns_name: str, members: dict[str, Any]) -> None:
        self.ns_name = ns_name
        self.members = members

    def __repr__(self) -> str:
        return f"<model-language namespace {self.ns_name}>"


def _pick(module: Any, names: str | list[str]) -> dict[str, Any]:
    if isinstance(names, str):
        names = names.split()
    return {n: getattr(module, n) for n in names if hasattr(module, n)}


# ----------------------------------------------------------------------------------
# guards


def _check_placement(kwargs: dict) -> None:
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


def _named(fn: Callable, name: str) -> Callable:
    fn.__name__ = fn.__qualname__ = name
    return fn


def _creation(fn: Callable, name: str) -> Callable:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _check_placement(kwargs)
        check_elements(size_from_args(args, kwargs), f"torch.{name}(...)")
        return fn(*args, **kwargs)

    return _named(guarded, name)


def _placed(fn: Callable, name: str) -> Callable:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _check_placement(kwargs)
        return fn(*args, **kwargs)

    return _named(guarded, name)


def _full(*args: Any, **kwargs: Any) -> Any:
    _check_placement(kwargs)
    size = kwargs["size"] if "size" in kwargs else args[0]
    check_elements(shape_numel(size), "torch.full(...)")
    return torch.full(*args, **kwargs)


def _randint(*args: Any, **kwargs: Any) -> Any:
    _check_placement(kwargs)
    size = kwargs.get("size")
    if size is None:
        size = next((a for a in args if isinstance(a, (tuple, list, torch.Size))), ())
    check_elements(shape_numel(size), "torch.randint(...)")
    return torch.randint(*args, **kwargs)


def _arange(*args: Any, **kwargs: Any) -> Any:
    _check_placement(kwargs)
    start, end, step = 0, None, 1
    pos = [a for a in args]
    if len(pos) == 1:
        end = pos[0]
    elif len(pos) >= 2:
        start, end = pos[0], pos[1]
        if len(pos) >= 3:
            step = pos[2]
    start = kwargs.get("start", start)
    end = kwargs.get("end", end)
    step = kwargs.get("step", step)
    if end is not None:
        try:
            n = math.ceil((float(end) - float(start)) / float(step))
        except (ZeroDivisionError, OverflowError, ValueError, TypeError):
            n = 0
        check_elements(max(n, 0), "torch.arange(...)")
    return torch.arange(*args, **kwargs)


def _linspace_like(fn: Callable, name: str) -> Callable:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _check_placement(kwargs)
        steps = (
            kwargs["steps"] if "steps" in kwargs else (args[2] if len(args) > 2 else 0)
        )
        check_elements(shape_numel(steps), f"torch.{name}(...)")
        return fn(*args, **kwargs)

    return _named(guarded, name)


def _eye(*args: Any, **kwargs: Any) -> Any:
    _check_placement(kwargs)
    n = kwargs.get("n", args[0] if args else 0)
    m = kwargs.get(
        "m", args[1] if len(args) > 1 and not isinstance(args[1], torch.dtype) else n
    )
    check_elements(shape_numel((n, m)), "torch.eye(...)")
    return torch.eye(*args, **kwargs)


def _tensor_like(fn: Callable, name: str) -> Callable:
    def guarded(data: Any, *args: Any, **kwargs: Any) -> Any:
        _check_placement(kwargs)
        if isinstance(data, range):
            check_elements(len(data), f"torch.{name}(range(...))")
        elif isinstance(data, (list, tuple)):
            check_elements(_nested_shape_numel(data), f"torch.{name}(...)")
        return fn(data, *args, **kwargs)

    return _named(guarded, name)


def _tensor_args_numel(args: Any, kwargs: dict) -> tuple[int, int]:
    total, count = 1, 0
    for a in list(args) + list(kwargs.values()):
        if isinstance(a, torch.Tensor):
            total *= max(a.numel(), 1)
            count += 1
        elif isinstance(a, (list, tuple)):
            for b in a:
                if isinstance(b, torch.Tensor):
                    total *= max(b.numel(), 1)
                    count += 1
    return total, count


def _to_meta(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return torch.empty(value.shape, dtype=value.dtype, device="meta")
    if isinstance(value, (list, tuple)):
        return type(value)(_to_meta(v) for v in value)
    return value


def check_combined(fn: Callable, what: str, args: tuple, kwargs: dict) -> None:
    """Bound the result size of an op that combines several tensors.

    The product of the operands' sizes bounds the result of broadcasting, matmul,
    einsum, outer/kron products and cdist, so the (cheap) product is checked first;
    only when it is large is the op replayed on meta tensors to learn the exact shape.
    """
    run = current_run()
    limit = run.max_elements if run is not None else None
    if limit is None:
        from .limits import DEFAULT_LIMITS

        limit = DEFAULT_LIMITS.max_tensor_elements
    total, count = _tensor_args_numel(args, kwargs)
    if count < 2 or total <= limit:
        return
    try:
        out = fn(*_to_meta(args), **{k: _to_meta(v) for k, v in kwargs.items()})
    except Exception:  # noqa: BLE001 - an op without a meta kernel: the result check after the op
        return
    if isinstance(out, torch.Tensor):
        check_elements(out.numel(), what)
    elif isinstance(out, (list, tuple)):
        check_elements(sum(o.numel() for o in out if isinstance(o, torch.Tensor)), what)


def _combining(fn: Callable, name: str) -> Callable:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        check_combined(fn, f"torch.{name}(...)", args, kwargs)
        return fn(*args, **kwargs)

    return _named(guarded, name)


def _cartesian_like(fn: Callable, name: str) -> Callable:
    def guarded(*tensors: Any, **kwargs: Any) -> Any:
        n = len(tensors)
        for t in tensors:
            n *= max(t.numel() if isinstance(t, torch.Tensor) else 1, 1)
        check_elements(n, f"torch.{name}(...)")
        return fn(*tensors, **kwargs)

    return _named(guarded, name)


def _tril_indices(fn: Callable, name: str) -> Callable:
    def guarded(row: Any, col: Any, *args: Any, **kwargs: Any) -> Any:
        check_elements(2 * shape_numel((row, col)), f"torch.{name}(...)")
        return fn(row, col, *args, **kwargs)

    return _named(guarded, name)


def _repeat_interleave(
    input: Any, repeats: Any = None, dim: Any = None, **kwargs: Any
) -> Any:
    if not isinstance(input, torch.Tensor):
        return torch.repeat_interleave(input)
    if repeats is None:
        return torch.repeat_interleave(input)
    if isinstance(repeats, torch.Tensor) and repeats.numel() > 1:
        per = int(repeats.sum()) if not torch.jit.is_tracing() else 1
        n = per * (
            input.numel()
            // max(input.shape[dim] if dim is not None else input.numel(), 1)
        )
    else:
        n = input.numel() * max(int(repeats), 0)
    check_elements(n, "repeat_interleave(...)")
    return torch.repeat_interleave(input, repeats, dim, **kwargs)


def _tile(input: Any, dims: Any) -> Any:
    check_elements(input.numel() * shape_numel(dims), "torch.tile(...)")
    return torch.tile(input, dims)


def _combinations(input: Any, r: int = 2, with_replacement: bool = False) -> Any:
    if not 0 <= r <= 8:
        raise ForbiddenConstruct("torch.combinations(..., r) is limited to r <= 8")
    n = input.numel()
    count = math.comb(n + r - 1, r) if with_replacement else math.comb(n, r)
    check_elements(count * r, "torch.combinations(...)")
    return torch.combinations(input, r, with_replacement)


def _concatenating(fn: Callable, name: str) -> Callable:
    def guarded(tensors: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(tensors, (list, tuple)):
            check_elements(
                sum(t.numel() if isinstance(t, torch.Tensor) else 1 for t in tensors),
                f"torch.{name}(...)",
            )
        return fn(tensors, *args, **kwargs)

    return _named(guarded, name)


def _diagonal_size(t: Any, name: str, *args: Any, **kwargs: Any) -> int:
    if not isinstance(t, torch.Tensor):
        return 0
    offset = abs(
        int(kwargs.get("offset", kwargs.get("diagonal", args[0] if args else 0)) or 0)
    )
    if name == "diag_embed":
        n = t.shape[-1] + offset if t.dim() else 1
        return t.numel() * n
    if name == "diagflat" or t.dim() <= 1:
        n = t.numel() + offset
        return n * n
    return t.numel()


def _diagonalizing(fn: Callable, name: str) -> Callable:
    def guarded(input: Any, *args: Any, **kwargs: Any) -> Any:
        check_elements(
            _diagonal_size(input, name, *args, **kwargs), f"torch.{name}(...)"
        )
        return fn(input, *args, **kwargs)

    return _named(guarded, name)


def _tensor_diagonalizing(name: str) -> Callable:
    def factory(t: torch.Tensor) -> Callable:
        method = getattr(t, name)

        def guarded(*args: Any, **kwargs: Any) -> Any:
            check_elements(
                _diagonal_size(t, name, *args, **kwargs), f"Tensor.{name}(...)"
            )
            return method(*args, **kwargs)

        return guarded

    return factory


def _nested_shape_numel(data: Any) -> int:
    """Elements torch allocates for nested lists: it infers the shape from first items."""
    n = 1
    item = data
    for _ in range(64):
        if isinstance(item, (list, tuple)):
            n *= len(item)
            if not item:
                return n
            item = item[0]
        elif isinstance(item, torch.Tensor):
            return n * item.numel()
        else:
            return n
    return n


def nested_size(data: Any, budget: int) -> int:
    """Element count of nested lists/tuples/dicts (stops counting past ``budget``)."""
    total = 0
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            total += len(item)
            if total > budget:
                return total
            stack.extend(
                x for x in item if isinstance(x, (list, tuple, dict, torch.Tensor))
            )
        elif isinstance(item, dict):
            total += len(item)
            if total > budget:
                return total
            stack.extend(item.values())
            stack.extend(item.keys())
        elif isinstance(item, torch.Tensor):
            total += item.numel()
            if total > budget:
                return total
    return total


def check_text_source(value: Any) -> None:
    """Refuse turning a huge nested container into text (``str``, ``print``, f-strings)."""
    if (
        isinstance(value, (list, tuple, dict))
        and nested_size(value, MAX_TEXT_ITEMS) > MAX_TEXT_ITEMS
    ):
        raise LimitExceeded(
            f"converting a container with more than {MAX_TEXT_ITEMS} items to text is not allowed",
            limit="max_string_chars",
        )


# ----------------------------------------------------------------------------------
# torch

_TORCH_ELEMENTWISE = [
    "abs",
    "absolute",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "atan2",
    "arctan2",
    "add",
    "sub",
    "subtract",
    "mul",
    "multiply",
    "div",
    "divide",
    "true_divide",
    "floor_divide",
    "remainder",
    "fmod",
    "pow",
    "float_power",
    "neg",
    "negative",
    "exp",
    "exp2",
    "expm1",
    "log",
    "log1p",
    "log2",
    "log10",
    "sqrt",
    "rsqrt",
    "square",
    "sin",
    "cos",
    "tan",
    "sinh",
    "cosh",
    "tanh",
    "sigmoid",
    "relu",
    "erf",
    "erfc",
    "erfinv",
    "lgamma",
    "digamma",
    "polygamma",
    "mvlgamma",
    "floor",
    "ceil",
    "round",
    "trunc",
    "frac",
    "sign",
    "sgn",
    "reciprocal",
    "clamp",
    "clamp_min",
    "clamp_max",
    "clip",
    "maximum",
    "minimum",
    "fmax",
    "fmin",
    "logaddexp",
    "logaddexp2",
    "logit",
    "xlogy",
    "lerp",
    "hypot",
    "isnan",
    "isinf",
    "isfinite",
    "isposinf",
    "isneginf",
    "isreal",
    "nan_to_num",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "equal",
    "allclose",
    "isclose",
    "logical_and",
    "logical_or",
    "logical_not",
    "logical_xor",
    "bitwise_and",
    "bitwise_or",
    "bitwise_not",
    "bitwise_xor",
    "where",
    "heaviside",
    "i0",
    "sinc",
    "deg2rad",
    "rad2deg",
    "copysign",
    "nextafter",
    "special",
]

_TORCH_REDUCE_SHAPE = [
    "sum",
    "nansum",
    "mean",
    "nanmean",
    "prod",
    "cumsum",
    "cumprod",
    "cummax",
    "cummin",
    "logcumsumexp",
    "logsumexp",
    "max",
    "min",
    "amax",
    "amin",
    "argmax",
    "argmin",
    "std",
    "var",
    "std_mean",
    "var_mean",
    "median",
    "nanmedian",
    "mode",
    "quantile",
    "nanquantile",
    "norm",
    "all",
    "any",
    "count_nonzero",
    "softmax",
    "log_softmax",
    "sort",
    "argsort",
    "topk",
    "kthvalue",
    "unique",
    "unique_consecutive",
    "searchsorted",
    "bucketize",
    "diff",
    "trapezoid",
    "reshape",
    "flatten",
    "unflatten",
    "squeeze",
    "unsqueeze",
    "transpose",
    "swapaxes",
    "swapdims",
    "permute",
    "movedim",
    "moveaxis",
    "t",
    "narrow",
    "chunk",
    "split",
    "tensor_split",
    "unbind",
    "flip",
    "fliplr",
    "flipud",
    "roll",
    "rot90",
    "gather",
    "index_select",
    "masked_select",
    "masked_fill",
    "scatter",
    "scatter_add",
    "take",
    "take_along_dim",
    "diag",
    "diagonal",
    "diag_embed",
    "diagflat",
    "tril",
    "triu",
    "trace",
    "cat",
    "concat",
    "concatenate",
    "stack",
    "hstack",
    "vstack",
    "dstack",
    "column_stack",
    "row_stack",
    "atleast_1d",
    "atleast_2d",
    "atleast_3d",
    "nonzero",
    "numel",
    "is_tensor",
    "is_floating_point",
    "dot",
    "vdot",
    "mv",
    "inverse",
    "det",
    "logdet",
    "slogdet",
    "cholesky",
    "cholesky_solve",
    "cholesky_inverse",
    "triangular_solve",
    "lu_solve",
    "pinverse",
    "matrix_power",
    "matrix_exp",
    "cross",
    "clone",
    "detach",
    "zeros_like",
    "ones_like",
    "full_like",
    "rand_like",
    "randn_like",
    "empty_like",
    "randint_like",
    "is_nonzero",
    "result_type",
    "promote_types",
    "can_cast",
    "broadcast_shapes",
]

_TORCH_COMBINING = [
    "matmul",
    "mm",
    "bmm",
    "outer",
    "ger",
    "kron",
    "einsum",
    "cdist",
    "tensordot",
    "broadcast_tensors",
    "broadcast_to",
    "block_diag",
    "chain_matmul",
    "addmm",
    "baddbmm",
]

_TORCH_BROADCASTING = [
    "where",
    "maximum",
    "minimum",
    "atan2",
    "arctan2",
    "logaddexp",
    "logaddexp2",
    "add",
    "sub",
    "subtract",
    "mul",
    "multiply",
    "div",
    "divide",
    "true_divide",
    "floor_divide",
    "remainder",
    "fmod",
    "pow",
    "float_power",
    "lerp",
    "xlogy",
    "hypot",
    "fmax",
    "fmin",
    "copysign",
    "nextafter",
    "heaviside",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "logical_and",
    "logical_or",
    "logical_xor",
    "bitwise_and",
    "bitwise_or",
    "bitwise_xor",
    "isclose",
    "allclose",
    "equal",
    "take_along_dim",
    "masked_fill",
]

_TORCH_CONCATENATING = [
    "cat",
    "concat",
    "concatenate",
    "stack",
    "hstack",
    "vstack",
    "dstack",
    "column_stack",
    "row_stack",
]

_TORCH_VALUES = [
    "float",
    "float16",
    "float32",
    "float64",
    "double",
    "half",
    "bfloat16",
    "int",
    "int8",
    "int16",
    "int32",
    "int64",
    "long",
    "short",
    "uint8",
    "bool",
    "complex64",
    "complex128",
    "cfloat",
    "cdouble",
    "Size",
    "pi",
    "e",
    "inf",
    "nan",
]


def _build_torch() -> dict[str, Any]:
    members: dict[str, Any] = {}
    members.update(_pick(torch, _TORCH_ELEMENTWISE))
    members.update(_pick(torch, _TORCH_REDUCE_SHAPE))
    members.update(_pick(torch, _TORCH_VALUES))
    members.pop("special", None)
    for name in _TORCH_COMBINING:
        if hasattr(torch, name):
            members[name] = _combining(getattr(torch, name), name)
    for name in _TORCH_BROADCASTING:
        if hasattr(torch, name):
            members[name] = _combining(getattr(torch, name), name)
    for name in _TORCH_CONCATENATING:
        if hasattr(torch, name):
            members[name] = _concatenating(getattr(torch, name), name)
    for name in ("diag", "diagflat", "diag_embed"):
        members[name] = _diagonalizing(getattr(torch, name), name)
    for name in ("zeros", "ones", "rand", "randn"):
        members[name] = _creation(getattr(torch, name), name)
    # uninitialised memory could hold another job's data: `empty` gives zeros here
    members["empty"] = _creation(torch.zeros, "empty")
    for name in (
        "zeros_like",
        "ones_like",
        "full_like",
        "rand_like",
        "randn_like",
        "randint_like",
    ):
        members[name] = _placed(getattr(torch, name), name)
    members["empty_like"] = _placed(torch.zeros_like, "empty_like")
    members["full"] = _named(_full, "full")
    members["randint"] = _named(_randint, "randint")
    members["arange"] = _named(_arange, "arange")
    members["linspace"] = _linspace_like(torch.linspace, "linspace")
    members["logspace"] = _linspace_like(torch.logspace, "logspace")
    members["eye"] = _named(_eye, "eye")
    members["tensor"] = _tensor_like(torch.tensor, "tensor")
    members["as_tensor"] = _tensor_like(torch.as_tensor, "as_tensor")
    members["cartesian_prod"] = _cartesian_like(torch.cartesian_prod, "cartesian_prod")
    members["meshgrid"] = _cartesian_like(torch.meshgrid, "meshgrid")
    members["tril_indices"] = _tril_indices(torch.tril_indices, "tril_indices")
    members["triu_indices"] = _tril_indices(torch.triu_indices, "triu_indices")
    members["repeat_interleave"] = _named(_repeat_interleave, "repeat_interleave")
    members["tile"] = _named(_tile, "tile")
    members["combinations"] = _named(_combinations, "combinations")

    members["linalg"] = Namespace(
        "torch.linalg",
        _pick(
            torch.linalg,
            "cholesky cholesky_ex solve solve_triangular inv inv_ex det slogdet norm "
            "vector_norm matrix_norm eigh eigvalsh qr svd svdvals cross diagonal "
            "multi_dot matrix_exp lstsq pinv matrix_rank vecdot lu_factor lu_solve",
        ),
    )
    members["special"] = Namespace(
        "torch.special",
        _pick(
            torch.special,
            "expit logit erf erfc erfinv gammaln digamma psi polygamma multigammaln "
            "log_ndtr ndtr ndtri i0 i0e i1 i1e log1p expm1 exp2 logsumexp softmax "
            "log_softmax xlogy xlog1py entr sinc round zeta",
        ),
    )
    return members


# ----------------------------------------------------------------------------------
# distributions, constraints, transforms

# abstract bases; Rejector takes callables; the combinatorial ones enumerate
# factorially/exponentially many values
_EXCLUDED_DISTRIBUTIONS = {
    "Rejector",
    "TorchDistribution",
    "ExponentialFamily",
    "Distribution",
    "SpanningTree",
    "OneOneMatching",
    "OneTwoMatching",
    "CoalescentTimes",
    "CoalescentTimesWithRate",
}


def _build_constraints() -> dict[str, Any]:
    members: dict[str, Any] = {}
    for name in dir(pyro_constraints):
        if name.startswith("_") or name in {
            "Constraint",
            "dependent_property",
            "is_dependent",
        }:
            continue
        value = getattr(pyro_constraints, name)
        if isinstance(value, torch.distributions.constraints.Constraint) or (
            inspect.isclass(value)
            and issubclass(value, torch.distributions.constraints.Constraint)
        ):
            members[name] = value
    return members


_TRANSFORMS = [
    "ExpTransform",
    "AffineTransform",
    "SigmoidTransform",
    "TanhTransform",
    "SoftmaxTransform",
    "StickBreakingTransform",
    "LowerCholeskyTransform",
    "PowerTransform",
    "AbsTransform",
    "ComposeTransform",
    "CorrCholeskyTransform",
    "CholeskyTransform",
    "SoftplusTransform",
    "CorrLCholeskyTransform",
    "OrderedTransform",
    "PositivePowerTransform",
    "ReshapeTransform",
    "IndependentTransform",
    "CatTransform",
    "StackTransform",
]


def _build_transforms() -> dict[str, Any]:
    members = _pick(pyro_transforms, _TRANSFORMS)
    members.update(
        _pick(
            torch.distributions.transforms, [n for n in _TRANSFORMS if n not in members]
        )
    )
    members["biject_to"] = pyro_transforms.biject_to
    members["transform_to"] = pyro_transforms.transform_to
    return members


def _build_dist(constraints_ns: Namespace, transforms_ns: Namespace) -> dict[str, Any]:
    members: dict[str, Any] = {}
    for name in dir(pyro_dist):
        value = getattr(pyro_dist, name)
        if (
            inspect.isclass(value)
            and issubclass(value, torch.distributions.Distribution)
            and name not in _EXCLUDED_DISTRIBUTIONS
        ):
            members[name] = value
    members["constraints"] = constraints_ns
    members["transforms"] = transforms_ns
    members["kl_divergence"] = torch.distributions.kl_divergence
    return members


# ----------------------------------------------------------------------------------
# pyro


def _param(
    name: Any, init_tensor: Any = None, constraint: Any = None, event_dim: Any = None
) -> Any:
    # Pyro requires a tensor; a modeller writing ``pyro.param("a", 0.5)`` means one.
    if isinstance(init_tensor, (int, float)) and not isinstance(init_tensor, bool):
        init_tensor = torch.tensor(float(init_tensor))
    kwargs = {}
    if constraint is not None:
        kwargs["constraint"] = constraint
    if event_dim is not None:
        kwargs["event_dim"] = event_dim
    return pyro.param(name, init_tensor, **kwargs)


_WIDE_SUPPORT = tuple(
    getattr(pyro_dist, n)
    for n in ("Binomial", "BetaBinomial", "ExtendedBinomial", "ExtendedBetaBinomial")
    if hasattr(pyro_dist, n)
)


def _sample(name: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
    # A latent count distribution may be enumerated by TraceEnum_ELBO outside our code:
    # bound its support x batch size here, where the user's line is known.
    if (
        kwargs.get("obs") is None
        and isinstance(fn, _WIDE_SUPPORT)
        and not torch.jit.is_tracing()
    ):
        base = fn
        total = getattr(base, "total_count", None)
        if isinstance(total, torch.Tensor) and total.numel():
            check_elements(
                (int(total.max()) + 1) * max(shape_numel(tuple(fn.batch_shape)), 1),
                f"the enumerable support of {type(fn).__name__} at site {name!r}",
            )
    return pyro.sample(name, fn, *args, **kwargs)


def _plate(
    name: Any,
    size: Any = None,
    subsample_size: Any = None,
    subsample: Any = None,
    dim: Any = None,
    **kwargs: Any,
) -> Any:
    _check_placement(kwargs)
    if kwargs.get("use_cuda"):
        raise ForbiddenConstruct(
            "pyro.plate(use_cuda=True) is not allowed; the job chooses the device"
        )
    if kwargs.keys() - {"use_cuda", "device"}:
        raise ForbiddenConstruct(
            f"pyro.plate got unexpected keyword(s) {sorted(kwargs.keys() - {'use_cuda', 'device'})}; "
            "allowed: size, subsample_size, subsample, dim"
        )
    # under torch.jit tracing sizes may be traced tensors: they are data shapes, already bounded
    if not torch.jit.is_tracing():
        if size is not None:
            check_plate_size(int(size), f"size of plate {name!r}")
        if subsample_size is not None:
            check_plate_size(int(subsample_size), f"subsample_size of plate {name!r}")
    return pyro.plate(name, size, subsample_size, subsample, dim, **kwargs)


def _config_enumerate(
    guide: Any = None,
    default: str = "parallel",
    expand: bool = False,
    num_samples: Any = None,
    tmc: str = "diagonal",
) -> Any:
    return pyro_config_enumerate(
        guide, default=default, expand=expand, num_samples=num_samples, tmc=tmc
    )


def _build_poutine() -> dict[str, Any]:
    return _pick(
        pyro_poutine, "block mask scale condition do uncondition markov infer_config"
    )


# ----------------------------------------------------------------------------------
# nn


def _guard_module(cls: type, name: str) -> Callable:
    gate = {
        "GRU": 3,
        "LSTM": 4,
        "RNN": 1,
        "GRUCell": 3,
        "LSTMCell": 4,
        "RNNCell": 1,
    }.get(name)

    def guarded(*args: Any, **kwargs: Any) -> Any:
        ints = [a for a in args if isinstance(a, int) and not isinstance(a, bool)]
        for key in (
            "in_features",
            "out_features",
            "num_embeddings",
            "embedding_dim",
            "input_size",
            "hidden_size",
            "normalized_shape",
            "num_features",
        ):
            v = kwargs.get(key)
            if isinstance(v, int) and not isinstance(v, bool):
                ints.append(v)
        if ints:
            if gate is not None:
                size = (
                    max(ints[:2]) * (ints[1] if len(ints) > 1 else ints[0]) * gate * 2
                )
                size *= int(
                    kwargs.get("num_layers", ints[2] if len(ints) > 2 else 1) or 1
                )
            elif len(ints) >= 2:
                size = ints[0] * ints[1]
            else:
                size = ints[0]
            check_elements(size, f"nn.{name}(...) parameters")
        return cls(*args, **kwargs)

    return _named(guarded, name)


_NN_MODULES = [
    "Linear",
    "Bilinear",
    "Sequential",
    "ModuleList",
    "Identity",
    "Flatten",
    "Unflatten",
    "ReLU",
    "Tanh",
    "Sigmoid",
    "Softplus",
    "ELU",
    "LeakyReLU",
    "SELU",
    "CELU",
    "GELU",
    "SiLU",
    "Mish",
    "Softmax",
    "LogSoftmax",
    "Softmin",
    "Hardtanh",
    "ReLU6",
    "PReLU",
    "LogSigmoid",
    "Dropout",
    "LayerNorm",
    "BatchNorm1d",
    "Embedding",
    "GRU",
    "RNN",
    "LSTM",
    "GRUCell",
    "RNNCell",
    "LSTMCell",
]


def _one_hot(tensor: Any, num_classes: int = -1) -> Any:
    n = num_classes
    if n < 0:
        n = int(tensor.max()) + 1 if tensor.numel() else 0
    check_elements(tensor.numel() * max(n, 1), "F.one_hot(...)")
    return torch_F.one_hot(tensor, num_classes)


def _pad(input: Any, pad: Any, mode: str = "constant", value: Any = None) -> Any:
    shape = list(input.shape)
    pads = list(pad)
    for i in range(0, len(pads) - 1, 2):
        d = len(shape) - 1 - i // 2
        if d >= 0:
            shape[d] = shape[d] + int(pads[i]) + int(pads[i + 1])
    check_elements(shape_numel(shape), "F.pad(...)")
    return torch_F.pad(input, pad, mode, value)


_FUNCTIONAL = [
    "relu",
    "relu6",
    "elu",
    "selu",
    "celu",
    "gelu",
    "silu",
    "mish",
    "leaky_relu",
    "prelu",
    "softplus",
    "softsign",
    "sigmoid",
    "logsigmoid",
    "tanh",
    "hardtanh",
    "softmax",
    "softmin",
    "log_softmax",
    "gumbel_softmax",
    "normalize",
    "dropout",
    "linear",
    "embedding",
    "layer_norm",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "nll_loss",
    "mse_loss",
]


def _build_nn() -> tuple[dict[str, Any], dict[str, Any]]:
    functional = _pick(torch_F, _FUNCTIONAL)
    functional["one_hot"] = _named(_one_hot, "one_hot")
    functional["pad"] = _named(_pad, "pad")
    for name in ("linear", "embedding"):
        functional[name] = _combining(getattr(torch_F, name), name)
    nn_members = {
        n: _guard_module(getattr(torch_nn, n), n)
        for n in _NN_MODULES
        if hasattr(torch_nn, n)
    }
    return nn_members, functional


# ----------------------------------------------------------------------------------
# math


_MATH = [
    "pi",
    "e",
    "tau",
    "inf",
    "nan",
    "sqrt",
    "exp",
    "expm1",
    "log",
    "log1p",
    "log2",
    "log10",
    "pow",
    "sin",
    "cos",
    "tan",
    "asin",
    "acos",
    "atan",
    "atan2",
    "sinh",
    "cosh",
    "tanh",
    "asinh",
    "acosh",
    "atanh",
    "erf",
    "erfc",
    "gamma",
    "lgamma",
    "floor",
    "ceil",
    "trunc",
    "fabs",
    "fmod",
    "copysign",
    "hypot",
    "isnan",
    "isinf",
    "isfinite",
    "isclose",
    "degrees",
    "radians",
]


# ----------------------------------------------------------------------------------
# builtins


def _consuming(fn: Callable, name: str) -> Callable:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and not isinstance(args[0], (int, float)):
            args = (counted(args[0]),)
        return fn(*args, **kwargs)

    return _named(guarded, name)


def _list(iterable: Any = ()) -> list:
    return check_sequence(list(counted(iterable)))


def _tuple(iterable: Any = ()) -> tuple:
    return check_sequence(tuple(counted(iterable)))


def _dict(*args: Any, **kwargs: Any) -> dict:
    if args:
        if len(args) > 1:
            raise TypeError("dict expected at most 1 argument")
        source = args[0]
        if isinstance(source, dict):
            source = source.items()
        return dict(counted(source), **kwargs)
    return dict(**kwargs)


def _sum(iterable: Any, start: Any = 0) -> Any:
    if isinstance(start, (str, list, tuple)):
        raise TypeError(
            "sum() adds numbers and tensors; join lists with a comprehension"
        )
    if isinstance(iterable, torch.Tensor) and iterable.dim() == 0:
        raise TypeError("sum() of a 0-d tensor; use x.sum()")
    return sum(counted(iterable), start)


def _sorted(iterable: Any, *, reverse: bool = False) -> list:
    return sorted(counted(iterable), reverse=reverse)


def _min_max(fn: Callable, name: str) -> Callable:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if kwargs.keys() - {"default"}:
            raise TypeError(f"{name}() accepts only the keyword 'default' here")
        if len(args) == 1:
            return fn(counted(args[0]), **kwargs)
        return fn(*args, **kwargs)

    return _named(guarded, name)


def _str(value: Any = "") -> str:
    check_text_source(value)
    return check_sequence(str(value))


def _make_print(print_log_getter: Callable[[], Any]) -> Callable:
    def print_(*args: Any, sep: Any = " ", end: Any = "") -> None:
        text = (sep if isinstance(sep, str) else " ").join(_str(a)[:2000] for a in args)
        log = print_log_getter()
        if log is not None:
            log.write(text)

    return _named(print_, "print")


def _current_print_log() -> Any:
    run = current_run()
    return run.print_log if run is not None else None


def _int(value: Any = 0, *args: Any) -> int:
    if args:
        raise TypeError("int() with a base is not available; pass numbers")
    return int(value)


def _round(number: Any, ndigits: Any = None) -> Any:
    if ndigits is not None and not -30 <= int(ndigits) <= 30:
        raise ForbiddenConstruct("round(x, ndigits) needs -30 <= ndigits <= 30")
    return round(number, ndigits) if ndigits is not None else round(number)


def _range(*args: Any) -> range:
    return range(*args)


BUILTINS: dict[str, Any] = {
    "range": _named(_range, "range"),
    "len": len,
    "min": _min_max(min, "min"),
    "max": _min_max(max, "max"),
    "abs": abs,
    "float": float,
    "int": _named(_int, "int"),
    "bool": bool,
    "sum": _named(_sum, "sum"),
    "zip": zip,
    "enumerate": enumerate,
    "reversed": reversed,
    "list": _named(_list, "list"),
    "tuple": _named(_tuple, "tuple"),
    "dict": _named(_dict, "dict"),
    "sorted": _named(_sorted, "sorted"),
    "any": _consuming(any, "any"),
    "all": _consuming(all, "all"),
    "round": _named(_round, "round"),
    "divmod": divmod,
    "str": _named(_str, "str"),
    "print": _make_print(_current_print_log),
    "True": True,
    "False": False,
    "None": None,
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
        "map",
        "filter",
    ]
}


# ----------------------------------------------------------------------------------
# assembling the namespaces

CONSTRAINTS = Namespace("constraints", _build_constraints())
TRANSFORMS = Namespace("transforms", _build_transforms())
DIST = Namespace("pyro.distributions", _build_dist(CONSTRAINTS, TRANSFORMS))
POUTINE = Namespace("pyro.poutine", _build_poutine())
CONFIG_ENUMERATE = _named(_config_enumerate, "config_enumerate")
INFER = Namespace("pyro.infer", {"config_enumerate": CONFIG_ENUMERATE})
_nn_members, _functional_members = _build_nn()
FUNCTIONAL = Namespace("torch.nn.functional", _functional_members)
NN = Namespace("torch.nn", {**_nn_members, "functional": FUNCTIONAL})
TORCH_DISTRIBUTIONS = Namespace(
    "torch.distributions",
    {
        "constraints": CONSTRAINTS,
        "transforms": TRANSFORMS,
        "biject_to": pyro_transforms.biject_to,
        "transform_to": pyro_transforms.transform_to,
    },
)
TORCH = Namespace(
    "torch", {**_build_torch(), "nn": NN, "distributions": TORCH_DISTRIBUTIONS}
)
PLATE = _named(_plate, "plate")
PYRO_PRIMITIVES = {
    "sample": _named(_sample, "sample"),
    "param": _named(_param, "param"),
    "plate": PLATE,
    "iarange": PLATE,
    "markov": pyro.markov,
    "deterministic": pyro.deterministic,
    "factor": pyro.factor,
    "module": pyro.module,
    "subsample": pyro.subsample,
}
PYRO = Namespace(
    "pyro",
    {**PYRO_PRIMITIVES, "distributions": DIST, "infer": INFER, "poutine": POUTINE},
)
MATH = Namespace("math", _pick(math, _MATH))

#: module paths accepted by ``import``/``from ... import``
MODULES: dict[str, Namespace] = {
    "torch": TORCH,
    "torch.nn": NN,
    "torch.nn.functional": FUNCTIONAL,
    "torch.linalg": TORCH.members["linalg"],
    "torch.special": TORCH.members["special"],
    "torch.distributions": TORCH_DISTRIBUTIONS,
    "torch.distributions.constraints": CONSTRAINTS,
    "torch.distributions.transforms": TRANSFORMS,
    "pyro": PYRO,
    "pyro.distributions": DIST,
    "pyro.distributions.constraints": CONSTRAINTS,
    "pyro.distributions.transforms": TRANSFORMS,
    "pyro.infer": INFER,
    "pyro.poutine": POUTINE,
    "math": MATH,
}

#: names bound before the source runs (so sources without import lines work)
PRELUDE: dict[str, Any] = {
    "torch": TORCH,
    "pyro": PYRO,
    "dist": DIST,
    "constraints": CONSTRAINTS,
    "nn": NN,
    "F": FUNCTIONAL,
    "poutine": POUTINE,
    "config_enumerate": CONFIG_ENUMERATE,
    "math": MATH,
}

#: callables that may decorate a function definition
DECORATORS = {CONFIG_ENUMERATE, *(POUTINE.members.values())}


# ----------------------------------------------------------------------------------
# attributes of values


_TENSOR_ATTRS = {
    "abs",
    "acos",
    "asin",
    "atan",
    "atan2",
    "add",
    "sub",
    "mul",
    "div",
    "true_divide",
    "floor_divide",
    "remainder",
    "fmod",
    "pow",
    "neg",
    "exp",
    "exp2",
    "expm1",
    "log",
    "log1p",
    "log2",
    "log10",
    "sqrt",
    "rsqrt",
    "square",
    "sin",
    "cos",
    "tan",
    "sinh",
    "cosh",
    "tanh",
    "sigmoid",
    "relu",
    "softmax",
    "log_softmax",
    "logsumexp",
    "lgamma",
    "digamma",
    "erf",
    "erfc",
    "erfinv",
    "floor",
    "ceil",
    "round",
    "trunc",
    "frac",
    "sign",
    "reciprocal",
    "clamp",
    "clamp_min",
    "clamp_max",
    "clip",
    "sum",
    "nansum",
    "mean",
    "nanmean",
    "prod",
    "cumsum",
    "cumprod",
    "cummax",
    "cummin",
    "logcumsumexp",
    "max",
    "min",
    "amax",
    "amin",
    "argmax",
    "argmin",
    "std",
    "var",
    "norm",
    "median",
    "sort",
    "argsort",
    "topk",
    "all",
    "any",
    "reshape",
    "reshape_as",
    "view",
    "view_as",
    "unsqueeze",
    "squeeze",
    "expand_as",
    "t",
    "T",
    "mT",
    "H",
    "transpose",
    "permute",
    "flatten",
    "unflatten",
    "contiguous",
    "narrow",
    "chunk",
    "split",
    "unbind",
    "flip",
    "roll",
    "diagonal",
    "diag",
    "diag_embed",
    "tril",
    "triu",
    "trace",
    "matmul",
    "mm",
    "bmm",
    "mv",
    "dot",
    "inverse",
    "det",
    "logdet",
    "slogdet",
    "cholesky",
    "float",
    "double",
    "long",
    "int",
    "bool",
    "half",
    "type_as",
    "shape",
    "size",
    "dim",
    "ndim",
    "ndimension",
    "numel",
    "nelement",
    "dtype",
    "device",
    "item",
    "detach",
    "clone",
    "index_select",
    "gather",
    "scatter",
    "scatter_add",
    "masked_fill",
    "masked_select",
    "where",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "logical_and",
    "logical_or",
    "logical_not",
    "isnan",
    "isinf",
    "isfinite",
    "nonzero",
    "is_floating_point",
    "requires_grad",
    "lerp",
    "nan_to_num",
    "logaddexp",
    "logit",
    "maximum",
    "minimum",
    "sum_to_size",
    "is_contiguous",
    "real",
    "imag",
    "count_nonzero",
    "unique",
    "take",
    "is_complex",
    "xlogy",
    "msort",
}

_DIST_ATTRS = {
    "to_event",
    "independent",
    "mask",
    "log_prob",
    "score_parts",
    "sample",
    "rsample",
    "expand",
    "expand_by",
    "mean",
    "mode",
    "variance",
    "stddev",
    "batch_shape",
    "event_shape",
    "support",
    "has_rsample",
    "has_enumerate_support",
    "enumerate_support",
    "entropy",
    "cdf",
    "icdf",
    "shape",
    "loc",
    "scale",
    "probs",
    "logits",
    "concentration",
    "concentration0",
    "concentration1",
    "rate",
    "low",
    "high",
    "df",
    "covariance_matrix",
    "scale_tril",
    "precision_matrix",
    "total_count",
    "component_distribution",
    "mixture_distribution",
    "base_dist",
    "reinterpreted_batch_ndims",
    "v",
}

_RETURN_TYPE_ATTRS = {
    "values",
    "indices",
    "sign",
    "logabsdet",
    "eigenvalues",
    "eigenvectors",
    "U",
    "S",
    "Vh",
    "V",
    "Q",
    "R",
    "L",
    "info",
    "solution",
    "inverse",
    "LU",
    "pivots",
}
_STR_ATTRS = {"format", "startswith", "endswith", "lower", "upper", "strip"}
_FIELD_NAME = re.compile(r"^(\d+|[A-Za-z][A-Za-z0-9]*)?$")
_SAFE_SPEC = re.compile(
    r"^[<>^=]?[+\- ]?#?0?\d{0,2}[,_]?(\.\d{1,2})?[bcdeEfFgGnosxX%]?$"
)


def _str_format(template: str) -> Callable:
    """``str.format`` restricted to plain fields: no attribute/index lookups, no nesting."""

    def format_(*args: Any, **kwargs: Any) -> str:
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as exc:
            raise ForbiddenConstruct(f"invalid format string: {exc}") from None
        for _, field, spec, _conversion in parsed:
            if field is None:
                continue
            if not _FIELD_NAME.match(field):
                raise ForbiddenConstruct(
                    f"format field {{{field}}} is not allowed: only {{}}, {{0}} or {{name}} "
                    "fields (no attribute or index lookups)"
                )
            if spec and ("{" in spec or not _SAFE_SPEC.match(spec)):
                raise ForbiddenConstruct(
                    f"format spec {spec!r} is not allowed; use a simple spec such as `.3f` (width at most 99)"
                )
        args = tuple(
            a.item() if isinstance(a, torch.Tensor) and a.numel() == 1 else a
            for a in args
        )
        for a in list(args) + list(kwargs.values()):
            check_text_source(a)
        return check_sequence(template.format(*args, **kwargs))

    return format_


_CONSTRAINT_ATTRS = {"lower_bound", "upper_bound", "event_dim", "is_discrete", "check"}
_SEQUENCE_ATTRS = {"index", "count"}
_LIST_ATTRS = {"append", "index", "count", "insert", "pop", "reverse"}
_DICT_ATTRS = {"get", "keys", "values", "items"}


def _tensor_expand(t: torch.Tensor) -> Callable:
    def expand(*sizes: Any) -> Any:
        shape = (
            sizes[0]
            if len(sizes) == 1 and isinstance(sizes[0], (tuple, list, torch.Size))
            else sizes
        )
        shape = list(shape)
        offset = len(shape) - t.dim()
        n = 1
        for i, s in enumerate(shape):
            s = int(s)
            if s == -1 and i >= offset:
                s = t.shape[i - offset]
            n *= max(s, 0)
        check_elements(n, "Tensor.expand(...)")
        return t.expand(*sizes)

    return expand


def _tensor_repeat(t: torch.Tensor) -> Callable:
    def repeat(*sizes: Any) -> Any:
        check_elements(t.numel() * size_from_args(sizes, {}), "Tensor.repeat(...)")
        return t.repeat(*sizes)

    return repeat


def _tensor_tile(t: torch.Tensor) -> Callable:
    def tile(*dims: Any) -> Any:
        check_elements(t.numel() * size_from_args(dims, {}), "Tensor.tile(...)")
        return t.tile(*dims)

    return tile


def _tensor_new(name: str) -> Callable:
    def factory(t: torch.Tensor) -> Callable:
        # uninitialised memory could hold another job's data: new_empty gives zeros
        method = getattr(t, "new_zeros" if name == "new_empty" else name)

        def new(*args: Any, **kwargs: Any) -> Any:
            _check_placement(kwargs)
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


def _tensor_to(t: torch.Tensor) -> Callable:
    def to(*args: Any, **kwargs: Any) -> Any:
        for a in list(args) + list(kwargs.values()):
            if not isinstance(a, (torch.dtype, torch.Tensor, bool)):
                raise ForbiddenConstruct(
                    "Tensor.to(...) accepts only a dtype or another tensor here; the "
                    "device is chosen by the job"
                )
        if "device" in kwargs:
            raise ForbiddenConstruct("Tensor.to(device=...) is not allowed")
        return t.to(*args, **kwargs)

    return to


def _tensor_combining(name: str) -> Callable:
    def factory(t: torch.Tensor) -> Callable:
        method = getattr(t, name)

        def combined(*args: Any, **kwargs: Any) -> Any:
            check_combined(
                getattr(torch.Tensor, name), f"Tensor.{name}(...)", (t, *args), kwargs
            )
            return method(*args, **kwargs)

        return combined

    return factory


_TENSOR_GUARDED: dict[str, Callable[[Any], Any]] = {
    "expand": _tensor_expand,
    "broadcast_to": _tensor_expand,
    "repeat": _tensor_repeat,
    "tile": _tensor_tile,
    "to": _tensor_to,
    "repeat_interleave": lambda t: functools.partial(_repeat_interleave, t),
    **{n: _tensor_diagonalizing(n) for n in ("diag", "diag_embed")},
    **{n: _tensor_new(n) for n in ("new_zeros", "new_ones", "new_full", "new_empty")},
    "new_tensor": lambda t: _tensor_like(t.new_tensor, "Tensor.new_tensor"),
    **{
        n: _tensor_combining(n)
        for n in (
            "matmul",
            "mm",
            "bmm",
            "outer",
            "ger",
            "kron",
            "add",
            "sub",
            "mul",
            "div",
            "pow",
            "where",
            "maximum",
            "minimum",
            "lerp",
            "logaddexp",
            "xlogy",
            "atan2",
            "masked_fill",
        )
    },
}


def _dist_shape_guard(name: str) -> Callable:
    def factory(d: Any) -> Callable:
        method = getattr(d, name)

        def guarded(*args: Any, **kwargs: Any) -> Any:
            shape = kwargs.get(
                "sample_shape", kwargs.get("batch_shape", args[0] if args else ())
            )
            if name in ("sample", "rsample", "expand_by"):
                n = shape_numel(shape) * shape_numel(
                    tuple(d.batch_shape) + tuple(d.event_shape)
                )
            else:
                n = shape_numel(shape) * shape_numel(tuple(d.event_shape))
            check_elements(n, f"Distribution.{name}(...)")
            return method(*args, **kwargs)

        return guarded

    return factory


_DIST_GUARDED = {
    n: _dist_shape_guard(n) for n in ("sample", "rsample", "expand", "expand_by")
}

#: per type: ``None`` (no attribute), or (allowed names, guarded-name factories)
_ATTR_RULES_CACHE: dict[type, tuple[frozenset, dict]] = {}
_EMPTY: tuple[frozenset, dict] = (frozenset(), {})


def attribute_rules(t: type) -> tuple[frozenset, dict]:
    rules = _ATTR_RULES_CACHE.get(t)
    if rules is not None:
        return rules
    if issubclass(t, torch.Tensor):
        rules = (frozenset(_TENSOR_ATTRS), _TENSOR_GUARDED)
    elif issubclass(t, torch.distributions.Distribution):
        rules = (frozenset(_DIST_ATTRS), _DIST_GUARDED)
    elif issubclass(t, torch.distributions.constraints.Constraint):
        rules = (frozenset(_CONSTRAINT_ATTRS), {})
    elif t is torch.Size:
        rules = (frozenset({"numel", "index", "count"}), {})
    elif t.__module__ == "torch.return_types":
        rules = (frozenset(_RETURN_TYPE_ATTRS), {})
    elif t is list:
        rules = (frozenset(_LIST_ATTRS), {"append": _list_append})
    elif t is tuple:
        rules = (frozenset(_SEQUENCE_ATTRS), {})
    elif t is dict:
        rules = (frozenset(_DICT_ATTRS), {})
    elif t is str:
        rules = (frozenset(_STR_ATTRS), {"format": _str_format})
    else:
        rules = _EMPTY
    _ATTR_RULES_CACHE[t] = rules
    return rules


def _list_append(lst: list) -> Callable:
    def append(item: Any) -> None:
        check_sequence(lst)
        lst.append(item)

    return append


def describe(value: Any) -> str:
    if isinstance(value, Namespace):
        return f"`{value.ns_name}`"
    if isinstance(value, torch.Tensor):
        return "a tensor"
    if isinstance(value, torch.distributions.Distribution):
        return f"a distribution ({type(value).__name__})"
    if isinstance(value, torch_nn.Module):
        return f"an nn module ({type(value).__name__})"
    if isinstance(value, Messenger):
        return f"a Pyro handler ({type(value).__name__})"
    if inspect.isclass(value):
        return f"the class {value.__name__}"
    if callable(value):
        return "a function"
    return f"a value of type {type(value).__name__}"


def get_attribute(value: Any, name: str) -> Any:
    """Read ``value.name`` if the whitelist allows it, else raise ``UnknownName``."""
    if type(value) is Namespace:
        try:
            return value.members[name]
        except KeyError:
            raise _unknown_member(value, name) from None
    allowed, guarded = attribute_rules(type(value))
    factory = guarded.get(name)
    if factory is not None:
        return factory(value)
    if name in allowed:
        return getattr(value, name)
    raise UnknownName(
        f"attribute `.{name}` of {describe(value)} is not available in the model language"
        + (
            f"; allowed: {', '.join(sorted(allowed)[:40])}{', ...' if len(allowed) > 40 else ''}"
            if allowed
            else ""
        )
    )


def _unknown_member(ns: Namespace, name: str) -> UnknownName:
    import difflib

    close = difflib.get_close_matches(name, list(ns.members), n=3)
    hint = (
        f"; did you mean {', '.join(f'`{ns.ns_name}.{c}`' for c in close)}?"
        if close
        else ""
    )
    return UnknownName(
        f"`{ns.ns_name}.{name}` is not available in the model language{hint}"
    )


def is_context_manager(value: Any) -> bool:
    return isinstance(value, Messenger)


def _module_output_shape(module: Any, shape: tuple) -> tuple:
    """Output shape of ``module`` on an input of ``shape`` (shape-preserving if unknown)."""
    if isinstance(module, torch_nn.Sequential):
        for layer in module:
            shape = _module_output_shape(layer, shape)
        return shape
    if isinstance(module, torch_nn.Linear):
        return shape[:-1] + (module.out_features,)
    if isinstance(module, torch_nn.Bilinear):
        return shape[:-1] + (module.out_features,)
    if isinstance(module, torch_nn.Embedding):
        return shape + (module.embedding_dim,)
    if isinstance(module, torch_nn.RNNBase):
        width = module.hidden_size * (2 if module.bidirectional else 1)
        return shape[:-1] + (width,)
    if isinstance(module, (torch_nn.RNNCellBase,)):
        return shape[:-1] + (module.hidden_size,)
    return shape


def check_module_call(module: Any, args: Any) -> None:
    """Bound the output of calling an ``nn`` module before it runs."""
    if args and isinstance(args[0], torch.Tensor) and not torch.jit.is_tracing():
        check_elements(
            shape_numel(_module_output_shape(module, tuple(args[0].shape))),
            f"calling nn.{type(module).__name__}",
        )
