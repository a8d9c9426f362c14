"""``/healthz`` (process alive), ``/readyz`` (database and broker reachable), ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from api.deps import RuntimeDep
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


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
                       **problem_responses(500)})
def metrics(runtime: RuntimeDep) -> Response:
    body, media_type = service.metrics_exposition(runtime)
    return Response(body, media_type=media_type)
