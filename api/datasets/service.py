"""Datasets: decode and check uploads, store them content-addressed, resolve a job's data.

Upload size is bounded twice: the raw request body (``quotas.max_upload_bytes``, counted
while streaming by the router) and the decoded arrays (``quotas.max_dataset_bytes``).
Larger files come through resumable chunked uploads (``api.datasets.uploads``).

The canonical NPZ of every uploaded dataset goes to the blob store
(``store.blobs.dataset_key(sha256)``) before its row is written; rows of inline job data
and rows from before the blob store keep their bytes in ``datasets.content``. Reading a
blob dataset goes through this host's dataset cache (memory-mapped).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from api.datasets import arrays
from api.datasets.large import trial_fields
from api.datasets.schemas import DatasetList, DatasetOut, FieldInfo
from api.errors import (
    DatasetNotFound,
    InvalidData,
    QuotaExceeded,
    UnknownCatalogModel,
    Unprocessable,
    VihubError,
)
from api.ids import is_resource_id
from api.runtime import TenantRef
from common.arrays import EncodedArrays, decode_arrays, encode_arrays
from common.settings import Settings
from store.blobs import BlobNotFound, blob_store, dataset_cache, dataset_key
from store.blobs.npz import open_npz_mmap
from store.models import Dataset
from store.repositories.datasets import DatasetRepository

log = logging.getLogger("vihub.api.datasets")


def create_from_json(session: Session, settings: Settings, tenant: TenantRef, data: dict[str, Any],
                     name: str | None) -> DatasetOut:
    fields = arrays.from_json_mapping(data, pointer="/data")
    return _out(*store_fields_created(session, settings, tenant, fields, fmt="json", name=name))


def create_from_upload(session: Session, settings: Settings, tenant: TenantRef, content: bytes, *,
                       filename: str | None, content_type: str | None, name: str | None) -> DatasetOut:
    # The quota is checked on the decoded size *before* decoding (413 for a bomb).
    fields, fmt = arrays.from_upload(content, filename=filename, content_type=content_type,
                                     max_decoded_bytes=settings.quotas.max_dataset_bytes)
    return _out(*store_fields_created(session, settings, tenant, fields, fmt=fmt, name=name or filename))


def store_fields(session: Session, settings: Settings, tenant: TenantRef, fields: dict[str, Any], *,
                 fmt: str, name: str | None) -> Dataset:
    return store_fields_created(session, settings, tenant, fields, fmt=fmt, name=name)[0]


def encode_fields(settings: Settings, fields: dict[str, Any]) -> EncodedArrays:
    """The canonical NPZ of ``fields``, after the emptiness and dataset-size checks."""
    if not fields:
        raise InvalidData("The dataset has no fields.", pointer="/data")
    size = arrays.nbytes(fields)
    limit = settings.quotas.max_dataset_bytes
    if size > limit:
        raise QuotaExceeded(f"The data holds {size} bytes of arrays; the limit is {limit}.",
                            pointer="/data", limit=limit)
    return encode_arrays(fields)


def store_fields_created(session: Session, settings: Settings, tenant: TenantRef, fields: dict[str, Any], *,
                         fmt: str, name: str | None) -> tuple[Dataset, bool]:
    encoded = encode_fields(settings, fields)
    key = dataset_key(encoded.sha256)
    blob_store(settings).put_bytes(key, encoded.content)  # before the row names it
    return DatasetRepository(session).get_or_create(
        tenant.id, encoded.sha256, None, encoded.fields, fmt, name=name, blob_key=key,
        size_bytes=len(encoded.content),
    )


def get_dataset(session: Session, tenant: TenantRef, dataset_id: str) -> DatasetOut:
    return _out(_get(session, tenant, dataset_id), False)


def _get(session: Session, tenant: TenantRef, dataset_id: str) -> Dataset:
    dataset = DatasetRepository(session).get_for_tenant(tenant.id, dataset_id) if is_resource_id(dataset_id) else None
    if dataset is None:
        raise DatasetNotFound(f"No dataset {dataset_id!r} in this account.", pointer="/data/dataset_id")
    return dataset


def list_datasets(session: Session, tenant: TenantRef, page_size: int) -> DatasetList:
    return DatasetList(items=[_out(d, False) for d in DatasetRepository(session).list_for_tenant(tenant.id, page_size)])


def load_fields(session: Session, tenant: TenantRef, dataset_id: str, settings: Settings | None = None) -> dict[str, Any]:
    """A dataset's fields in memory (all of them)."""
    mapped = _mapped_fields(session, tenant, dataset_id, settings)
    return {k: np.array(v) if isinstance(v, np.ndarray) else v for k, v in mapped.items()}


class DatasetDataMissing(VihubError):
    """The dataset's row exists but its stored bytes are gone (or corrupt) in the blob store."""

    status, slug, title = 410, "data-missing", "Dataset data missing"


def _mapped_fields(session: Session, tenant: TenantRef, dataset_id: str, settings: Settings | None) -> dict[str, Any]:
    """The fields, memory-mapped from this host's cache for a blob-store dataset."""
    dataset = _get(session, tenant, dataset_id)
    repo = DatasetRepository(session)
    location = repo.get_location(dataset.id)
    if location is not None and location.blob_key:
        settings = settings if settings is not None else _default_settings()
        try:
            path = dataset_cache(settings).path(location.sha256, location.blob_key, blob_store(settings))
        except BlobNotFound as exc:  # CorruptBlob too: lost bytes, not a server bug
            log.error("dataset %s: its blob %s is missing or corrupt: %s", dataset.id, location.blob_key, exc)
            raise DatasetDataMissing(f"The stored data of dataset {dataset.id} is missing; upload it again.",
                                     pointer="/data/dataset_id") from exc
        return open_npz_mmap(path)
    return decode_arrays(repo.get_content(dataset.id) or b"")


def _default_settings() -> Settings:
    from common.settings import get_settings

    return get_settings()


def resolve_job_data(session: Session, tenant: TenantRef, body: Any,
                     settings: Settings | None = None) -> tuple[dict[str, Any], str | None]:
    """The fields a job's trial run (or a validation) sees, and its dataset id if it names
    one; a large dataset is cut to its first rows (``large.trial_fields``)."""
    data = body.data
    if data is not None and hasattr(data, "dataset_id"):
        dataset = _get(session, tenant, data.dataset_id)
        settings = settings if settings is not None else _default_settings()
        mapped = _mapped_fields(session, tenant, dataset.id, settings)
        return trial_fields(mapped, settings.uploads.trial_max_bytes), dataset.id
    if data is not None:
        return arrays.from_json_mapping(data.inline, pointer="/data/inline"), None
    catalog_name = getattr(body.model, "catalog", None)
    if catalog_name is None:
        raise Unprocessable("data is required unless the model is a catalog model.",
                            errors=[{"pointer": "/data", "detail": "field required"}])
    return catalog_example_data(catalog_name), None


def catalog_example_data(name: str) -> dict[str, Any]:
    from inference import catalog

    if name not in catalog.names():
        raise UnknownCatalogModel(f"There is no catalog model named {name!r}; GET /v1/catalog lists them.",
                                  pointer="/model/catalog")
    example = catalog.get(name).example_data or {}
    return {k: v for k, v in example.items()}


def _out(dataset: Dataset, created: bool) -> DatasetOut:
    fields = [FieldInfo(name=n, shape=list(f.get("shape", [])), dtype=str(f.get("dtype")))
              for n, f in sorted((dataset.fields or {}).items())]
    return DatasetOut(id=dataset.id, name=dataset.name, sha256=dataset.sha256, format=dataset.format,
                      size_bytes=dataset.size_bytes, fields=fields, created_at=dataset.created_at,
                      created=created)
