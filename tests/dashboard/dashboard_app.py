"""The app the browser tests serve: ``create_app()`` with the dashboard router included
(unless ``api.app`` already includes it), for ``uvicorn --factory``."""

from __future__ import annotations

from fastapi import FastAPI


def create_app() -> FastAPI:
    from api.app import create_app as create_api_app
    from api.dashboard.router import router

    app = create_api_app()
    if not any(getattr(route, "path", None) == "/ui/{path:path}" for route in app.routes):
        app.include_router(router)
    return app
