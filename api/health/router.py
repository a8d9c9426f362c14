"""``/healthz`` (process alive), ``/readyz`` (database and broker reachable), ``/metrics``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Security
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials

from api.deps import RuntimeDep, _api_key_header, _bearer, get_current_tenant
from api.errors import problem_responses
from api.health import service
from api.health.schemas import Liveness, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Liveness, summary="The process is alive",
            responses=problem_responses(500))
def healthz(request: Request) -> Liveness:
    return Liveness(version=request.app.version)


@router.get("/readyz", response_model=Readiness, summary="Database and broker are reachable",
            responses={503: {"model": Readiness, "description": "Not ready"}, **problem_responses(500)})
def readyz(runtime: RuntimeDep) -> JSONResponse:
    report = service.readiness(runtime)
    return JSONResponse(report.model_dump(), status_code=200 if report.status == "ready" else 503)


async def metrics_access(
    runtime: RuntimeDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    api_key: Annotated[str | None, Security(_api_key_header)],
) -> None:
    """The same API-key check as every /v1 route, unless ``api.metrics_public`` is set."""
    if getattr(getattr(runtime.settings, "api", None), "metrics_public", False):
        return
    await get_current_tenant(runtime, bearer, api_key)


@router.get("/metrics", summary="Prometheus metrics (an API key when auth is required)", response_class=Response,
            dependencies=[Depends(metrics_access)],
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
                       **problem_responses(401, 500)})
def metrics(runtime: RuntimeDep) -> Response:
    body, media_type = service.metrics_exposition(runtime)
    return Response(body, media_type=media_type)
