"""``/v1/datasets/uploads``: resumable chunked uploads (``api.datasets.uploads``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.datasets import uploads
from api.datasets.schemas import DatasetOut, UploadCreate, UploadOut, UploadPartOut
from api.deps import CurrentTenant, RuntimeDep
from api.errors import problem_responses

# Mounted under the datasets router (prefix /datasets) by api.datasets.router.
router = APIRouter(prefix="/uploads", tags=["datasets"])

_PART_BODY = {"required": True, "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                      "format": "binary"}}}}


@router.post("", status_code=201, response_model=UploadOut, summary="Start a resumable chunked upload",
             responses=problem_responses(401, 413, 422, 500))
async def create_upload(body: UploadCreate, runtime: RuntimeDep, tenant: CurrentTenant) -> JSONResponse:
    out = await run_in_threadpool(uploads.create, runtime, tenant, body)
    return JSONResponse(out.model_dump(mode="json"), status_code=201,
                        headers={"Location": f"/v1/datasets/uploads/{out.id}"})


@router.get("/{upload_id}", response_model=UploadOut, summary="An upload's parts received and missing",
            responses=problem_responses(401, 404, 500))
def get_upload(upload_id: str, runtime: RuntimeDep, tenant: CurrentTenant) -> UploadOut:
    return uploads.status(runtime, tenant, upload_id)


@router.put("/{upload_id}/parts/{part_number}", response_model=UploadPartOut,
            summary="Send one part (its sha256 in X-Content-SHA256); sending it again replaces it",
            openapi_extra={"requestBody": _PART_BODY},
            responses=problem_responses(401, 404, 409, 413, 422, 500))
async def put_part(upload_id: str, part_number: Annotated[int, Path(ge=1, le=uploads.MAX_PARTS)], request: Request,
                   runtime: RuntimeDep, tenant: CurrentTenant,
                   x_content_sha256: Annotated[str | None, Header()] = None) -> UploadPartOut:
    return await uploads.put_part(runtime, tenant, upload_id, part_number, x_content_sha256, request.stream())


@router.post("/{upload_id}/complete", status_code=201, response_model=DatasetOut,
             summary="Assemble, verify the sha256, decode and store the dataset",
             responses={200: {"model": DatasetOut, "description": "Already complete, or the same data existed"},
                        **problem_responses(401, 404, 409, 413, 415, 422, 500)})
async def complete_upload(upload_id: str, runtime: RuntimeDep, tenant: CurrentTenant) -> JSONResponse:
    out = await run_in_threadpool(uploads.complete, runtime, tenant, upload_id)
    return JSONResponse(out.model_dump(mode="json"), status_code=201 if out.created else 200,
                        headers={"Location": f"/v1/datasets/{out.id}"})


@router.delete("/{upload_id}", status_code=204, summary="Abort an upload and delete its parts",
               responses=problem_responses(401, 404, 500))
async def abort_upload(upload_id: str, runtime: RuntimeDep, tenant: CurrentTenant) -> Response:
    await run_in_threadpool(uploads.abort, runtime, tenant, upload_id)
    return Response(status_code=204)
