"""Result downloads of a job: ``/params``, ``/loss``, ``/samples``, ``/log-probs``,
``/diagnostics``, ``/summary`` (JSON or binary, see ``api.formats``) and ``/predict``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session

from api.deps import CurrentTenant, RuntimeDep, SessionDep
from api.errors import NotAcceptable, problem_responses
from api.formats import (
    MEDIA_TYPES,
    RESULT_FORMATS,
    ResultFormat,
    array_response,
    binary_response,
    negotiate,
)
from api.jobs import predict as predict_service
from api.jobs import results
from api.jobs.schemas import PredictOut, PredictRequest
from api.jobs.service import get_job
from inference.results import formats
from store.models import ArtifactKind, Job

router = APIRouter(prefix="/jobs/{job_id}", tags=["results"])

FormatQuery = Annotated[ResultFormat | None, Query(alias="format", description="Wins over Accept")]
AcceptHeader = Annotated[str | None, Header(alias="Accept", include_in_schema=False)]

_ERRORS = problem_responses(401, 404, 406, 409, 422, 500)


def _binary(resource: str) -> dict[int | str, dict[str, Any]]:
    """The 200 response of ``resource``: JSON and the binary media types it offers."""
    content: dict[str, Any] = {"application/json": {}}
    content.update({MEDIA_TYPES[f]: {"schema": {"type": "string", "format": "binary"}}
                    for f in RESULT_FORMATS[resource] if f is not ResultFormat.json})
    return {200: {"content": content, "description": "JSON, or a binary form by ?format= / Accept"}}


def _stored_download(session: Session, job: Job, fmt: ResultFormat, kinds: dict[ResultFormat, str],
                     filename: str) -> Response | None:
    """The file the worker wrote for this format, when it wrote one (else convert on request)."""
    kind = kinds.get(fmt)
    blob = results.stored_blob(session, job, kind) if kind is not None else None
    return binary_response(blob, fmt, filename=filename) if blob is not None else None


@router.get("/params", summary="Fitted guide (phi) and model (theta) parameters",
            responses={**_binary("params"), **_ERRORS})
def get_params(job_id: str, session: SessionDep, tenant: CurrentTenant, format: FormatQuery = None,
               accept: AcceptHeader = None) -> Response:
    fmt = negotiate(format, accept, RESULT_FORMATS["params"])
    job = get_job(session, tenant, job_id)
    stored = _stored_download(session, job, fmt, {ResultFormat.safetensors: ArtifactKind.PARAMS_SAFETENSORS},
                              f"{job.id}-params")
    if stored is not None:
        return stored
    if fmt is ResultFormat.pt:
        # Pyro's own param-store file: pyro.get_param_store().load(path)
        blob = results.stored_blob(session, job, ArtifactKind.PARAM_STORE_PT)
        if blob is None:
            raise NotAcceptable("This job has no Pyro param-store file; use format=safetensors.")
        return binary_response(blob, fmt, filename=f"{job.id}-param-store")
    body = formats.params_section(results.load_result(session, job))
    if fmt is ResultFormat.json:
        return JSONResponse({"job_id": job.id, **body})
    if fmt is ResultFormat.safetensors:  # the stored artifact's form, when it is missing
        return binary_response(formats.params_safetensors(body["guide_params"], body["model_params"]), fmt,
                               filename=f"{job.id}-params")
    return array_response(formats.flatten_arrays(body), fmt, filename=f"{job.id}-params")


@router.get("/loss", summary="Loss per step (downsampled on request) with ELBO terms and gradient norms",
            responses={**_binary("loss"), **_ERRORS})
def get_loss(job_id: str, session: SessionDep, tenant: CurrentTenant, format: FormatQuery = None,
             accept: AcceptHeader = None,
             max_points: Annotated[int | None, Query(ge=2, le=1_000_000,
                                                     description="Evenly spaced; first and last kept")] = None
             ) -> Response:
    fmt = negotiate(format, accept, RESULT_FORMATS["loss"])
    job = get_job(session, tenant, job_id)
    result = results.load_result(session, job) if job.state == "succeeded" else None
    body = results.loss(session, job, result, max_points)
    if fmt is ResultFormat.json:
        return JSONResponse(body)
    return array_response(results.loss_arrays(body), fmt, filename=f"{job.id}-loss")


@router.get("/samples", summary="Posterior samples (latent and deterministic sites; predictive if asked)",
            responses={**_binary("samples"), **_ERRORS})
def get_samples(job_id: str, session: SessionDep, tenant: CurrentTenant, format: FormatQuery = None,
                accept: AcceptHeader = None) -> Response:
    fmt = negotiate(format, accept, RESULT_FORMATS["samples"])
    job = get_job(session, tenant, job_id)
    stored = _stored_download(session, job, fmt, {ResultFormat.npz: ArtifactKind.SAMPLES_NPZ,
                                                  ResultFormat.netcdf: ArtifactKind.NETCDF}, f"{job.id}-samples")
    if stored is not None:
        return stored
    result = results.load_result(session, job)
    if fmt is ResultFormat.json:
        return JSONResponse({"job_id": job.id, **formats.samples_section(result)})
    samples, predictive = formats.read_samples(result)
    if fmt is ResultFormat.netcdf:  # the stored artifact's form (ArviZ groups), when it is missing
        blob = formats.inference_data_netcdf(samples, predictive, formats.read_log_probs(result),
                                             diagnostics=result.get("diagnostics"), meta=result.get("meta"))
        return binary_response(blob, fmt, filename=f"{job.id}-samples")
    return array_response(formats.samples_arrays(samples, predictive), fmt, filename=f"{job.id}-samples")


@router.get("/log-probs", summary="Per-draw log p per model site, log q per guide site, joint log p(x, z)",
            responses={**_binary("log-probs"), **_ERRORS})
def get_log_probs(job_id: str, session: SessionDep, tenant: CurrentTenant, format: FormatQuery = None,
                  accept: AcceptHeader = None) -> Response:
    fmt = negotiate(format, accept, RESULT_FORMATS["log-probs"])
    job = get_job(session, tenant, job_id)
    stored = _stored_download(session, job, fmt, {ResultFormat.npz: ArtifactKind.LOG_PROBS_NPZ},
                              f"{job.id}-log-probs")
    if stored is not None:
        return stored
    result = results.load_result(session, job)
    if fmt is ResultFormat.json:
        return JSONResponse({"job_id": job.id, **formats.log_probs_section(result)})
    arrays = formats.log_probs_arrays(formats.read_log_probs(result))
    return array_response(arrays, fmt, filename=f"{job.id}-log-probs", sample_dims=1, group="log_likelihood")


@router.get("/diagnostics", summary="Validation report, convergence, NaN events, Pareto k-hat; run metadata",
            responses=_ERRORS)
def get_diagnostics(job_id: str, session: SessionDep, tenant: CurrentTenant) -> dict[str, Any]:
    job = get_job(session, tenant, job_id)
    return {"job_id": job.id, **formats.diagnostics_section(results.load_result(session, job))}


@router.get("/summary", summary="Per latent site: mean, sd, 5/50/95% quantiles", responses=_ERRORS)
def get_summary(job_id: str, session: SessionDep, tenant: CurrentTenant) -> dict[str, Any]:
    job = get_job(session, tenant, job_id)
    return {"job_id": job.id, **formats.summary_section(results.load_result(session, job))}


@router.post("/predict", response_model=PredictOut, summary="Posterior predictive for new data",
             responses={**problem_responses(400, 401, 404, 409, 413, 422, 429, 500, 503)})
def predict(job_id: str, body: PredictRequest, runtime: RuntimeDep, session: SessionDep,
            tenant: CurrentTenant) -> PredictOut:
    return predict_service.predict(session, runtime, tenant, job_id, body)

