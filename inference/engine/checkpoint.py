"""Checkpoints as bytes: safetensors for tensors, JSON (in the safetensors header) for the rest.

No pickle anywhere: a checkpoint may come back from storage after a worker crash and
is treated as untrusted input. Nested Python state (torch optimizer ``state_dict`` s,
with int keys, tuples and tensors) is encoded explicitly:

- a tensor becomes ``{"__tensor__": key}`` with the tensor stored under ``key``;
- a dict with any non-``str`` key becomes ``{"__dict__": [[key, value], ...]}``;
- a tuple becomes ``{"__tuple__": [...]}``; lists, numbers, strings, bools, None stay.

Layout of the JSON (``__metadata__["vihub"]`` of the safetensors header)::

    {"format": "vihub-checkpoint", "version": 1, "step": int,
     "params": [names], "optim": <encoded PyroOptim.get_state()>,
     "rng": {"python": ..., "numpy": ..., "torch": {"__tensor__": ...}, "cuda": [...]},
     "history": {...}, "fingerprint": {...}}

Unconstrained parameter values are stored under ``param/<name>``; the loss curve as
``losses`` (float64).
"""

from __future__ import annotations

import json
import random
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import pyro
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from inference.engine.errors import SpecError

__all__ = ["Checkpoint", "dump_checkpoint", "load_checkpoint", "capture_rng", "restore_rng",
           "encode_state", "decode_state"]

FORMAT = "vihub-checkpoint"
VERSION = 1


def encode_state(obj: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    if torch.is_tensor(obj):
        key = f"{prefix}#{len(tensors)}"
        tensors[key] = obj.detach().to("cpu").contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        return encode_state(torch.from_numpy(np.ascontiguousarray(obj)), tensors, prefix)
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: encode_state(v, tensors, prefix) for k, v in obj.items()}
        return {"__dict__": [[encode_state(k, tensors, prefix), encode_state(v, tensors, prefix)]
                             for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [encode_state(x, tensors, prefix) for x in obj]}
    if isinstance(obj, list):
        return [encode_state(x, tensors, prefix) for x in obj]
    if isinstance(obj, (bool, int, float, str)) or obj is None:
        return obj
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    raise TypeError(f"cannot checkpoint a value of type {type(obj).__name__}")


def decode_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {_hashable(decode_state(k, tensors)): decode_state(v, tensors)
                    for k, v in obj["__dict__"]}
        if "__tuple__" in obj:
            return tuple(decode_state(x, tensors) for x in obj["__tuple__"])
        return {k: decode_state(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode_state(x, tensors) for x in obj]
    return obj


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


def capture_rng(tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The python, numpy, torch (and CUDA, if initialised) generator states."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": encode_state(random.getstate(), tensors, "rng/python"),
        "numpy": encode_state(
            (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
            tensors, "rng/numpy"),
        "torch": encode_state(torch.get_rng_state(), tensors, "rng/torch"),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = encode_state(torch.cuda.get_rng_state_all(), tensors, "rng/cuda")
    return state


def restore_rng(state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    py = decode_state(state["python"], tensors)
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, pos, has_gauss, cached = decode_state(state["numpy"], tensors)
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(decode_state(state["torch"], tensors))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(decode_state(state["cuda"], tensors))


@dataclass
class Checkpoint:
    step: int
    losses: list[float]
    params: dict[str, torch.Tensor]  # unconstrained values by param-store name
    optim_state: dict[str, Any]  # PyroOptim.get_state()
    rng: dict[str, Any]  # encoded, with its tensors in ``rng_tensors``
    rng_tensors: dict[str, torch.Tensor]
    history: dict[str, Any] = field(default_factory=dict)
    fingerprint: dict[str, Any] = field(default_factory=dict)


def dump_checkpoint(
    *,
    step: int,
    losses: list[float],
    optim: pyro.optim.PyroOptim,
    history: dict[str, Any],
    fingerprint: dict[str, Any],
) -> bytes:
    """The current param store, optimizer, RNGs and loop state as safetensors bytes."""
    tensors: dict[str, torch.Tensor] = {}
    names = []
    for name, unconstrained in pyro.get_param_store().named_parameters():
        tensors[f"param/{name}"] = unconstrained.detach().to("cpu").contiguous().clone()
        names.append(name)
    tensors["losses"] = torch.tensor(losses, dtype=torch.float64)
    header = {
        "format": FORMAT,
        "version": VERSION,
        "step": step,
        "params": names,
        "optim": encode_state(optim.get_state(), tensors, "optim"),
        "rng": capture_rng(tensors),
        "history": history,
        "fingerprint": fingerprint,
    }
    return st_save(tensors, metadata={"vihub": json.dumps(header)})


def _read_metadata(blob: bytes) -> dict[str, str]:
    if len(blob) < 8:
        raise SpecError("resume_from is not a vihub checkpoint (too short)", field="resume_from")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise SpecError("resume_from is not a vihub checkpoint (bad header)", field="resume_from")
    try:
        return json.loads(blob[8 : 8 + n]).get("__metadata__") or {}
    except (ValueError, UnicodeDecodeError) as e:
        raise SpecError(f"resume_from is not a vihub checkpoint: {e}", field="resume_from") from e


def load_checkpoint(blob: bytes) -> Checkpoint:
    meta = _read_metadata(blob)
    if "vihub" not in meta:
        raise SpecError("resume_from is not a vihub checkpoint (no vihub header)", field="resume_from")
    header = json.loads(meta["vihub"])
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise SpecError("resume_from has an unknown checkpoint format/version", field="resume_from")
    tensors = st_load(blob)
    params = {name: tensors[f"param/{name}"] for name in header["params"]}
    return Checkpoint(
        step=int(header["step"]),
        losses=tensors["losses"].tolist(),
        params=params,
        optim_state=decode_state(header["optim"], tensors),
        rng=header["rng"],
        rng_tensors=tensors,
        history=header.get("history", {}),
        fingerprint=header.get("fingerprint", {}),
    )
