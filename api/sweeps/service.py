"""Sweeps: many normal jobs from one base body, created together, followed and compared together.

Creation (``create_sweep``), in the order of a job submission (``api.jobs.service``):

1. The points: ``axes`` as a grid (``itertools.product``, first axis slowest) or ``points``
   as given; each is a set of dotted spec paths -> values applied to the base body
   (missing intermediate objects are created). More than ``quotas.max_sweep_points``
   points is 403 ``quota-exceeded``; a point whose body is not a valid job is 422 with
   the point's index and the validation errors; every point's steps are checked against
   the steps quota.
2. ``Idempotency-Key``: a sweep created with this key and the same body is replayed
   (200), another body is 409 ``idempotency-key-reused``. Two identical requests racing
   both do the dry runs; the unique constraint lets one insert, the other replays it.
3. The base's data is resolved once (inline, dataset id or catalog example data) and
   every point gets its own dry run (cached per spec, so points that differ only in
   steps or seed trace once).
4. One transaction: the dataset, one concurrent-jobs slot per point (a sweep is refused
   with 429 unless all its points fit under ``quotas.max_concurrent_jobs``), the sweep,
   its member jobs (labels: the base's, the sweep's, ``vihub/sweep`` and
   ``vihub/sweep-point``) and ``sweep_members``. After the commit each job is published.

Cancel requests a cancel of every unfinished member; delete cancels and soft-deletes
every member, then the sweep.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.compare.service import compare_jobs
from api.datasets import service as datasets_service
from api.runtime import Runtime, TenantRef
from api.errors import IdempotencyKeyReused, NotFound, QuotaExceeded, ResultsNotReady, Unprocessable
from api.ids import is_resource_id
from api.jobs import service as jobs_service
from api.jobs.schemas import MAX_LABELS, JobCreate, Progress
from api.sweeps.schemas import POINT_LABEL, SWEEP_LABEL, SWEEP_LABELS, SweepCreate, SweepOut, SweepSummary
from api.warm_start.checks import check_init_from
from api.webhooks.service import check_webhook_url
from common.arrays import EncodedArrays
from common.settings import Settings
from store.job_states import FINAL_STATES, JobState
from store.models import Job, new_id
from store.repositories.jobs import JobRepository
from store.sweeps import Sweep, SweepRepository

SPEC_ROOTS = ("model", "guide", "inference", "outputs")

# Job states as stored (strings), for membership tests on rows.
_FINAL = frozenset(state.value for state in FINAL_STATES)


class SweepNotFound(NotFound):
    slug, title = "sweep-not-found", "Sweep not found"


def max_points(settings: Settings) -> int:
    return int(settings.quotas.max_sweep_points)


# ---------------------------------------------------------------------------------------
# Points


def expand_points(request: SweepCreate) -> list[dict[str, Any]]:
    if request.points is not None:
        return [dict(point) for point in request.points]
    names = list(request.axes or {})
    return [dict(zip(names, values)) for values in itertools.product(*(request.axes[n] for n in names))]


def apply_point(base: dict[str, Any], point: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(base)
    for path, value in point.items():
        keys = path.split(".")
        if keys[0] not in SPEC_ROOTS:
            raise Unprocessable(f"Sweep axis {path!r} is not a spec field; axes start with one of {list(SPEC_ROOTS)}.",
                                errors=[{"pointer": "/axes", "detail": path}])
        target = body
        for key in keys[:-1]:
            child = target.get(key)
            if not isinstance(child, dict):
                child = target[key] = {}
            target = child
        target[keys[-1]] = copy.deepcopy(value)
    return body


def point_count(request: SweepCreate) -> int:
    if request.points is not None:
        return len(request.points)
    return math.prod(len(values) for values in (request.axes or {}).values())


def member_bodies(request: SweepCreate, settings: Settings) -> tuple[list[dict[str, Any]], list[JobCreate]]:
    count, limit = point_count(request), max_points(settings)
    if count > limit:  # checked before the grid is expanded: 3 axes of 1000 values are 1e9 points
        raise QuotaExceeded(f"The sweep has {count} points; this account may run at most {limit} per sweep.",
                            pointer="/axes" if request.axes is not None else "/points", limit=limit)
    _check_paths(request)
    base = request.base.model_dump(mode="json", exclude_unset=True)
    _check_written_bytes(request, base, count)
    points = expand_points(request)
    bodies = []
    for index, point in enumerate(points):
        body = apply_point(base, point)
        body["labels"] = {**(body.get("labels") or {}), **request.labels}
        _check_label_room(body["labels"])
        try:
            job = JobCreate.model_validate(body)
        except ValidationError as exc:
            raise Unprocessable(
                f"Sweep point {index} ({json.dumps(point, sort_keys=True)[:300]}) is not a valid job: "
                f"{exc.errors()[0].get('msg')}",
                errors=[{"pointer": f"/points/{index}/" + "/".join(str(p) for p in e.get("loc", ())),
                         "detail": e.get("msg")} for e in exc.errors()], point=index) from exc
        jobs_service.check_steps(settings, job)
        jobs_service.check_spec_bytes(settings, job)
        bodies.append(job)
    return points, bodies


# Every member job stores the base spec with its point applied, and the point itself: a
# grid multiplies what the request holds (one 4 MB value on an axis beside a 6-value axis
# wrote 6 jobs of 4 MB and rendered a 44 MB sweep on every read). Bounded before the grid
# is expanded (the expansion copies the base once per point in the API process).
MAX_SWEEP_BYTES = 16 * 1024 * 1024


def _json_bytes(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))


def _check_written_bytes(request: SweepCreate, base: dict[str, Any], count: int) -> None:
    spec_bytes = _json_bytes({k: v for k, v in base.items() if k != "data"})
    if request.points is not None:
        point_bytes = sum(_json_bytes(point) for point in request.points)
    else:
        axes = request.axes or {}
        # Each value of an axis appears in count / len(axis) points of the grid.
        point_bytes = sum(count // len(values) * sum(_json_bytes(v) for v in values) for values in axes.values())
    total = count * spec_bytes + 2 * point_bytes
    if total > MAX_SWEEP_BYTES:
        raise QuotaExceeded(
            f"The sweep's {count} member jobs would store about {total} bytes of specs and points; a sweep may "
            f"store at most {MAX_SWEEP_BYTES}. Vary smaller values, or submit fewer points.",
            pointer="/axes" if request.axes is not None else "/points", limit=MAX_SWEEP_BYTES, bytes=total)


def _check_paths(request: SweepCreate) -> None:
    """A path inside another path of the same point (``guide`` and ``guide.options.x``)
    is refused: one of the two values would never reach the job, yet be stored and shown
    as the point."""
    key_sets = [list(request.axes)] if request.axes is not None else [list(p) for p in request.points or []]
    for index, keys in enumerate(key_sets):
        # Path characters other than "." sort after it, so a path's extensions follow it
        # directly in sorted order: comparing neighbours finds every overlap.
        ordered = sorted(keys)
        for key, other in zip(ordered, ordered[1:]):
            if other.startswith(key + "."):
                where = "/axes" if request.axes is not None else f"/points/{index}"
                raise Unprocessable(
                    f"Sweep paths {key!r} and {other!r} overlap: {key!r} replaces the object {other!r} is in. "
                    "Vary one of them.", errors=[{"pointer": where, "detail": f"{key} / {other}"}])


def _check_label_room(labels: dict[str, Any]) -> None:
    """Members also get ``vihub/sweep`` and ``vihub/sweep-point``: the base's and the
    sweep's labels must leave room for them under the labels limit."""
    room = MAX_LABELS - len(SWEEP_LABELS)
    own = [key for key in labels if key not in SWEEP_LABELS]
    if len(own) > room:
        raise Unprocessable(
            f"The base's and the sweep's labels are {len(own)}; a sweep member may carry at most {room} of its "
            f"own ({MAX_LABELS} minus {list(SWEEP_LABELS)}).",
            errors=[{"pointer": "/labels", "detail": f"{len(own)} labels, at most {room}"}], limit=room)


def fingerprint(request: SweepCreate) -> str:
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# ---------------------------------------------------------------------------------------
# Creation


async def create_sweep(runtime: Runtime, tenant: TenantRef, request: SweepCreate,
                       idempotency_key: str | None) -> tuple[SweepOut, bool]:
    settings = runtime.settings
    points, bodies = member_bodies(request, settings)
    digest = fingerprint(request)
    if idempotency_key:
        replay = await run_in_threadpool(_replay, runtime, tenant, idempotency_key, digest)
        if replay is not None:
            return replay, False
    if request.base.webhook is not None:
        # The same URL policy as a job submit (points cannot change the webhook); may
        # resolve the host name: off the event loop.
        await run_in_threadpool(check_webhook_url, settings, str(request.base.webhook.url))
    for body in bodies:
        if body.inference.init_from is not None:
            await run_in_threadpool(check_init_from, runtime, tenant, body)
    fields, dataset_id = await run_in_threadpool(jobs_service.resolve_data, runtime, tenant, request.base)
    await run_in_threadpool(_precheck_slots, runtime, tenant, len(bodies))
    for body in bodies:
        await jobs_service.run_dry_run(runtime, body, fields, tenant)
    encoded = None
    if dataset_id is None:
        encoded = await run_in_threadpool(datasets_service.encode_fields, settings, fields)
    written = await run_in_threadpool(_write, runtime, tenant, request, points, bodies, encoded, dataset_id,
                                      idempotency_key, digest)
    if written is None:  # a racing request with the same key won
        replay = await run_in_threadpool(_replay, runtime, tenant, idempotency_key or "", digest)
        if replay is None:
            raise jobs_service.request_in_progress(idempotency_key or "")
        return replay, False
    out, queued = written
    for job_id, queue in queued:
        await run_in_threadpool(jobs_service.publish_job, runtime, job_id, queue)
    return out, True


def _replay(runtime: Runtime, tenant: TenantRef, key: str, digest: str) -> SweepOut | None:
    with runtime.sessionmaker() as session:
        sweep = SweepRepository(session).get_by_idempotency_key(tenant.id, key)
        if sweep is None:
            return None
        if sweep.request_fingerprint != digest:
            raise IdempotencyKeyReused(f"Idempotency-Key {key!r} was first used with a different sweep body "
                                       f"(sweep {sweep.id}); use a new key for a new sweep.", sweep_id=sweep.id)
        return sweep_out(session, sweep)


def _precheck_slots(runtime: Runtime, tenant: TenantRef, needed: int) -> None:
    limit = runtime.settings.quotas.max_concurrent_jobs
    with runtime.sessionmaker() as session:
        active = JobRepository(session).count_active_for_tenant(tenant.id)
    if active + needed > limit:
        raise _no_slots(limit, active, needed)


def _no_slots(limit: int, active: int | None, needed: int) -> Exception:
    busy = f"{active} of your jobs are" if active is not None else "Too many of your jobs are"
    return jobs_service.TooManyConcurrentJobs(
        f"The sweep needs {needed} job slots; {busy} queued or running and the limit is {limit}. "
        "Retry when jobs have finished, or sweep fewer points.",
        headers={"Retry-After": str(jobs_service.TOO_MANY_RETRY_AFTER_S)}, limit=limit, needed=needed)


def _write(runtime: Runtime, tenant: TenantRef, request: SweepCreate, points: list[dict[str, Any]],
           bodies: list[JobCreate], encoded: EncodedArrays | None, dataset_id: str | None, key: str | None,
           digest: str) -> tuple[SweepOut, list[tuple[str, str]]] | None:
    """One transaction; lock order as in a job submit: dataset, tenant row, jobs, sweep rows."""
    settings = runtime.settings
    limit = settings.quotas.max_concurrent_jobs
    with runtime.sessionmaker() as session:
        try:
            if dataset_id is None:
                assert encoded is not None  # inline data is encoded before the write
                dataset_id = jobs_service.store_inline_data(session, tenant, encoded)
            if not jobs_service.take_job_slots(session, tenant, limit, len(bodies)):
                raise _no_slots(limit, None, len(bodies))
            sweep_id = new_id()
            sweeps = SweepRepository(session)
            sweeps.create(id=sweep_id, tenant_id=tenant.id, name=request.name,
                          base=_base_record(request, dataset_id), axes=_axes_record(request),
                          labels=dict(request.labels), dataset_id=dataset_id, idempotency_key=key,
                          request_fingerprint=digest if key else None)
            jobs = JobRepository(session)
            queued = []
            for position, (point, body) in enumerate(zip(points, bodies)):
                labels = {**body.labels, SWEEP_LABEL: sweep_id, POINT_LABEL: str(position)}
                job = jobs.create(
                    tenant_id=tenant.id, spec=body.spec().model_dump(mode="json"), dataset_id=dataset_id,
                    labels=labels, webhook=body.webhook.model_dump(mode="json") if body.webhook else None,
                    queue=jobs_service.queue_for(body), max_attempts=settings.worker.max_attempts)
                sweeps.add_member(sweep_id, position, job.id, point)
                queued.append((job.id, job.queue))
            session.commit()
        except IntegrityError:
            session.rollback()
            if not key:
                raise
            return None
        except BaseException:
            session.rollback()
            raise
        sweep = SweepRepository(session).get_for_tenant(tenant.id, sweep_id)
        return sweep_out(session, sweep), queued


def _base_record(request: SweepCreate, dataset_id: str) -> dict[str, Any]:
    base = request.base.model_dump(mode="json", exclude_unset=True)
    base["data"] = {"dataset_id": dataset_id}
    return base


def _axes_record(request: SweepCreate) -> dict[str, Any]:
    return {"axes": request.axes} if request.axes is not None else {"points": request.points}


# ---------------------------------------------------------------------------------------
# Reads and changes


def get_sweep(session: Session, tenant: TenantRef, sweep_id: str) -> Sweep:
    sweep = SweepRepository(session).get_for_tenant(tenant.id, sweep_id) if is_resource_id(sweep_id) else None
    if sweep is None:
        raise SweepNotFound(f"No sweep {sweep_id!r} in this account.")
    return sweep


def sweep_out(session: Session, sweep: Sweep) -> SweepOut:
    members = SweepRepository(session).members(sweep.id)
    rendered = [{"position": member.position, "point": member.point, "job": jobs_service.job_out(job)}
                for member, job in members]
    summary = _summary(sweep, [(out["job"].state, out["job"].progress) for out in rendered])
    return SweepOut.model_validate({**summary, "axes": sweep.axes, "base": sweep.base, "members": rendered})


def list_sweeps(session: Session, tenant: TenantRef, page_size: int) -> list[SweepSummary]:
    """The newest sweeps as summaries: one query for the sweeps, one for their members'
    states and progress (never the members' specs: a list of 100 sweeps of 1000 members
    each rendered in full was gigabytes)."""
    repo = SweepRepository(session)
    sweeps = repo.list_for_tenant(tenant.id, page_size)
    by_sweep: dict[str, list[tuple[str, Progress]]] = {sweep.id: [] for sweep in sweeps}
    for sweep_id, state, progress, spec_steps in repo.member_states(list(by_sweep)):
        by_sweep[sweep_id].append((state, jobs_service.job_progress(progress, spec_steps)))
    return [SweepSummary.model_validate(_summary(sweep, by_sweep[sweep.id])) for sweep in sweeps]


def _summary(sweep: Sweep, members: list[tuple[str, Progress]]) -> dict[str, Any]:
    """The summary fields of a sweep from its members' ``(state, progress)``."""
    counts = {state.value: 0 for state in JobState}
    done_steps = total_steps = 0
    for state, progress in members:
        counts[state] = counts.get(state, 0) + 1
        total_steps += max(progress.steps, 1)
        done_steps += max(progress.steps, 1) if state in _FINAL else min(progress.step, progress.steps)
    # A sweep whose members were all deleted one by one is done (nothing left to wait for).
    done = all(state in _FINAL for state, _ in members)
    if done and members and counts[JobState.CANCELLED.value] == len(members):
        overall = "cancelled"
    elif done:
        overall = "finished"
    elif counts[JobState.RUNNING.value] or counts[JobState.SUCCEEDED.value] or counts[JobState.FAILED.value]:
        overall = "running"
    else:
        overall = "queued"
    base = f"/v1/sweeps/{sweep.id}"
    return {
        "id": sweep.id, "name": sweep.name, "state": overall, "done": done, "counts": counts,
        "progress": done_steps / total_steps if total_steps else 0.0, "member_count": len(members),
        "created_at": sweep.created_at, "labels": sweep.labels or {},
        "links": {"self": base, "comparison": f"{base}/comparison", "cancel": f"{base}/cancel"},
    }


def _cancel_members(session: Session, sweep: Sweep) -> list[Job]:
    """Ask every unfinished member to cancel; returns all members."""
    jobs = JobRepository(session)
    members = [job for _, job in SweepRepository(session).members(sweep.id)]
    for job in members:
        if job.state not in _FINAL:
            jobs.request_cancel(job.id)
    return members


def cancel_sweep(session: Session, tenant: TenantRef, sweep_id: str) -> SweepOut:
    sweep = get_sweep(session, tenant, sweep_id)
    _cancel_members(session, sweep)
    SweepRepository(session).mark_cancel_requested(sweep.id)
    session.flush()
    return sweep_out(session, sweep)


def delete_sweep(session: Session, tenant: TenantRef, sweep_id: str) -> None:
    sweep = get_sweep(session, tenant, sweep_id)
    jobs = JobRepository(session)
    for job in _cancel_members(session, sweep):
        jobs.soft_delete(tenant.id, job.id)
    SweepRepository(session).soft_delete(tenant.id, sweep.id)


def sweep_comparison(session: Session, tenant: TenantRef, sweep_id: str, *, sort: str, order: str) -> dict[str, Any]:
    sweep = get_sweep(session, tenant, sweep_id)
    members = SweepRepository(session).members(sweep.id)
    succeeded = [(m, job) for m, job in members if job.state == JobState.SUCCEEDED.value]
    notes = []
    if len(succeeded) < len(members):
        notes.append(f"{len(members) - len(succeeded)} of {len(members)} members have not succeeded (yet) and are "
                     "not in the table")
    if not succeeded:
        raise ResultsNotReady(f"No member of sweep {sweep.id} has succeeded yet.", state="running")
    return compare_jobs(session, tenant, [job.id for _, job in succeeded], sort=sort, order=order,
                        points={job.id: m.point for m, job in succeeded}, notes=notes)
