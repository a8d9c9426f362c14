"""``/v1/sweeps``: create (``Idempotency-Key``), list, get (progress), comparison, cancel, delete."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from api.compare.router import OrderQuery, SortQuery
from api.compare.schemas import Comparison
from api.deps import CurrentTenant, KnownQueryOnly, PageSize, RuntimeDep, SessionDep
from api.errors import problem_responses
from api.jobs.router import IdempotencyKey
from api.sweeps import service
from api.sweeps.schemas import SweepCreate, SweepList, SweepOut

router = APIRouter(prefix="/sweeps", tags=["sweeps"])
DEFAULT_PAGE_SIZE = 20


@router.post("", status_code=202, response_model=SweepOut,
             summary="Create a sweep: one job per point of a grid or list over spec fields",
             responses={200: {"model": SweepOut, "description": "Idempotent replay"},
                        **problem_responses(400, 401, 403, 404, 409, 413, 422, 429, 500, 503)})
async def create_sweep(body: SweepCreate, runtime: RuntimeDep, tenant: CurrentTenant,
                       idempotency_key: IdempotencyKey = None) -> JSONResponse:
    out, created = await service.create_sweep(runtime, tenant, body, idempotency_key)
    return JSONResponse(out.model_dump(mode="json"), status_code=202 if created else 200,
                        headers={"Location": out.links.self})


@router.get("", response_model=SweepList,
            summary="This account's sweeps, newest first, as summaries (GET one sweep for its members)",
            responses=problem_responses(400, 401, 422, 500), dependencies=[KnownQueryOnly])
def list_sweeps(session: SessionDep, tenant: CurrentTenant, size: PageSize) -> SweepList:
    return SweepList(items=service.list_sweeps(session, tenant, size or DEFAULT_PAGE_SIZE))


@router.get("/{sweep_id}", response_model=SweepOut, summary="A sweep: its members and their progress",
            responses=problem_responses(401, 404, 422, 500))
def get_sweep(sweep_id: str, session: SessionDep, tenant: CurrentTenant) -> SweepOut:
    return service.sweep_out(session, service.get_sweep(session, tenant, sweep_id))


@router.get("/{sweep_id}/comparison", response_model=Comparison,
            summary="The comparison table of the sweep's succeeded members",
            responses=problem_responses(401, 404, 409, 422, 500))
def sweep_comparison(sweep_id: str, session: SessionDep, tenant: CurrentTenant, sort: SortQuery = "elbo",
                     order: OrderQuery = "desc") -> Comparison:
    return Comparison.model_validate(service.sweep_comparison(session, tenant, sweep_id, sort=sort, order=order))


@router.post("/{sweep_id}/cancel", status_code=202, response_model=SweepOut,
             summary="Cancel every unfinished member", responses=problem_responses(401, 404, 422, 500))
def cancel_sweep(sweep_id: str, session: SessionDep, tenant: CurrentTenant) -> SweepOut:
    return service.cancel_sweep(session, tenant, sweep_id)


@router.delete("/{sweep_id}", status_code=204, summary="Cancel and delete the sweep and its member jobs",
               responses=problem_responses(401, 404, 422, 500))
def delete_sweep(sweep_id: str, session: SessionDep, tenant: CurrentTenant) -> Response:
    service.delete_sweep(session, tenant, sweep_id)
    return Response(status_code=204)
