"""A real uvicorn server around ``create_app`` for the security tests (run as a subprocess).

``python tests/security/serve_app.py HOME PORT [AUTH]``: SQLite store under HOME, no
dry-run warm-up. Adds test-only routes that fail on purpose (never in the product):
``/_test/boom`` raises, ``/_test/boom-midstream`` raises after the response started.
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn
from fastapi.responses import StreamingResponse

from api.app import create_app
from common.settings import Settings
from store.migrate import upgrade


def main() -> None:
    home, port = Path(sys.argv[1]), int(sys.argv[2])
    auth = sys.argv[3] if len(sys.argv) > 3 else "disabled"
    url = f"sqlite:///{home / 'vihub.sqlite3'}"
    upgrade(url)
    settings = Settings(home=home, database_url=url, broker_url=f"sqla+sqlite:///{home / 'broker.sqlite3'}",
                        auth=auth)
    settings.api = settings.api.model_copy(update=dict(warm_up_pool=False))
    app = create_app(settings)

    @app.get("/_test/boom", include_in_schema=False)
    def boom() -> None:
        raise RuntimeError("internal detail: /etc/secret-path password=hunter2")

    @app.get("/_test/boom-midstream", include_in_schema=False)
    def boom_midstream() -> StreamingResponse:
        def chunks():
            yield b"partial "
            raise RuntimeError("failed mid-stream")

        return StreamingResponse(chunks(), media_type="text/plain")

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
