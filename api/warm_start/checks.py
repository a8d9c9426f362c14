"""The ``inference.init_from`` check at submission.

A job body with ``inference.init_from: {"job": id}`` is refused with 422
``invalid-warm-start`` (pointer ``/inference/init_from/job``) unless that job is this
tenant's and has succeeded. Whether its params fit the new model and guide is checked by
the worker (the engine names every mismatched param; the job then fails with
``spec-error``). Its own module because job submission calls it and ``continue`` (in
``api.warm_start.service``) calls job submission: one-way imports, no cycle.
"""

from __future__ import annotations

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
    if state is None:
        raise InvalidWarmStart(f"inference.init_from: no job {init_from.job!r} in this account.",
                               pointer="/inference/init_from/job")
    if state != JobState.SUCCEEDED.value:
        raise InvalidWarmStart(f"inference.init_from: job {init_from.job} is {state}; only a succeeded job "
                               "can be a warm start.", pointer="/inference/init_from/job", state=state)
