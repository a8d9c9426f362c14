"""Serves the dashboard: ``/`` is the single page, ``/ui/<path>`` its static assets.

The assets ship inside the package (``api/dashboard/static``, package-data ``static/**/*``)
and are served by this router rather than a ``StaticFiles`` mount because
``include_router`` does not carry mounts. Every response carries a Content-Security-Policy
that allows only same-origin requests, so the page cannot reach beyond the server even by
mistake (no CDN, no fonts, no analytics).
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse, Response

from api.errors import NotFound

STATIC_DIR = (Path(__file__).parent / "static").resolve()

# 'self' only (scripts set styles through the CSSOM, which CSP allows without 'unsafe-inline');
# blob: is for downloads fetched with the API key; data: for the inline favicon.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidate every load (ETag / Last-Modified make that cheap) so an upgrade is
    # picked up without a hard refresh.
    "Cache-Control": "no-cache",
}
_MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}

router = APIRouter(tags=["dashboard"], include_in_schema=False)


@router.get("/", response_class=FileResponse)
def index() -> Response:
    return _file(STATIC_DIR / "index.html")


@router.get("/ui", response_class=RedirectResponse)
def ui_root() -> Response:
    return RedirectResponse("/", status_code=307)


@router.get("/ui/{path:path}", response_class=FileResponse)
def asset(path: str) -> Response:
    return _file(resolve_asset(path))


def resolve_asset(path: str) -> Path:
    """The file under ``static/`` that ``path`` names; ``NotFound`` for anything else
    (missing files, directories, ``..`` or absolute paths escaping the folder)."""
    candidate = (STATIC_DIR / path).resolve()
    if not candidate.is_relative_to(STATIC_DIR) or not candidate.is_file():
        raise NotFound(f"No dashboard asset at /ui/{path}.")
    return candidate


def _file(path: Path) -> Response:
    media_type = _MEDIA_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media_type, headers=_HEADERS)
