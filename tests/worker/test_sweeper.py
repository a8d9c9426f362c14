"""The sweeper against the real store (publishing captured in-process)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from common.settings import Settings
from store.models import utcnow
from store.repositories import JobRepository
from worker.sweeper import sweep_once


def test_sweep_reclaims_and_republishes(migrated_db: str, session_factory: Any, tenant: Any) -> None:
    settings = Settings(database_url=migrated_db, worker={"requeue_after_s": 60})
    old = utcnow() - timedelta(minutes=10)
    past = utcnow() - timedelta(minutes=5)
    spec = {"version": 1}
    with session_factory.begin() as s:
        repo = JobRepository(s)
        expired = repo.create(tenant_id=tenant.id, spec=spec, max_attempts=3, created_at=old).id
        exhausted = repo.create(tenant_id=tenant.id, spec=spec, max_attempts=1, created_at=old).id
        cancelling = repo.create(tenant_id=tenant.id, spec=spec, max_attempts=3, created_at=old).id
        live = repo.create(tenant_id=tenant.id, spec=spec, max_attempts=3, created_at=old).id
        stuck = repo.create(tenant_id=tenant.id, spec=spec, max_attempts=3, created_at=old, queue="gpu").id
        fresh = repo.create(tenant_id=tenant.id, spec=spec, max_attempts=3).id
        for job_id in (expired, exhausted, cancelling):
            repo.claim(job_id, "dead", lease_seconds=1, now=past)
        repo.claim(live, "alive", lease_seconds=300)
        repo.request_cancel(cancelling)

    published: list[tuple[str, str]] = []
    report = sweep_once(settings, publish=lambda job_id, queue: published.append((job_id, queue)),
                        factory=session_factory)
    mine = {expired, exhausted, cancelling, live, stuck, fresh}
    published = [p for p in published if p[0] in mine]  # other tests share the database

    assert sorted(published) == sorted([(expired, "cpu"), (stuck, "gpu")])
    assert expired in report.requeued and stuck in report.republished
    with session_factory.begin() as s:
        repo = JobRepository(s)
        states = {j: repo.get(j).state for j in mine}
        assert repo.get(exhausted).error["type"].endswith("/too-many-attempts")
        assert repo.get(stuck).published_at is not None
    assert states == {expired: "queued", exhausted: "failed", cancelling: "cancelled", live: "running",
                      stuck: "queued", fresh: "queued"}

    # Just republished: the next sweep leaves them alone.
    again: list[tuple[str, str]] = []
    sweep_once(settings, publish=lambda job_id, queue: again.append((job_id, queue)), factory=session_factory)
    assert not [p for p in again if p[0] in mine]


def test_failed_publish_is_retried_next_sweep(migrated_db: str, session_factory: Any, tenant: Any) -> None:
    settings = Settings(database_url=migrated_db, worker={"requeue_after_s": 60})
    with session_factory.begin() as s:
        stuck = JobRepository(s).create(tenant_id=tenant.id, spec={"version": 1}, max_attempts=3,
                                        created_at=utcnow() - timedelta(minutes=10)).id

    def broken(job_id: str, queue: str) -> None:
        raise ConnectionError("broker down")

    report = sweep_once(settings, publish=broken, factory=session_factory)
    assert stuck in report.publish_errors
    published: list[str] = []
    sweep_once(settings, publish=lambda job_id, queue: published.append(job_id), factory=session_factory)
    assert stuck in published


def test_republish_backs_off_for_long_waiting_jobs() -> None:
    from types import SimpleNamespace

    from worker.sweeper import republish_due

    t0 = utcnow()
    never = SimpleNamespace(created_at=t0, queued_at=t0, published_at=None)
    assert not republish_due(never, t0 + timedelta(seconds=59), 60)
    assert republish_due(never, t0 + timedelta(seconds=60), 60)
    # Waited 5 minutes before its last publish: the next one comes 5 minutes later.
    waited = SimpleNamespace(created_at=t0, queued_at=t0, published_at=t0 + timedelta(minutes=5))
    assert not republish_due(waited, t0 + timedelta(minutes=9), 60)
    assert republish_due(waited, t0 + timedelta(minutes=10), 60)
    # Capped at ten times the base, however long it has waited.
    old = SimpleNamespace(created_at=t0, queued_at=t0, published_at=t0 + timedelta(hours=5))
    assert republish_due(old, t0 + timedelta(hours=5, minutes=10), 60)


def test_publisher_clients_differ_by_transport_options() -> None:
    from common.broker import publisher_for

    a = Settings(broker_url="redis://127.0.0.1:6379/1", broker_transport_options={"global_keyprefix": "a:"})
    b = Settings(broker_url="redis://127.0.0.1:6379/1", broker_transport_options={"global_keyprefix": "b:"})
    assert publisher_for(a) is publisher_for(a)
    assert publisher_for(a) is not publisher_for(b)
    assert publisher_for(b).celery.conf.broker_transport_options["global_keyprefix"] == "b:"


def test_waiting_jobs_are_not_republished_only_lost_ones(migrated_db: str, session_factory: Any, tenant: Any) -> None:
    """A published job waiting its turn keeps its one message; only the broker's deficit
    (messages lost) is resent, least recently published first."""
    settings = Settings(database_url=migrated_db, worker={"requeue_after_s": 60})
    long_ago = utcnow() - timedelta(minutes=20)
    with session_factory.begin() as s:
        repo = JobRepository(s)
        ids = [repo.create(tenant_id=tenant.id, spec={"version": 1}, queue="gpu", created_at=long_ago).id
               for _ in range(3)]
        for n, job_id in enumerate(ids):
            repo.mark_published(job_id, now=long_ago + timedelta(minutes=n))
    with session_factory.begin() as s:
        waiting = JobRepository(s).count_published_queued("gpu")  # other tests share the database

    def sweep(depth: int | None) -> list[str]:
        sent: list[str] = []
        sweep_once(settings, publish=lambda job_id, queue: sent.append(job_id), factory=session_factory,
                   queue_depth=lambda queue: depth if queue == "gpu" else None)
        return [j for j in sent if j in ids]

    assert sweep(waiting) == []  # every waiting job still has its message
    assert sweep(None) == []  # depth unknown: only after worker.republish_after_s (30 min)
    assert sweep(waiting - 1) == [ids[0]]  # one message lost: the least recently sent job
    # It was just sent again: another deficit now picks the next one, not the same again.
    assert sweep(waiting - 1) == [ids[1]]
