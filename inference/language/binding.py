"""Data binding: fill the entry function's parameters from a dataset by name."""

from __future__ import annotations

import ast
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .errors import DataBindingError
from .extras import DataRecord
from .program import Program

_FLOAT_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class BoundData:
    """Keyword arguments for ``program(**kwargs)`` and the warnings binding raised."""

    kwargs: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def bind_data(
    program: Program,
    data: Mapping[str, Any],
    *,
    float_dtype: str = "float32",
    device: Any = "cpu",
) -> BoundData:
    """Convert ``data`` to the entry's arguments (see docs/model-language.md, "Data").

    Float arrays become ``float_dtype`` tensors, integer arrays int64 tensors, boolean
    arrays bool tensors; Python/numpy scalars stay Python numbers; ``None`` stays
    ``None``. Raises ``DataBindingError`` for a missing required field, a value that is
    not numeric, NaN/inf in float data, or a shape that contradicts the source.
    """
    if float_dtype not in _FLOAT_DTYPES:
        raise DataBindingError(
            f"float_dtype must be one of {sorted(_FLOAT_DTYPES)}, got {float_dtype!r}"
        )
    if not isinstance(data, Mapping):
        raise DataBindingError(
            f"data must be a mapping of field names to values, got {type(data).__name__}"
        )
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DataBindingError(f"invalid device {device!r}: {exc}") from None
    dtype = _FLOAT_DTYPES[float_dtype]
    max_elements = program.limits.max_tensor_elements
    params = program.parameters
    names = {p for p, _ in params}
    present = sorted(str(k) for k in data)
    kwargs: dict[str, Any] = {}
    for name, has_default in params:
        if name not in data:
            if has_default:
                continue
            raise DataBindingError(
                f"the model needs the data field {name!r}, which is missing; fields present: "
                f"{', '.join(present) if present else 'none'}",
                field=name,
            )
        kwargs[name] = _convert(name, data[name], dtype, dev, max_elements)
    warnings = [
        f"data field {k!r} is not a parameter of {program.entry}() and is ignored"
        for k in present
        if k not in names
    ]
    _check_shapes(program, kwargs)
    return BoundData(kwargs=kwargs, warnings=warnings)


def _convert(
    name: str, value: Any, dtype: torch.dtype, device: torch.device, max_elements: int
) -> Any:
    """One data field as the model gets it: None, a Python number, a ``DataRecord`` or a
    finite tensor on ``device`` (floats in ``dtype``, integers int64, booleans bool)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral) and not isinstance(value, torch.Tensor):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, torch.Tensor):
        return _finite_number(name, float(value))
    if isinstance(value, (str, bytes)):
        raise DataBindingError(
            f"data field {name!r} is text; only numbers and arrays are allowed",
            field=name,
        )
    if isinstance(value, Mapping):
        return _record(name, value, dtype, device, max_elements, depth=0, budget=[MAX_RECORD_ENTRIES])
    if isinstance(value, torch.Tensor):
        tensor = _from_tensor(name, value, dtype, max_elements)
    else:
        array = _as_array(name, value)
        tensor = _from_array(name, array, dtype, max_elements)
        if array.ndim == 0:
            item = tensor.item()
            return _finite_number(name, item) if isinstance(item, float) else item
    _check_finite(name, tensor)
    return tensor.to(device)


def _finite_number(name: str, value: float) -> float:
    if not math.isfinite(value):
        raise DataBindingError(
            f"data field {name!r} is {value}; NaN and infinite values are not allowed",
            field=name,
        )
    return value


def _complex(name: str) -> DataBindingError:
    return DataBindingError(f"data field {name!r} is complex; only real numbers are allowed", field=name)


def _from_tensor(name: str, value: torch.Tensor, dtype: torch.dtype, max_elements: int) -> torch.Tensor:
    array = value.detach().cpu()
    if array.numel() > max_elements:
        raise _too_big(name, array.numel(), max_elements)
    if array.is_floating_point():
        return array.to(dtype)
    if array.dtype == torch.bool:
        return array
    if array.is_complex():
        raise _complex(name)
    return array.to(torch.int64)


def _as_array(name: str, value: Any) -> np.ndarray:
    """A list, tuple or numpy value as an array; anything else is refused."""
    if isinstance(value, (list, tuple)):
        try:
            return np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise DataBindingError(
                f"data field {name!r} is not a rectangular array: {exc}", field=name
            ) from None
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, np.generic):
        return np.asarray(value)
    raise DataBindingError(
        f"data field {name!r} has an unsupported type {type(value).__name__}; use numbers, "
        "lists or arrays",
        field=name,
    )


def _from_array(name: str, array: np.ndarray, dtype: torch.dtype, max_elements: int) -> torch.Tensor:
    if array.size > max_elements:
        raise _too_big(name, array.size, max_elements)
    kind = array.dtype.kind
    if kind == "f":
        return torch.as_tensor(np.ascontiguousarray(array)).to(dtype)
    if kind in "iu":
        return torch.as_tensor(np.ascontiguousarray(array).astype(np.int64))
    if kind == "b":
        return torch.as_tensor(np.ascontiguousarray(array))
    if kind == "c":
        raise _complex(name)
    raise DataBindingError(
        f"data field {name!r} holds {array.dtype} values (text, objects or nested/ragged "
        "lists); only numbers and booleans are allowed",
        field=name,
    )


def _check_finite(name: str, tensor: torch.Tensor) -> None:
    if tensor.is_floating_point():
        bad = (~torch.isfinite(tensor)).sum().item()
        if bad:
            raise DataBindingError(
                f"data field {name!r} contains {bad} NaN or infinite value(s); remove them or "
                "pass a mask field and use obs_mask=",
                field=name,
            )


#: nested data fields (model configs, hyperparameters): how deep and how many entries
MAX_RECORD_DEPTH = 6
MAX_RECORD_ENTRIES = 1000
MAX_RECORD_TEXT = 1000


def _record(
    name: str, value: Mapping, dtype: torch.dtype, device: torch.device, max_elements: int,
    depth: int, budget: list[int],
) -> DataRecord:
    """A nested mapping becomes a read-only ``DataRecord`` (``cfg["k"]`` or ``cfg.k``);
    its leaves are converted like top-level fields, and may also be short text."""
    if depth >= MAX_RECORD_DEPTH:
        raise DataBindingError(
            f"data field {name!r} nests mappings more than {MAX_RECORD_DEPTH} deep", field=name
        )
    out = DataRecord()
    for key, item in value.items():
        budget[0] -= 1
        if budget[0] < 0:
            raise DataBindingError(
                f"data field {name!r} has more than {MAX_RECORD_ENTRIES} nested entries", field=name
            )
        if not isinstance(key, str) or not key.isidentifier() or key.startswith("_"):
            raise DataBindingError(
                f"data field {name!r} has the key {str(key)[:60]!r}; nested keys must be names "
                "(letters, digits, `_`, not starting with `_`)",
                field=name,
            )
        where = f"{name}.{key}"
        if isinstance(item, Mapping):
            out[key] = _record(where, item, dtype, device, max_elements, depth + 1, budget)
        elif isinstance(item, str):
            if len(item) > MAX_RECORD_TEXT:
                raise DataBindingError(
                    f"data field {where!r} is text longer than {MAX_RECORD_TEXT} characters",
                    field=name,
                )
            out[key] = item
        else:
            try:
                out[key] = _convert(where, item, dtype, device, max_elements)
            except DataBindingError as exc:
                exc.details["field"] = name
                raise
    return out


def _too_big(name: str, n: int, limit: int) -> DataBindingError:
    return DataBindingError(
        f"data field {name!r} has {n} elements, more than max_tensor_elements={limit}",
        field=name,
    )


# ----------------------------------------------------------------------------------
# cheap static shape checks: `with pyro.plate("n", N): ... pyro.sample(..., obs=y)`


def _plate_size_param(call: ast.AST, params: set[str]) -> str | None:
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
        return None
    if call.func.attr not in ("plate", "iarange"):
        return None
    if (
        any(k.arg in ("subsample_size", "subsample", "dim") for k in call.keywords)
        or len(call.args) > 2
    ):
        return None
    size = (
        call.args[1]
        if len(call.args) > 1
        else next((k.value for k in call.keywords if k.arg == "size"), None)
    )
    if isinstance(size, ast.Name) and size.id in params:
        return size.id
    return None


def _obs_param(call: ast.AST, params: set[str]) -> str | None:
    if (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr == "sample"
    ):
        for k in call.keywords:
            if (
                k.arg == "obs"
                and isinstance(k.value, ast.Name)
                and k.value.id in params
            ):
                return k.value.id
    return None


def _check_shapes(program: Program, kwargs: dict[str, Any]) -> None:
    node = next(
        (
            s
            for s in program.tree.body
            if isinstance(s, ast.FunctionDef) and s.name == program.entry
        ),
        None,
    )
    if node is None:
        return
    params = {p for p, _ in program.parameters}
    assigned = set()
    for sub in ast.walk(node):
        if isinstance(sub, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.For)):
            for t in ast.walk(
                sub.targets[0] if isinstance(sub, ast.Assign) else sub.target
            ):
                if isinstance(t, ast.Name):
                    assigned.add(t.id)
    params -= assigned  # a rebound parameter no longer holds the data

    def visit(stmts: list[ast.stmt], plates: list[str]) -> None:
        for s in stmts:
            if isinstance(s, ast.With):
                sizes = [_plate_size_param(i.context_expr, params) for i in s.items]
                nested = (
                    plates + [x for x in sizes if x] if all(sizes) else plates + ["?"]
                )
                visit(s.body, nested)
                continue
            if isinstance(s, (ast.If, ast.For)):
                visit(s.body, plates)
                visit(s.orelse, plates)
                continue
            if len(plates) == 1 and plates[0] != "?":
                for sub in ast.walk(s):
                    obs = _obs_param(sub, params)
                    if obs is None:
                        continue
                    size, y = kwargs.get(plates[0]), kwargs.get(obs)
                    if (
                        isinstance(size, int)
                        and isinstance(y, torch.Tensor)
                        and y.dim() == 1
                        and y.shape[0] != size
                    ):
                        raise DataBindingError(
                            f"data field {obs!r} has length {y.shape[0]} but is observed inside "
                            f"pyro.plate of size {plates[0]}={size} (line {sub.lineno})",
                            field=obs,
                            line=sub.lineno,
                            col=sub.col_offset + 1,
                        )

    visit(node.body, [])
