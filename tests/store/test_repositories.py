"""Repositories against the migrated database, on SQLite and on Postgres."""

from __future__ import annotations

import math
import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from store.job_states import InvalidTransition
from store.models import ArtifactKind, utcnow
from store.repositories import (
    ApiKeyRepository,
    ArtifactRepository,
    DatasetRepository,
    InvalidPageToken,
    JobFilters,
    JobRepository,
    LeaseLost,
    LossPointRepository,
    TenantRepository,
    ensure_default_tenant,
)
from common.keys import display_prefix, generate_api_key, hash_api_key

SPEC = {"version": 1, "model": {"catalog": "eight_schools_noncentered"}}


def new_job(factory: Any, tenant_id: str, **fields: Any) -> str:
    with factory.begin() as s:
        fields.setdefault("max_attempts", 3)
        return JobRepository(s).create(tenant_id=tenant_id, spec=SPEC, **fields).id


def load(factory: Any, job_id: str) -> Any:
    with factory.begin() as s:
        return JobRepository(s).get(job_id)


# ---- claim ---------------------------------------------------------------------------


def test_claim_moves_queued_to_running_once(session_factory: Any, tenant: Any) -> None:
    job_id = new_job(session_factory, tenant.id)
    with session_factory.begin() as s:
        job = JobRepository(s).claim(job_id, "w1", lease_seconds=30)
        assert job is not None
        assert (job.state, job.attempts, job.worker_id) == ("running", 1, "w1")
        assert job.started_at is not None and job.lease_expires_at > utcnow()
    with session_factory.begin() as s:
        # A redelivered message: the lease is live, so the second claim is refused.
        assert JobRepository(s).claim(job_id, "w2", lease_seconds=30) is None
    assert load(session_factory, job_id).worker_id == "w1"


def test_concurrent_claims_have_exactly_one_winner(session_factory: Any, tenant: Any) -> None:
    job_ids = [new_job(session_factory, tenant.id) for _ in range(4)]
    for job_id in job_ids:
        barrier = threading.Barrier(4)
        winners: list[str] = []
        errors: list[BaseException] = []

        def contend(worker: str, job_id: str = job_id, barrier: threading.Barrier = barrier,
                    winners: list[str] = winners, errors: list[BaseException] = errors) -> None:
            try:
                barrier.wait(timeout=10)
                with session_factory.begin() as s:
                    if JobRepository(s).claim(job_id, worker, lease_seconds=30) is not None:
                        winners.append(worker)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=contend, args=(f"w{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not errors, errors
        assert len(winners) == 1
        job = load(session_factory, job_id)
        assert job.attempts == 1 and job.worker_id == winners[0]


def test_expired_lease_can_be_reclaimed_until_attempts_run_out(session_factory: Any, tenant: Any) -> None:
    job_id = new_job(session_factory, tenant.id, max_attempts=2)
    past = utcnow() - timedelta(minutes=5)
    with session_factory.begin() as s:
        assert JobRepository(s).claim(job_id, "w1", lease_seconds=1, now=past) is not None
    with session_factory.begin() as s:
        job = JobRepository(s).claim(job_id, "w2", lease_seconds=1, now=past + timedelta(seconds=10))
        assert job is not None and job.attempts == 2 and job.worker_id == "w2"
    with session_factory.begin() as s:
        # lease expired again but attempts == max_attempts
        assert JobRepository(s).claim(job_id, "w3", lease_seconds=30) is None


def test_claim_refuses_cancelled_deleted_and_final_jobs(session_factory: Any, tenant: Any) -> None:
    cancelled = new_job(session_factory, tenant.id)
    deleted = new_job(session_factory, tenant.id)
    with session_factory.begin() as s:
        repo = JobRepository(s)
        repo.request_cancel(cancelled)
        repo.soft_delete(tenant.id, deleted)
    with session_factory.begin() as s:
        repo = JobRepository(s)
        assert repo.claim(cancelled, "w", 30) is None
        assert repo.claim(deleted, "w", 30) is None


# ---- transitions ---------------------------------------------------------------------


def test_finish_only_from_running(session_factory: Any, tenant: Any) -> None:
    job_id = new_job(session_factory, tenant.id)
    with session_factory.begin() as s, pytest.raises(InvalidTransition):
        JobRepository(s).finish(job_id, "succeeded")  # still queued
    with session_factory.begin() as s:
        repo = JobRepository(s)
        repo.claim(job_id, "w1", 30)
        with pytest.raises(InvalidTransition):
            repo.finish(job_id, "running")  # not a final state
        with pytest.raises(LeaseLost):
            repo.finish(job_id, "succeeded", worker_id="someone-else")
        job = repo.finish(job_id, "succeeded", worker_id="w1")
        assert job.state == "succeeded" and job.finished_at is not None and job.lease_expires_at is None
    with session_factory.begin() as s, pytest.raises(InvalidTransition):
        JobRepository(s).finish(job_id, "failed", error={"type": "x"})
    assert load(session_factory, job_id).state == "succeeded"


def test_request_cancel(session_factory: Any, tenant: Any) -> None:
    queued = new_job(session_factory, tenant.id)
    running = new_job(session_factory, tenant.id)
    with session_factory.begin() as s:
        repo = JobRepository(s)
        repo.claim(running, "w1", 30)
        assert repo.request_cancel(queued).state == "cancelled"
        job = repo.request_cancel(running)
        assert job.state == "running" and job.cancel_requested
        assert repo.is_cancel_requested(running)
        repo.finish(running, "cancelled", worker_id="w1")
        # final: a second cancel changes nothing
        assert repo.request_cancel(running).state == "cancelled"
        assert repo.request_cancel("no-such-job") is None


def test_heartbeat_and_progress_need_the_lease(session_factory: Any, tenant: Any) -> None:
    job_id = new_job(session_factory, tenant.id)
    with session_factory.begin() as s:
        repo = JobRepository(s)
        repo.claim(job_id, "w1", 30)
        assert repo.heartbeat(job_id, "w1", 30)
        assert not repo.heartbeat(job_id, "w2", 30)
        assert repo.record_progress(job_id, {"step": 10, "steps": 100, "loss": 1.5}, [(9, 1.6), (10, 1.5)],
                                    worker_id="w1", lease_seconds=30)
        assert not repo.record_progress(job_id, {"step": 11}, [(11, 1.4)], worker_id="w2")
    with session_factory.begin() as s:
        assert JobRepository(s).get(job_id).progress["step"] == 10
        assert LossPointRepository(s).list_for_job(job_id) == [(9, 1.6), (10, 1.5)]


def test_sweeper_transitions(session_factory: Any, tenant: Any) -> None:
    expired = new_job(session_factory, tenant.id)
    exhausted = new_job(session_factory, tenant.id, max_attempts=1)
    live = new_job(session_factory, tenant.id)
    past = utcnow() - timedelta(minutes=5)
    with session_factory.begin() as s:
        repo = JobRepository(s)
        repo.claim(expired, "w1", 1, now=past)
        repo.claim(exhausted, "w1", 1, now=past)
        repo.claim(live, "w1", 300)
        found = {j.id for j in repo.find_expired_leases()}
        assert {expired, exhausted} <= found and live not in found
        assert not repo.requeue_expired(live)
        assert not repo.requeue_expired(exhausted)  # out of attempts
        assert repo.requeue_expired(expired)
        assert repo.finish_expired(exhausted, "failed", {"type": "too-many-attempts"})
    assert load(session_factory, expired).state == "queued"
    assert load(session_factory, exhausted).state == "failed"


def test_fail_queued(session_factory: Any, tenant: Any) -> None:
    job_id = new_job(session_factory, tenant.id)
    with session_factory.begin() as s:
        assert JobRepository(s).fail_queued(job_id, {"type": "data-missing"})
        assert not JobRepository(s).fail_queued(job_id, {"type": "data-missing"})
    assert load(session_factory, job_id).error == {"type": "data-missing"}


def test_find_stuck_queued_uses_last_publish(session_factory: Any, tenant: Any) -> None:
    old = utcnow() - timedelta(minutes=10)
    stuck = new_job(session_factory, tenant.id, created_at=old)
    republished = new_job(session_factory, tenant.id, created_at=old)
    with session_factory.begin() as s:
        repo = JobRepository(s)
        repo.mark_published(republished)
        ids = {j.id for j in repo.find_stuck_queued(utcnow() - timedelta(minutes=1))}
    assert stuck in ids and republished not in ids


# ---- listing and tenants -------------------------------------------------------------


def test_keyset_pages_cover_everything_once(session_factory: Any, tenant: Any) -> None:
    base = utcnow()
    # Two jobs share a created_at: the id breaks the tie.
    ids = [new_job(session_factory, tenant.id, created_at=base + timedelta(seconds=i // 2),
                   labels={"team": "a" if i % 2 else "b"}) for i in range(7)]
    seen: list[str] = []
    token = None
    with session_factory.begin() as s:
        repo = JobRepository(s)
        while True:
            page = repo.list_for_tenant(tenant.id, page_token=token, limit=3)
            seen += [j.id for j in page.items]
            token = page.next_page_token
            if token is None:
                break
        assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
        created = [repo.get(i).created_at for i in seen]
        assert created == sorted(created, reverse=True)
        team_a = repo.list_for_tenant(tenant.id, JobFilters(labels={"team": "a"}), limit=50)
        assert {j.id for j in team_a.items} == {ids[i] for i in range(7) if i % 2}
        repo.claim(ids[0], "w", 30)
        running = repo.list_for_tenant(tenant.id, JobFilters(states=["running"]))
        assert [j.id for j in running.items] == [ids[0]]
        with pytest.raises(InvalidPageToken):
            repo.list_for_tenant(tenant.id, page_token="not-a-token")


def test_tenant_isolation(session_factory: Any, tenant: Any, tenant_factory: Any) -> None:
    other = tenant_factory()
    job_id = new_job(session_factory, tenant.id)
    with session_factory.begin() as s:
        repo = JobRepository(s)
        assert repo.get_for_tenant(other.id, job_id) is None
        assert repo.get_for_tenant(tenant.id, job_id).id == job_id
        assert repo.list_for_tenant(other.id).items == []
        assert repo.count_active_for_tenant(tenant.id) == 1
        assert repo.count_active_for_tenant(other.id) == 0
        assert not repo.soft_delete(other.id, job_id)
        assert repo.soft_delete(tenant.id, job_id)
        assert repo.get_for_tenant(tenant.id, job_id) is None


def test_idempotency_key_is_unique_per_tenant(session_factory: Any, tenant: Any, tenant_factory: Any) -> None:
    other = tenant_factory()
    first = new_job(session_factory, tenant.id, idempotency_key="k1")
    new_job(session_factory, other.id, idempotency_key="k1")  # another tenant: fine
    with pytest.raises(IntegrityError):
        new_job(session_factory, tenant.id, idempotency_key="k1")
    with session_factory.begin() as s:
        assert JobRepository(s).get_by_idempotency_key(tenant.id, "k1").id == first


def test_default_tenant_is_created_once(session_factory: Any) -> None:
    with session_factory.begin() as s:
        a = ensure_default_tenant(s)
    with session_factory.begin() as s:
        b = ensure_default_tenant(s)
        assert TenantRepository(s).get_by_name("default").id == a.id == b.id


# ---- loss points, artifacts, datasets, keys -------------------------------------------


def test_loss_points_are_idempotent(session_factory: Any, tenant: Any) -> None:
    job_id = new_job(session_factory, tenant.id)
    with session_factory.begin() as s:
        repo = LossPointRepository(s)
        repo.upsert_many(job_id, [(1, 3.0), (2, 2.0), (3, 1.0)])
        repo.upsert_many(job_id, [(2, 2.5), (3, 1.5), (4, float("nan"))])  # a redelivered run
    with session_factory.begin() as s:
        repo = LossPointRepository(s)
        assert repo.list_for_job(job_id) == [(1, 3.0), (2, 2.5), (3, 1.5), (4, None)]
        assert repo.count(job_id) == 4
        assert repo.delete_after(job_id, 2) == 2
        assert repo.last(job_id) == (2, 2.5)


def test_loss_points_large_batch(session_factory: Any, tenant: Any) -> None:
    job_id = new_job(session_factory, tenant.id)
    with session_factory.begin() as s:
        LossPointRepository(s).upsert_many(job_id, [(i, math.sin(i)) for i in range(5000)])
    with session_factory.begin() as s:
        assert LossPointRepository(s).count(job_id) == 5000


def test_artifact_upsert(session_factory: Any, tenant: Any) -> None:
    job_id = new_job(session_factory, tenant.id)
    with session_factory.begin() as s:
        repo = ArtifactRepository(s)
        repo.put(job_id, ArtifactKind.CHECKPOINT, b"one", meta={"step": 10})
        art = repo.put(job_id, ArtifactKind.CHECKPOINT, b"second", meta={"step": 20})
        assert art.size_bytes == 6 and art.meta == {"step": 20}
        assert art.content_type == "application/octet-stream"
    with session_factory.begin() as s:
        repo = ArtifactRepository(s)
        assert [a.kind for a in repo.list_for_job(job_id)] == ["checkpoint"]
        assert repo.get_content(job_id, "checkpoint") == b"second"
        art, content = repo.get_with_content(job_id, "checkpoint")
        assert content == b"second" and art.meta["step"] == 20
        assert repo.delete(job_id, "checkpoint") and repo.get(job_id, "checkpoint") is None


def test_datasets_deduplicate_per_tenant(session_factory: Any, tenant: Any, tenant_factory: Any) -> None:
    other = tenant_factory()
    fields = {"y": {"dtype": "float64", "shape": [3]}}
    with session_factory.begin() as s:
        repo = DatasetRepository(s)
        a, created_a = repo.get_or_create(tenant.id, "f" * 64, b"npz", fields, "json")
        b, created_b = repo.get_or_create(tenant.id, "f" * 64, b"npz", fields, "json")
        c, created_c = repo.get_or_create(other.id, "f" * 64, b"npz", fields, "json")
        assert (created_a, created_b, created_c) == (True, False, True)
        assert a.id == b.id != c.id
        assert repo.get_for_tenant(other.id, a.id) is None
        assert repo.get_content(a.id) == b"npz"


def test_api_keys(session_factory: Any, tenant: Any) -> None:
    key = generate_api_key()
    with session_factory.begin() as s:
        repo = ApiKeyRepository(s)
        row = repo.create(tenant.id, hash_api_key(key), display_prefix(key))
        assert repo.find_active_by_hash(hash_api_key(key)).id == row.id
        assert repo.find_active_by_hash(hash_api_key(key + "x")) is None
        assert repo.revoke(tenant.id, row.id)
        assert repo.find_active_by_hash(hash_api_key(key)) is None


def test_tenant_lock_serialises_count_then_insert(session_factory: Any, tenant: Any) -> None:
    """Four submits race for the last concurrent-job slot: under the tenant lock one wins."""
    max_active = 1
    barrier = threading.Barrier(4)
    admitted: list[str] = []
    errors: list[BaseException] = []

    def submit(name: str) -> None:
        try:
            barrier.wait(timeout=10)
            with session_factory.begin() as s:
                TenantRepository(s).lock(tenant.id)
                jobs = JobRepository(s)
                if jobs.count_active_for_tenant(tenant.id) < max_active:
                    jobs.create(tenant_id=tenant.id, spec=SPEC, queue="cpu", labels={"who": name})
                    admitted.append(name)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=submit, args=(f"s{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert len(admitted) == 1
    with session_factory() as s:
        assert JobRepository(s).count_active_for_tenant(tenant.id) == 1


# ---- concurrent-jobs slots and idempotency claims ---------------------------------------


def _active(factory: Any, tenant_id: str) -> int:
    from store.models import Tenant

    with factory.begin() as s:
        return s.get(Tenant, tenant_id).active_jobs


def test_concurrent_slot_takers_never_exceed_the_limit(session_factory: Any, tenant: Any) -> None:
    from store.repositories import TenantRepository

    barrier = threading.Barrier(6)
    took: list[bool] = []
    errors: list[BaseException] = []

    def take() -> None:
        try:
            barrier.wait(timeout=10)
            with session_factory.begin() as s:
                took.append(TenantRepository(s).take_job_slot(tenant.id, 2))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=take) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert sorted(took) == [False] * 4 + [True] * 2
    assert _active(session_factory, tenant.id) == 2


def test_transitions_out_of_queued_or_running_give_the_slot_back_once(session_factory: Any, tenant: Any) -> None:
    from store.repositories import TenantRepository

    ids = [new_job(session_factory, tenant.id) for _ in range(3)]
    with session_factory.begin() as s:
        for _ in ids:
            assert TenantRepository(s).take_job_slot(tenant.id, 10)
    with session_factory.begin() as s:
        repo = JobRepository(s)
        repo.request_cancel(ids[0])  # queued -> cancelled
        repo.request_cancel(ids[0])  # again: no change, no second release
        repo.fail_queued(ids[1], {"type": "x"})
        repo.claim(ids[2], "w1", lease_seconds=30)
        repo.heartbeat(ids[2], "w1", lease_seconds=30)  # running -> running: keeps it
    assert _active(session_factory, tenant.id) == 1
    with session_factory.begin() as s:
        JobRepository(s).finish(ids[2], "succeeded", worker_id="w1")
    assert _active(session_factory, tenant.id) == 0
    with session_factory.begin() as s:
        TenantRepository(s).release_job_slot(tenant.id)  # never below zero
    assert _active(session_factory, tenant.id) == 0
    assert load(session_factory, ids[0]).error["type"].endswith("/cancelled")


def test_recount_resets_the_counter_to_queued_and_running_jobs(session_factory: Any, tenant: Any) -> None:
    from store.repositories import TenantRepository

    new_job(session_factory, tenant.id)
    running = new_job(session_factory, tenant.id)
    with session_factory.begin() as s:
        JobRepository(s).claim(running, "w1", lease_seconds=30)
        TenantRepository(s).take_job_slot(tenant.id, 100)  # one too many: now 1, truth 2
    with session_factory.begin() as s:
        assert TenantRepository(s).recount_active_jobs(tenant.id) == 2


def test_idempotency_claim_is_won_once_completed_once_and_released_by_its_owner(
        session_factory: Any, tenant: Any) -> None:
    from store.repositories import IdempotencyRepository

    with session_factory.begin() as s:
        keys = IdempotencyRepository(s)
        assert keys.claim(tenant.id, "k", "fp", "owner")
        assert not keys.claim(tenant.id, "k", "fp", "other")
        assert not keys.release(tenant.id, "k", "other")  # not its claim
        # A fresh claim is not stale: nobody takes it over.
        assert not keys.take_over_stale(tenant.id, "k", "fp", "other", stale_before=utcnow() - timedelta(minutes=1))
    job_id = new_job(session_factory, tenant.id)
    with session_factory.begin() as s:
        keys = IdempotencyRepository(s)
        assert not keys.complete(tenant.id, "k", "other", job_id)
        assert keys.complete(tenant.id, "k", "owner", job_id)
        assert not keys.release(tenant.id, "k", "owner")  # bound to a job: kept
        assert keys.get(tenant.id, "k").job_id == job_id
    with session_factory.begin() as s:
        keys = IdempotencyRepository(s)
        assert keys.claim(tenant.id, "stale", "fp", "dead", now=utcnow() - timedelta(minutes=10))
        assert keys.take_over_stale(tenant.id, "stale", "fp2", "alive", stale_before=utcnow() - timedelta(minutes=5))
        assert keys.get(tenant.id, "stale").claim_token == "alive"
