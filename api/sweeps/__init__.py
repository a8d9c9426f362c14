"""Sweeps (``/v1/sweeps``) and, with them, the comparison and warm-start resources.

``include_routers(app)`` adds ``/v1/sweeps``, ``/v1/compare``, ``/v1/jobs/{id}/ppc`` and
``/v1/jobs/{id}/continue`` (one call from ``api.app``).
"""

from __future__ import annotations

from typing import Any


def include_routers(app: Any) -> None:
    from api.compare.router import router as compare_router
    from api.sweeps.router import router as sweeps_router
    from api.warm_start.router import router as continue_router

    app.include_router(continue_router, prefix="/v1")
    app.include_router(compare_router, prefix="/v1")
    app.include_router(sweeps_router, prefix="/v1")
