"""Tiny job bodies shared by the API tests (fixtures in conftest.py, the live-server
tests in test_concurrency.py): importable as ``job_bodies`` from ``tests/api``."""

from __future__ import annotations

from typing import Any

from models import TINY_LINEAR_DATA
from models import TINY_LINEAR_SOURCE as LINEAR_SOURCE  # tiny: traces in milliseconds


def linear_job(steps: int = 10, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": {"source": LINEAR_SOURCE},
        "guide": {"auto": "AutoNormal"},
        "data": {"inline": dict(TINY_LINEAR_DATA)},
        "inference": {"steps": steps, "seed": 1},
        "outputs": {"num_samples": 10},
    }
    body.update(extra)
    return body
