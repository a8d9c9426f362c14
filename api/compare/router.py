"""``GET /v1/compare?jobs=...`` (the comparison table) and ``GET /v1/jobs/{id}/ppc``."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from api.compare import service
from api.compare.ppc import DEFAULT_QUANTILES
from api.compare.schemas import Comparison, PpcOut, SortKey
from api.deps import CurrentTenant, SessionDep
from api.errors import Unprocessable, problem_responses

router = APIRouter(tags=["sweeps"])

JobsQuery = Annotated[list[str], Query(description="Job ids, comma-separated or repeated", max_length=64)]
SortQuery = Annotated[SortKey, Query(description="Column to sort the rows by")]
OrderQuery = Annotated[Literal["asc", "desc"], Query()]


@router.get("/compare", response_model=Comparison, summary="Comparison table of succeeded jobs on the same data",
            responses=problem_responses(401, 404, 409, 422, 500))
def compare(session: SessionDep, tenant: CurrentTenant, jobs: JobsQuery, sort: SortQuery = "elbo",
            order: OrderQuery = "desc") -> Comparison:
    table = service.compare_jobs(session, tenant, service.parse_job_ids(jobs), sort=sort, order=order)
    return Comparison.model_validate(table)


@router.get("/jobs/{job_id}/ppc", response_model=PpcOut,
            summary="Posterior predictive checks: observed vs replicated test statistics, Bayesian p-values",
            responses=problem_responses(401, 404, 409, 422, 500))
def job_ppc(job_id: str, session: SessionDep, tenant: CurrentTenant,
            quantiles: Annotated[str | None, Query(max_length=200, description="e.g. 0.05,0.5,0.95")] = None,
            ) -> PpcOut:
    return PpcOut.model_validate(service.job_ppc(session, tenant, job_id, _quantiles(quantiles)))


def _quantiles(text: str | None) -> tuple[float, ...]:
    if not text:
        return DEFAULT_QUANTILES
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = ()
    if not values or len(values) > 20 or not all(0.0 <= q <= 1.0 for q in values):
        raise Unprocessable("quantiles are 1-20 comma-separated numbers in [0, 1].",
                            errors=[{"parameter": "quantiles", "detail": text}])
    return values
