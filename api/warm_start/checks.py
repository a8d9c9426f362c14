"""The ``inference.init_from`` check at submission.

A job body with ``inference.init_from: {"job": id}`` is refused with 422
``invalid-warm-start`` (pointer ``/inference/init_from/job``) unless that job is this
tenant's and has succeeded; with ``optimizer: true`` (resume the final checkpoint) also
unless the body uses the source's optimizer and more steps than it did. Whether its params fit the new model and guide is checked by
the worker (the engine names every mismatched param; the job then fails with
``spec-error``). Its own module because job submission calls it and ``continue`` (in
``api.warm_start.service``) calls job submission: one-way imports, no cycle.
"""

from __future__ import annotations

from typing import Any

from api.errors import Unprocessable
from api.ids import is_resource_id
from api.jobs.schemas import JobCreate
from api.runtime import Runtime, TenantRef
from store.job_states import JobState
from store.repositories.jobs import JobRepository


class InvalidWarmStart(Unprocessable):
    slug, title = "invalid-warm-start", "The warm-start job cannot be used"


def check_init_from(runtime: Runtime, tenant: TenantRef, body: JobCreate) -> None:
    init_from = body.inference.init_from
    if init_from is None:
        return
    with runtime.sessionmaker() as session:
        source = (JobRepository(session).get_for_tenant(tenant.id, init_from.job)
                  if is_resource_id(init_from.job) else None)
        state = None if source is None else source.state
        source_spec = {} if source is None else dict(source.spec or {})
        source_progress = {} if source is None else dict(source.progress or {})
    if state is None:
        raise InvalidWarmStart(f"inference.init_from: no job {init_from.job!r} in this account.",
                               pointer="/inference/init_from/job")
    if state != JobState.SUCCEEDED.value:
        raise InvalidWarmStart(f"inference.init_from: job {init_from.job} is {state}; only a succeeded job "
                               "can be a warm start.", pointer="/inference/init_from/job", state=state)
    if init_from.optimizer:
        _check_resumable(body, init_from.job, source_spec, source_progress)


def _check_resumable(body: JobCreate, source_id: str, source_spec: dict[str, Any],
                     source_progress: dict[str, Any]) -> None:
    """``optimizer: true`` resumes the source's final checkpoint: its optimizer state only
    loads into the same optimizer (another one failed the job with a bare ``KeyError``),
    and it resumes at the source's last step (a job of no more steps "succeeded" without
    running one, its results the source's)."""
    inference = source_spec.get("inference") or {}
    source_optimizer = (inference.get("optimizer") or {}).get("name") or "Adam"
    if body.inference.optimizer.name != source_optimizer:
        raise InvalidWarmStart(
            f"inference.init_from.optimizer: job {source_id} was fitted with {source_optimizer}; its optimizer "
            f"state cannot resume {body.inference.optimizer.name}. Use the same optimizer, or optimizer: false "
            "(params only, a fresh optimizer).", pointer="/inference/optimizer/name")
    done = int(source_progress.get("step") or inference.get("steps") or 0)
    if body.inference.steps <= done:
        raise InvalidWarmStart(
            f"inference.init_from.optimizer: job {source_id} stopped at step {done}, where this job resumes; "
            f"inference.steps ({body.inference.steps}) must be larger.", pointer="/inference/steps", limit=done)
