"""The catalog of built-in models, read from ``inference.catalog`` (no database)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from api.catalog.schemas import CatalogEntryOut, CatalogItem
from api.dryrun import jsonable
from api.errors import CatalogEntryNotFound


def list_entries() -> list[CatalogItem]:
    from inference import catalog

    return [
        CatalogItem(name=name, description=_first_line(catalog.get(name).description), href=f"/v1/catalog/{name}")
        for name in catalog.names()
    ]


@lru_cache(maxsize=64)
def get_entry(name: str) -> CatalogEntryOut:
    from inference import catalog

    if name not in catalog.names():
        raise CatalogEntryNotFound(
            f"There is no catalog model named {name!r}; GET /v1/catalog lists them."
        )
    entry = catalog.get(name)
    example_data = jsonable(entry.example_data or {})
    suggested = jsonable(getattr(entry, "suggested", None) or {})
    return CatalogEntryOut(
        name=entry.name,
        description=entry.description,
        source=entry.source,
        entry=entry.entry,
        data_schema=jsonable(getattr(entry, "data_schema", None) or {}),
        suggested=suggested,
        example_data=example_data,
        example_job=example_job(entry.name, example_data, suggested),
    )


def example_job(name: str, example_data: dict[str, Any], suggested: dict[str, Any]) -> dict[str, Any]:
    """A job body for ``name`` on its example data, with the settings the entry suggests."""
    body: dict[str, Any] = {"model": {"catalog": name}, "data": {"inline": example_data}}
    for section in ("guide", "inference", "outputs"):
        if isinstance(suggested.get(section), dict):
            body[section] = suggested[section]
    return body


def _first_line(text: str) -> str:
    return (text or "").strip().split("\n\n")[0].replace("\n", " ")
