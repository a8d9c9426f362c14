"""``POST /v1/validate``: compile, bind and trace a job once; report without running it."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CurrentTenant, RuntimeDep
from api.errors import problem_responses
from api.jobs.schemas import JobCreate
from api.validate import service
from api.validate.schemas import ValidateOut

router = APIRouter(prefix="/validate", tags=["validate"])


@router.post("", response_model=ValidateOut, summary="Validate a job body without running it",
             responses=problem_responses(400, 401, 403, 404, 413, 422, 429, 500, 503))
def validate(body: JobCreate, runtime: RuntimeDep, tenant: CurrentTenant) -> ValidateOut:
    return service.validate(runtime, tenant, body)
