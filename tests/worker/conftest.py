"""Fixtures for worker tests: jobs in a migrated store, settings for in-process runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from common.arrays import encode_arrays
from store.repositories import DatasetRepository, JobRepository

CATALOG_MODEL = "eight_schools_noncentered"


def job_spec(steps: int = 150, **inference: Any) -> dict[str, Any]:
    """A small eight-schools job spec (the real engine, a real catalog model)."""
    return {
        "version": 1,
        "model": {"catalog": CATALOG_MODEL},
        "guide": {"auto": "AutoNormal"},
        "inference": {
            "steps": steps,
            "seed": 0,
            "optimizer": {"name": "Adam", "lr": 0.05},
            "progress_every_steps": 10,
            "progress_every_s": 0.5,
            **inference,
        },
        "outputs": {"num_samples": 50, "log_prob_draws": 50, "elbo_terms_every": 50,
                    "elbo_terms_particles": 4, "grad_norms_every": 50},
    }


def create_job(factory: Any, tenant_id: str, spec: dict[str, Any] | None = None,
               data: dict[str, Any] | None = None, max_attempts: int = 3, queue: str = "cpu") -> str:
    """Insert a queued job the way the API does (data stored as a dataset); returns its id."""
    from inference import catalog

    data = data if data is not None else dict(catalog.get(CATALOG_MODEL).example_data)
    encoded = encode_arrays(data)
    with factory.begin() as session:
        dataset, _ = DatasetRepository(session).get_or_create(
            tenant_id, encoded.sha256, encoded.content, encoded.fields, "inline")
        job = JobRepository(session).create(
            tenant_id=tenant_id, spec=spec or job_spec(), dataset_id=dataset.id,
            max_attempts=max_attempts, queue=queue)
        return job.id


@pytest.fixture
def new_job(session_factory: Any, tenant: Any) -> Callable[..., str]:
    """``new_job(spec=None, data=None, max_attempts=3) -> job_id`` in the test's tenant."""
    return lambda **kw: create_job(session_factory, tenant.id, **kw)


@pytest.fixture
def worker_settings(migrated_db: str, tmp_path: Any) -> Iterator[Any]:
    """Process settings for in-process task runs against the test database."""
    from common.settings import override_settings

    with override_settings(
        home=tmp_path,
        database_url=migrated_db,
        broker_url=f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}",
        worker={"progress_every_s": 0.2, "checkpoint_every_s": 0.5, "heartbeat_seconds": 1.0,
                "lease_seconds": 30},
    ) as settings:
        yield settings


@pytest.fixture
def make_spec() -> Callable[..., dict[str, Any]]:
    """``make_spec(steps=150, **inference) -> dict``: a small eight-schools spec."""
    return job_spec



@pytest.fixture
def create_job_in() -> Callable[..., str]:
    """``create_job_in(factory, tenant_id, spec=None, data=None, max_attempts=3) -> job_id``."""
    return create_job
