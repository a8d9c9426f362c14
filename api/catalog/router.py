"""``GET /v1/catalog`` and ``GET /v1/catalog/{name}``: built-in models (public, no key needed)."""

from __future__ import annotations

from fastapi import APIRouter

from api.catalog import service
from api.catalog.schemas import CatalogEntryOut, CatalogList
from api.deps import KnownQueryOnly
from api.errors import problem_responses

router = APIRouter(prefix="/catalog", tags=["catalog"])


@router.get("", response_model=CatalogList, summary="List the built-in models",
            responses=problem_responses(400, 500), dependencies=[KnownQueryOnly])
def list_catalog() -> CatalogList:
    return CatalogList(items=service.list_entries())


@router.get("/{name}", response_model=CatalogEntryOut, summary="A built-in model with its example data",
            responses=problem_responses(404, 422, 500))
def get_catalog_entry(name: str) -> CatalogEntryOut:
    return service.get_entry(name)
