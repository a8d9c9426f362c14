"""Fitted parameters: the phi/theta split, readable constraints, param-store files.

* ``split_params`` sorts the live param store into guide parameters (phi: touched while
  tracing the guide) and model parameters (theta: touched by the model, not the guide).
* ``param_store_safetensors`` / ``load_param_store_safetensors`` are the safe, default
  format: unconstrained tensors in safetensors plus the constraint of each param as a
  readable string in the safetensors metadata. Nothing is unpickled to read it back::

      import pyro
      from safetensors.torch import load_file
      from safetensors import safe_open
      # with vihub installed:
      from inference.results import load_param_store_safetensors
      state = load_param_store_safetensors(open("params.safetensors", "rb").read())
      pyro.get_param_store().set_state(state)
      # without vihub: tensors = load_file(path); constraints = json.loads(
      #   safe_open(path, "pt").metadata()["vihub.constraints"]); map each name with
      #   the table in ``parse_constraint`` (e.g. "positive" -> constraints.positive).

* ``param_store_pt`` is Pyro's own format (``torch.save(ParamStore.get_state())``), which
  ``pyro.get_param_store().load(path)`` reads. It is a pickle (constraint objects cannot be
  stored as weights), so it is only ever *produced* here, for a user to load their own
  download; vihub never loads one (CONTRIBUTING: never unpickle user bytes).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import pyro
import pyro.distributions.constraints as C
import torch
from pyro import poutine

_CONSTRAINTS_KEY = "vihub.constraints"
_FORMAT_KEY = "vihub.format"
_FORMAT = "pyro-param-store/unconstrained/v1"

# Singleton constraints by readable name. Order matters for naming: the first match wins
# (``unit_interval`` is an ``interval(0, 1)`` and is named as such).
_NAMED: list[tuple[str, Any]] = [
    ("real", C.real),
    ("positive", C.positive),
    ("nonnegative", C.nonnegative),
    ("unit_interval", C.unit_interval),
    ("simplex", C.simplex),
    ("lower_cholesky", C.lower_cholesky),
    ("lower_triangular", C.lower_triangular),
    ("corr_cholesky", C.corr_cholesky),
    ("corr_matrix", C.corr_matrix),
    ("positive_definite", C.positive_definite),
    ("positive_semidefinite", C.positive_semidefinite),
    ("real_vector", C.real_vector),
    ("softplus_positive", C.softplus_positive),
    ("softplus_lower_cholesky", C.softplus_lower_cholesky),
    ("unit_lower_cholesky", C.unit_lower_cholesky),
    ("ordered_vector", C.ordered_vector),
    ("positive_ordered_vector", C.positive_ordered_vector),
    ("sphere", C.sphere),
    ("symmetric", C.symmetric),
    ("square", C.square),
    ("boolean", C.boolean),
    ("nonnegative_integer", C.nonnegative_integer),
    ("positive_integer", C.positive_integer),
]
_BY_NAME = dict(_NAMED)


def _num(x: Any) -> str:
    if torch.is_tensor(x):
        x = x.item() if x.numel() == 1 else x.tolist()
    return repr(float(x)) if isinstance(x, (int, float)) else repr(x)


def constraint_name(constraint: Any) -> str:
    """A readable, parseable name: "positive", "interval(0.0, 1.0)", "independent(real, 1)"..."""
    for name, known in _NAMED:
        if constraint is known:
            return name
    cls = type(constraint)
    t = torch.distributions.constraints
    if isinstance(constraint, t.independent):
        return f"independent({constraint_name(constraint.base_constraint)}, {constraint.reinterpreted_batch_ndims})"
    if isinstance(constraint, t._Interval):
        return f"interval({_num(constraint.lower_bound)}, {_num(constraint.upper_bound)})"
    if isinstance(constraint, t._HalfOpenInterval):
        return f"half_open_interval({_num(constraint.lower_bound)}, {_num(constraint.upper_bound)})"
    if isinstance(constraint, C._SoftplusPositive):
        return "softplus_positive"
    if isinstance(constraint, t._GreaterThan):
        return "positive" if _num(constraint.lower_bound) == "0.0" else f"greater_than({_num(constraint.lower_bound)})"
    if isinstance(constraint, t._GreaterThanEq):
        return "nonnegative" if _num(constraint.lower_bound) == "0.0" else f"greater_than_eq({_num(constraint.lower_bound)})"
    if isinstance(constraint, t._LessThan):
        return f"less_than({_num(constraint.upper_bound)})"
    if isinstance(constraint, t._IntegerInterval):
        return f"integer_interval({int(constraint.lower_bound)}, {int(constraint.upper_bound)})"
    if isinstance(constraint, t._IntegerGreaterThan):
        return f"integer_greater_than({int(constraint.lower_bound)})"
    # Unknown constraint: keep the class name so a reader can still see what it was.
    return cls.__name__.lstrip("_")


_CALL = re.compile(r"^\s*([a-z_]+)\s*\((.*)\)\s*$", re.DOTALL)


def _split_args(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        current += ch
    if current.strip():
        parts.append(current.strip())
    return parts


def parse_constraint(text: str) -> Any:
    """The constraint object for a name written by :func:`constraint_name` (no ``eval``)."""
    text = text.strip()
    if text in _BY_NAME:
        return _BY_NAME[text]
    match = _CALL.match(text)
    if not match:
        raise ValueError(f"unknown constraint {text!r}")
    head, args = match.group(1), _split_args(match.group(2))
    if head == "independent" and len(args) == 2:
        return C.independent(parse_constraint(args[0]), int(args[1]))
    floats = [float(a) for a in args]
    table = {
        "interval": (C.interval, 2),
        "half_open_interval": (C.half_open_interval, 2),
        "greater_than": (C.greater_than, 1),
        "greater_than_eq": (C.greater_than_eq, 1),
        "less_than": (C.less_than, 1),
    }
    if head in table and len(floats) == table[head][1]:
        return table[head][0](*floats)
    if head == "integer_interval" and len(floats) == 2:
        return C.integer_interval(int(floats[0]), int(floats[1]))
    if head == "integer_greater_than" and len(floats) == 1:
        return torch.distributions.constraints.integer_greater_than(int(floats[0]))
    raise ValueError(f"unknown constraint {text!r}")


def param_entry(name: str) -> dict[str, Any]:
    """The JSON description of one param of the live store, constrained value included."""
    store = pyro.get_param_store()
    value = store[name].detach()
    return {
        "value": value.cpu().tolist(),
        "shape": list(value.shape),
        "dtype": str(value.dtype).replace("torch.", ""),
        "constraint": constraint_name(store._constraints[name]),
    }


def _param_names(trace: poutine.Trace) -> list[str]:
    return [name for name, site in trace.nodes.items() if site["type"] == "param"]


def split_params(
    model: Callable, guide: Callable | None, kwargs: Mapping
) -> tuple[dict[str, dict], dict[str, dict]]:
    """(guide_params, model_params) of the live param store.

    phi: every param touched while tracing the guide; theta: every param touched by the
    model (replayed on the guide's trace) that the guide did not touch. Params in the store
    that neither touches (e.g. left over from another guide) go into ``model_params`` with
    ``"traced": False`` so nothing in the store is silently dropped. Values are constrained.
    Tracing runs under ``torch.no_grad`` and samples nothing into the store.
    """
    messenger = guide is not None and isinstance(poutine.unwrap(guide), poutine.messenger.Messenger)
    with torch.no_grad(), poutine.block():
        guide_trace = poutine.trace(guide).get_trace(**kwargs) if guide is not None else None
        if messenger:
            # A GuideMessenger runs the model inside itself, so its trace holds the model's
            # params too: phi is then what the guide touches beyond the model alone.
            model_trace = poutine.trace(model).get_trace(**kwargs)
        else:
            replayed = poutine.replay(model, trace=guide_trace) if guide_trace is not None else model
            model_trace = poutine.trace(replayed).get_trace(**kwargs)
    guide_names = _param_names(guide_trace) if guide_trace is not None else []
    if messenger:
        model_names = set(_param_names(model_trace))
        guide_names = [n for n in guide_names if n not in model_names]
    store = pyro.get_param_store()
    guide_params = {n: param_entry(n) for n in dict.fromkeys(guide_names) if n in store}
    model_params = {
        n: param_entry(n)
        for n in dict.fromkeys(_param_names(model_trace))
        if n in store and n not in guide_params
    }
    for name in list(store.keys()):
        if name not in guide_params and name not in model_params:
            model_params[name] = {**param_entry(name), "traced": False}
    return guide_params, model_params


# ---------------------------------------------------------------- param-store files


def param_store_safetensors(
    state: Mapping | None = None,
    *,
    guide_params: Mapping | None = None,
    model_params: Mapping | None = None,
) -> bytes:
    """Param-store state (unconstrained values + constraint names) as safetensors bytes.

    ``state`` defaults to the live ``pyro.get_param_store().get_state()``. The phi/theta
    split, when given, is stored in the metadata too (``vihub.guide_params`` /
    ``vihub.model_params``: JSON lists of names).
    """
    from safetensors.torch import save

    if state is None:
        state = pyro.get_param_store().get_state()
    tensors = {n: v.detach().cpu().contiguous() for n, v in state["params"].items()}
    metadata = {
        _FORMAT_KEY: _FORMAT,
        _CONSTRAINTS_KEY: json.dumps({n: constraint_name(c) for n, c in state["constraints"].items()}),
    }
    if guide_params is not None:
        metadata["vihub.guide_params"] = json.dumps(list(guide_params))
    if model_params is not None:
        metadata["vihub.model_params"] = json.dumps(list(model_params))
    return save(tensors, metadata=metadata)


def load_param_store_safetensors(blob: bytes, *, device: str | torch.device = "cpu") -> dict:
    """Rebuild a ``ParamStore.get_state()`` dict from :func:`param_store_safetensors` bytes.

    Use it as ``pyro.get_param_store().set_state(load_param_store_safetensors(blob))``.
    """
    from safetensors.torch import load

    tensors = load(blob)
    # The metadata lives in the JSON header: 8-byte little-endian length, then the JSON.
    header_len = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + header_len])
    metadata = header.get("__metadata__", {})
    if metadata.get(_FORMAT_KEY) != _FORMAT:
        raise ValueError("not a vihub param-store safetensors file")
    names = json.loads(metadata[_CONSTRAINTS_KEY])
    params = {}
    for name, tensor in tensors.items():
        params[name] = tensor.to(device).requires_grad_(True)
    constraints = {name: parse_constraint(names[name]) for name in params}
    return {"params": params, "constraints": constraints}


def param_store_pt(state: Mapping | None = None) -> bytes:
    """Pyro's native param-store file (a torch pickle) for ``pyro.get_param_store().load``.

    Produced only; vihub never loads these (pickles run code when loaded). A user loading
    their own download trusts the file the same way they trust ``torch.load``.
    """
    if state is None:
        state = pyro.get_param_store().get_state()
    state = {
        "params": {n: v.detach().cpu().clone().requires_grad_(True) for n, v in state["params"].items()},
        "constraints": dict(state["constraints"]),
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def param_store_bytes() -> bytes:
    """The default param-store file of the live store: the safetensors form."""
    return param_store_safetensors()
