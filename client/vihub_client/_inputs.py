"""Turning what a Python user has in hand into the REST job body (no I/O but file reads).

Decisions (documented in docs/client.md):

* ``model``: a dict is sent as is (``{"source": ..., "entry": ...}`` or ``{"catalog": ...}``);
  ``"catalog:NAME"`` names a catalog model; a ``pathlib.Path`` or a string ending in ``.py``
  is a file whose text is the source; text containing a newline or ``def`` is source; a
  bare identifier such as ``"eight_schools_noncentered"`` is a catalog name (it cannot be
  model source: a model needs a ``def``). Anything else is refused with ``ValueError``.
* ``guide``: an ``Auto*`` class name -> ``{"auto": name}``; source text or a ``.py`` path ->
  ``{"source": ..., "entry": "guide"}``; a dict as is; ``None`` -> the server default.
* ``data``: a mapping of arrays/numbers -> inline (numpy arrays and scalars converted to
  lists / Python numbers; a nested mapping such as a model config is sent as a JSON object,
  a record, with its string keys and converted leaves); a pandas DataFrame -> inline, one field per column; a path to a
  ``.csv``/``.npz``/``.parquet``/``.pq``/``.json`` file -> uploaded to ``/v1/datasets`` and
  referenced by id; ``{"inline": ...}`` or ``{"dataset_id": ...}`` as is; a ``Dataset``
  or any other string -> a dataset id; ``None`` -> omitted (catalog example data).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA_FILE_SUFFIXES = (".csv", ".npz", ".parquet", ".pq", ".json")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SOURCE_HINT = re.compile(r"\bdef\s+\w+\s*\(")


def _read_py(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    return path.read_text(encoding="utf-8")


def normalize_model(model: Any, entry: str | None = None) -> dict[str, Any]:
    if isinstance(model, Mapping):
        spec = dict(model)
        if entry is not None and "source" in spec:
            spec["entry"] = entry
        return spec
    if isinstance(model, os.PathLike):
        return {"source": _read_py(Path(model)), "entry": entry or "model"}
    if not isinstance(model, str) or not model.strip():
        raise ValueError("model must be source text, a path to a .py file, 'catalog:NAME' or a dict")
    text = model.strip()
    if text.startswith("catalog:"):
        return {"catalog": text[len("catalog:"):].strip()}
    if "\n" not in text and text.endswith(".py"):
        return {"source": _read_py(Path(text).expanduser()), "entry": entry or "model"}
    if "\n" in text or _SOURCE_HINT.search(text):
        return {"source": model, "entry": entry or "model"}
    if _IDENTIFIER.match(text):
        return {"catalog": text}
    raise ValueError(
        f"model={model!r} is neither model source, a .py file, nor a catalog name "
        "(write 'catalog:NAME' to be explicit)"
    )


def normalize_guide(guide: Any, entry: str | None = None) -> dict[str, Any] | None:
    if guide is None:
        return None
    if isinstance(guide, Mapping):
        return dict(guide)
    if isinstance(guide, os.PathLike):
        return {"source": _read_py(Path(guide)), "entry": entry or "guide"}
    if not isinstance(guide, str):
        raise ValueError("guide must be an autoguide name, guide source, a .py path or a dict")
    text = guide.strip()
    if "\n" not in text and text.endswith(".py"):
        return {"source": _read_py(Path(text).expanduser()), "entry": entry or "guide"}
    if "\n" in text or _SOURCE_HINT.search(text):
        return {"source": guide, "entry": entry or "guide"}
    return {"auto": text}


def normalize_inference(inference: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``{"elbo": "TraceMeanField_ELBO", "optimizer": "Adam"}`` shorthands become ``{"name": ...}``."""
    if inference is None:
        return None
    body = dict(inference)
    for key in ("elbo", "optimizer", "scheduler"):
        if isinstance(body.get(key), str):
            body[key] = {"name": body[key]}
    return body


# ---------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class UploadFile:
    """A data file that must go through ``POST /v1/datasets`` before the job is submitted."""

    path: Path


def plan_data(data: Any) -> dict[str, Any] | UploadFile | None:
    """The ``data`` member of the body, or an ``UploadFile`` the client uploads first."""
    if data is None:
        return None
    if _is_dataset(data):
        return {"dataset_id": str(data.id)}
    if isinstance(data, os.PathLike):
        return _file(Path(data))
    if isinstance(data, str):
        if data.lower().endswith(DATA_FILE_SUFFIXES) or os.sep in data:
            return _file(Path(data).expanduser())
        return {"dataset_id": data}
    if _is_dataframe(data):
        return {"inline": to_jsonable_fields(dataframe_fields(data))}
    if isinstance(data, Mapping):
        if set(data) == {"inline"} or set(data) == {"dataset_id"}:
            if "inline" in data:
                return {"inline": to_jsonable_fields(data["inline"])}
            return dict(data)
        return {"inline": to_jsonable_fields(data)}
    raise TypeError(
        f"data of type {type(data).__name__} is not supported; pass a dict of arrays, a DataFrame, "
        "a path to a CSV/NPZ/Parquet/JSON file, or a dataset id"
    )


def _file(path: Path) -> UploadFile:
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist")
    return UploadFile(path)


def _is_dataset(obj: Any) -> bool:
    from vihub_client.models import Dataset

    return isinstance(obj, Dataset)


def _is_dataframe(obj: Any) -> bool:
    return type(obj).__name__ == "DataFrame" and hasattr(obj, "columns") and hasattr(obj, "to_numpy")


def dataframe_fields(frame: Any) -> dict[str, Any]:
    fields = {}
    for column in frame.columns:
        name = str(column)
        fields[name] = to_jsonable(frame[column].to_numpy())
    return fields


def to_jsonable_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    fields = {}
    for name, value in data.items():
        fields[str(name)] = converted = to_jsonable(value)
        if not _all_finite(converted):
            # JSON has no NaN; say which field instead of failing inside the encoder.
            raise ValueError(
                f"data field {name!r} contains NaN or infinity; the service needs finite data "
                "(drop or impute missing values, or use obs_mask in the model)"
            )
    return fields


def _all_finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_all_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_all_finite(v) for v in value.values())
    return True


def to_jsonable(value: Any) -> Any:
    """numpy arrays/scalars, pandas Series, tuples -> lists and Python numbers; a mapping
    (a record: a model config) -> a JSON object with its values converted the same way."""
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"record key {key!r} is not a string; keys of nested data must be names")
            out[key] = to_jsonable(item)
        return out
    if hasattr(value, "to_numpy") and not isinstance(value, (list, tuple)):
        value = value.to_numpy()
    if hasattr(value, "tolist") and hasattr(value, "dtype"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "item") and hasattr(value, "dtype"):  # a numpy scalar (or a 0-d tensor)
        return value.item()
    return value


def parse_labels(labels: Mapping[str, str] | list[str] | tuple[str, ...] | None) -> dict[str, str]:
    """``{"k": "v"}`` or ``["k=v", ...]`` (the CLI's form)."""
    if labels is None:
        return {}
    if isinstance(labels, Mapping):
        return {str(k): str(v) for k, v in labels.items()}
    out = {}
    for item in labels:
        key, sep, value = str(item).partition("=")
        if not sep:
            raise ValueError(f"label {item!r} must be KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def build_job_body(
    *,
    model: dict[str, Any],
    guide: dict[str, Any] | None,
    data: dict[str, Any] | None,
    inference: dict[str, Any] | None,
    outputs: dict[str, Any] | None,
    labels: dict[str, str] | None,
    webhook: str | Mapping[str, Any] | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model}
    if guide is not None:
        body["guide"] = guide
    if data is not None:
        body["data"] = data
    if inference:
        body["inference"] = inference
    if outputs:
        body["outputs"] = dict(outputs)
    if labels:
        body["labels"] = labels
    if webhook is not None:
        body["webhook"] = {"url": webhook} if isinstance(webhook, str) else dict(webhook)
    return body
