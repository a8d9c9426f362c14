"""``POST /v1/jobs/{id}/continue``: run a finished job further (a new job, warm-started)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import CurrentTenant, RuntimeDep
from api.errors import problem_responses
from api.jobs.router import IdempotencyKey
from api.jobs.schemas import JobOut
from api.warm_start import service
from api.warm_start.schemas import ContinueRequest

router = APIRouter(prefix="/jobs/{job_id}", tags=["jobs"])


@router.post(
    "/continue",
    status_code=202,
    response_model=JobOut,
    summary="Continue a succeeded job for more steps (a new job resuming its params and optimizer state)",
    responses={200: {"model": JobOut, "description": "Idempotent replay"},
               **problem_responses(401, 403, 404, 409, 422, 429, 500, 503)},
)
async def continue_job(job_id: str, body: ContinueRequest, runtime: RuntimeDep, tenant: CurrentTenant,
                       idempotency_key: IdempotencyKey = None) -> JSONResponse:
    out, created = await service.continue_job(runtime, tenant, job_id, body, idempotency_key)
    return JSONResponse(out.model_dump(mode="json"), status_code=202 if created else 200,
                        headers={"Location": out.links.self})
