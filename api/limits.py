"""Request body size limit as a pure ASGI middleware that answers in problem+json.

A declared ``Content-Length`` over the limit is refused before any byte is read; a body
without one (chunked) is counted while it streams and refused as soon as it passes the
limit. The over-limit signal is a Starlette ``HTTPException(413)`` raised from
``receive``: FastAPI's body parsing re-raises HTTP exceptions as they are, so the app's
one handler renders it like every other error.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import PayloadTooLarge


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                if value.isdigit() and int(value) > limit:
                    problem = PayloadTooLarge(f"The request body is {int(value)} bytes; the limit is {limit}.",
                                              limit=limit)
                    from api.errors import problem_response

                    await problem_response(problem.to_problem(scope.get("path")))(scope, receive, send)
                    return
                break
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, f"The request body exceeds the limit of {limit} bytes.")
            return message

        await self.app(scope, limited_receive, send)
