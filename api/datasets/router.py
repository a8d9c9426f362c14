"""``POST /v1/datasets`` (JSON or multipart CSV/NPZ/Parquet/JSON), ``GET /v1/datasets[/{id}]``;
resumable chunked uploads under ``/v1/datasets/uploads`` (``api.datasets.uploads_router``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request as StarletteRequest

from api.datasets import service
from api.datasets.schemas import DatasetCreate, DatasetList, DatasetOut
from api.datasets.uploads_router import router as uploads_router
from api.deps import CurrentTenant, KnownQueryOnly, PageSize, RuntimeDep, SessionDep
from api.errors import (
    MalformedRequest,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedMediaType,
    problem_responses,
)
from api.hardening import bad_chars

router = APIRouter(prefix="/datasets", tags=["datasets"])
router.include_router(uploads_router)

_UPLOAD_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/DatasetCreate"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary",
                             "description": "CSV (header row), NPZ, Parquet or JSON object"},
                    "name": {"type": "string", "maxLength": 200},
                },
            }
        },
    },
}


@router.post(
    "",
    status_code=201,
    response_model=DatasetOut,
    summary="Upload a dataset (JSON body or a CSV/NPZ/Parquet/JSON file)",
    openapi_extra={"requestBody": _UPLOAD_BODY},
    responses={200: {"model": DatasetOut, "description": "The same data already existed"},
               **problem_responses(400, 401, 403, 413, 415, 422, 500)},
)
async def create_dataset(request: Request, runtime: RuntimeDep, session: SessionDep,
                         tenant: CurrentTenant) -> JSONResponse:
    limit = runtime.settings.quotas.max_upload_bytes
    content_type = request.headers.get("content-type", "")
    body = await _read_limited(request, limit)
    settings = runtime.settings
    if content_type.startswith("multipart/form-data"):
        content, filename, file_type, name = await _multipart_file(request, body, limit)
        out = await run_in_threadpool(service.create_from_upload, session, settings, tenant, content,
                                      filename=filename, content_type=file_type, name=name)
    elif content_type.split(";")[0].strip() in ("application/json", ""):
        payload = _parse_json_body(body)
        out = await run_in_threadpool(service.create_from_json, session, settings, tenant, payload.data,
                                      payload.name)
    else:
        raise UnsupportedMediaType("Send application/json or multipart/form-data with a 'file' part.")
    return JSONResponse(out.model_dump(mode="json"), status_code=201 if out.created else 200,
                        headers={"Location": f"/v1/datasets/{out.id}"})


@router.get("", response_model=DatasetList, summary="This account's datasets, newest first",
            responses=problem_responses(400, 401, 422, 500), dependencies=[KnownQueryOnly])
def list_datasets(session: SessionDep, tenant: CurrentTenant,
                  size: PageSize) -> DatasetList:
    return service.list_datasets(session, tenant, size or 100)


@router.get("/{dataset_id}", response_model=DatasetOut, summary="A dataset's fields, shapes, dtypes and sha256",
            responses=problem_responses(401, 404, 422, 500))
def get_dataset(dataset_id: str, session: SessionDep, tenant: CurrentTenant) -> DatasetOut:
    return service.get_dataset(session, tenant, dataset_id)


async def _read_limited(request: Request, limit: int) -> bytes:
    """The request body, refusing with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The upload is {declared} bytes; the limit is {limit}.", limit=limit)
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"The upload exceeds the limit of {limit} bytes.", limit=limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_json_body(body: bytes) -> DatasetCreate:
    import json

    try:
        raw = json.loads(body or b"null")
    except ValueError as exc:
        raise MalformedRequest(f"The body is not valid JSON: {exc}") from exc
    try:
        return DatasetCreate.model_validate(raw)
    except ValidationError as exc:
        from api.errors import loc_to_pointer

        errors = [{"pointer": loc_to_pointer(("body", *e["loc"]))[1], "detail": e["msg"]} for e in exc.errors()]
        raise Unprocessable("; ".join(f"{e['pointer'] or '(body)'}: {e['detail']}" for e in errors),
                            errors=errors) from exc


MAX_NAME_CHARS = 200  # datasets.name is String(200)


def _check_form_text(text: str, pointer: str, *, max_chars: int | None) -> None:
    what = bad_chars(text)
    if what is None and max_chars is not None and len(text) > max_chars:
        what = f"has {len(text)} characters; at most {max_chars} are accepted"
    elif what is not None:
        what = f"{what}; strings must be valid Unicode without NUL characters"
    if what is not None:
        detail = f"the {'name' if pointer == '/name' else 'file name'} {what}"
        raise Unprocessable(f"{pointer}: {detail}", errors=[{"pointer": pointer, "detail": detail}])


async def _multipart_file(request: Request, body: bytes, limit: int) -> tuple[bytes, str | None, str | None, str | None]:
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    replayed = StarletteRequest(request.scope, replay)
    try:
        form = await replayed.form(max_files=1, max_fields=10, max_part_size=limit)
    except Exception as exc:
        raise MalformedRequest(f"The multipart body could not be parsed: {exc}") from exc
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise Unprocessable("The multipart body needs a file part named 'file'.",
                                errors=[{"pointer": "/file", "detail": "field required"}])
        content = await upload.read()
        name = form.get("name")
        if isinstance(name, str):
            _check_form_text(name, "/name", max_chars=MAX_NAME_CHARS)
        filename = upload.filename
        if filename:
            # The file's name is the dataset's name when no name part is sent: stored too.
            _check_form_text(filename, "/file", max_chars=None)
            filename = filename[:MAX_NAME_CHARS]
        return content, filename, upload.content_type, name if isinstance(name, str) and name else None
    finally:
        await form.close()
