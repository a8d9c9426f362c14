"""The catalog of built-in models, written in the model language.

Each model is a package data file ``models/<name>.py`` (plain Pyro source with its
import lines and a docstring, which is the description) with a small example dataset
``data/<name>.json``. ``get(name)`` returns a ``CatalogEntry`` holding the source, the
entry function, the data schema, settings in the job-body format that suit the model
and, where known, facts about its posterior. The catalog only reads text; compiling a
source is the language's job (``inference.language.compile_source``).

Adding a model: write ``models/<name>.py`` (docstring first, plain Pyro imports, data
fields as the entry function's parameters), add its dataset to ``generate_data.py`` and
run ``python -m inference.catalog.generate_data``, describe it in ``_registry.py``, and
write the same model directly in Pyro in
``tests/inference/catalog/catalog_reference_models.py``: the tests compare the two.
"""

from __future__ import annotations

import ast
import copy
import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

from inference.catalog._registry import ENTRIES
from inference.errors import InferenceError

__all__ = ["CatalogEntry", "CatalogError", "get", "names"]


class CatalogError(InferenceError, KeyError):
    """An unknown catalog model name. A ``KeyError`` too, so mappings-style code works."""

    kind = "unknown-catalog-model"

    def __str__(self) -> str:
        # KeyError would repr() the message; keep it readable.
        return self.message


@dataclass(frozen=True)
class CatalogEntry:
    """A built-in model.

    ``example_data`` maps each field to a numpy array (``float64`` or ``int64`` as the
    schema's ``dtype`` says) or a Python number. ``data_schema`` maps each field to
    ``{"dtype": "float"|"int", "shape": [...], "description": ...}``; a shape entry is
    an int or the name of a size (an integer field, or a size shared between fields).
    ``suggested`` holds job-body settings (``guide``, ``inference``) that suit it.
    """

    name: str
    source: str
    entry: str
    description: str
    example_data: dict[str, Any]
    data_schema: dict[str, dict[str, Any]]
    suggested: dict[str, Any]
    reference: dict[str, Any] | None = None
    guide_entry: str | None = field(default=None)


def names() -> list[str]:
    """The names of all catalog models, in catalog order."""
    return list(ENTRIES)


def get(name: str) -> CatalogEntry:
    """The catalog entry ``name``; a fresh copy, so callers may change its data."""
    if name not in ENTRIES:
        available = names()
        raise CatalogError(
            f"unknown catalog model {name!r}; available: {', '.join(available)}",
            name=name,
            available=available,
        )
    info = ENTRIES[name]
    source = _source(name)
    suggested = copy.deepcopy(info["suggested"])
    guide = suggested.get("guide", {})
    if "entry" in guide and guide.get("source") is None:
        guide["source"] = source
    return CatalogEntry(
        name=name,
        source=source,
        entry=info.get("entry", "model"),
        description=_description(name),
        example_data=_example_data(name, info["data_schema"]),
        data_schema=copy.deepcopy(info["data_schema"]),
        suggested=suggested,
        reference=copy.deepcopy(info["reference"]),
        guide_entry=info.get("guide_entry"),
    )


@cache
def _source(name: str) -> str:
    return (resources.files(__name__) / "models" / f"{name}.py").read_text(
        encoding="utf-8"
    )


@cache
def _description(name: str) -> str:
    # Our own package file, parsed for its docstring only (never executed here).
    return ast.get_docstring(ast.parse(_source(name))) or ""


@cache
def _raw_data(name: str) -> dict[str, Any]:
    text = (resources.files(__name__) / "data" / f"{name}.json").read_text(
        encoding="utf-8"
    )
    return json.loads(text)


def _example_data(name: str, schema: dict[str, dict[str, Any]]) -> dict[str, Any]:
    raw = _raw_data(name)
    data: dict[str, Any] = {}
    for field_name, spec in schema.items():
        value = raw[field_name]
        if spec["shape"]:
            dtype = np.float64 if spec["dtype"] == "float" else np.int64
            data[field_name] = np.asarray(value, dtype=dtype)
        else:
            data[field_name] = float(value) if spec["dtype"] == "float" else int(value)
    return data
