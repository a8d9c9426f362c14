"""Tiny job bodies shared by the API tests (fixtures in conftest.py, the live-server
tests in test_concurrency.py): importable as ``job_bodies`` from ``tests/api``."""

from __future__ import annotations

from typing import Any

# Tiny models: they trace in milliseconds.
LINEAR_SOURCE = '''
import pyro
import pyro.distributions as dist

def model(x, y=None):
    w = pyro.sample("w", dist.Normal(0.0, 1.0))
    b = pyro.sample("b", dist.Normal(0.0, 1.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("obs", dist.Normal(w * x + b, 1.0), obs=y)
'''


def linear_job(steps: int = 10, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": {"source": LINEAR_SOURCE},
        "guide": {"auto": "AutoNormal"},
        "data": {"inline": {"x": [0.0, 1.0, 2.0, 3.0], "y": [0.1, 1.1, 1.9, 3.2]}},
        "inference": {"steps": steps, "seed": 1},
        "outputs": {"num_samples": 10},
    }
    body.update(extra)
    return body
