"""The models the tests and benchmarks share, written once.

Catalog models are taken from the catalog: its model files
(``inference/catalog/models/<name>.py``) are plain Pyro modules, so ``native(name)`` is
the entry function imported as Python (our own file, not user text: nothing is
exec'd from a job) for tests that drive Pyro directly, ``source(name)`` is the text a
job submits, and ``data(name)`` the example dataset as tensors. Tiny models that are
not in the catalog live here once too.

A test that needs a *different* text keeps its own copy, with a comment saying why.
``tests/inference/catalog/catalog_reference_models.py`` is such a copy by design: an
independent transcription the catalog is checked against.

Importable as ``models`` (``tests/`` is on ``sys.path`` through its conftest); benchmarks
add ``tests/`` to ``sys.path`` themselves.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from inference import catalog

EIGHT_SCHOOLS = "eight_schools_noncentered"
GAUSSIAN_MIXTURE = "gaussian_mixture"
LOGISTIC_REGRESSION = "logistic_regression"

# The smallest useful job model: traces in milliseconds (API and load tests).
TINY_LINEAR_SOURCE = '''
import pyro
import pyro.distributions as dist

def model(x, y=None):
    w = pyro.sample("w", dist.Normal(0.0, 1.0))
    b = pyro.sample("b", dist.Normal(0.0, 1.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("obs", dist.Normal(w * x + b, 1.0), obs=y)
'''
TINY_LINEAR_DATA = {"x": [0.0, 1.0, 2.0, 3.0], "y": [0.1, 1.1, 1.9, 3.2]}


def source(name: str = EIGHT_SCHOOLS) -> str:
    """The model-language text of a catalog model (what a job submits)."""
    return catalog.get(name).source


def native(name: str = EIGHT_SCHOOLS) -> Callable[..., Any]:
    """The catalog model's entry function as plain Python/Pyro (its module imported)."""
    module = importlib.import_module(f"inference.catalog.models.{name}")
    return getattr(module, catalog.get(name).entry)


def data(name: str = EIGHT_SCHOOLS) -> dict[str, Any]:
    """The catalog model's example data as model arguments: float arrays as tensors of
    torch's default dtype, integer arrays as int64 tensors, numbers as they are (a fresh
    copy per call)."""
    import numpy as np
    import torch

    out: dict[str, Any] = {}
    for field, value in catalog.get(name).example_data.items():
        if isinstance(value, np.ndarray):
            dtype = torch.get_default_dtype() if value.dtype.kind == "f" else torch.int64
            out[field] = torch.as_tensor(value, dtype=dtype)
        else:
            out[field] = value
    return out


def json_data(name: str = EIGHT_SCHOOLS) -> dict[str, Any]:
    """The catalog model's example data as JSON values (an ``inline`` job body)."""
    import numpy as np

    return {field: value.tolist() if isinstance(value, np.ndarray) else value
            for field, value in catalog.get(name).example_data.items()}


eight_schools = native(EIGHT_SCHOOLS)
