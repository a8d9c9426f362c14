"""Process-level guards of the API: bounded JSON bodies and a last-resort error boundary.

- ``json_shape(body)`` measures a JSON text *without parsing it*: its nesting depth and
  an estimate of how many values it holds (separators + containers, strings skipped).
  It runs in C-speed passes (one regex, one ``bytes.translate``, one numpy cumsum).
- ``JsonGuardMiddleware`` applies it to every JSON request body (``application/json``,
  ``*+json``, or no content type, which FastAPI parses as JSON) before any route parses
  it: nesting deeper than ``max_depth`` is ``400 malformed-request`` (Python's JSON
  parser recurses: a ``[[[[...]]]]`` bomb would otherwise raise RecursionError -> 500),
  and more values than ``max_values`` is ``413 payload-too-large`` (a JSON number costs
  ~32 bytes as a Python object, so a body under the upload limit could still decode to
  gigabytes of Python objects).
- ``ErrorBoundaryMiddleware`` is the outermost layer: anything that escapes the app
  becomes a ``500 internal-error`` problem (nothing internal in it; the traceback is
  logged) and is *not* re-raised. Starlette's own ``ServerErrorMiddleware`` re-raises
  after answering, and uvicorn then closes the connection, so the client's next request
  on that keep-alive connection failed.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import MalformedRequest, PayloadTooLarge, VihubError, problem_response

log = logging.getLogger("vihub.api")

# Deep enough for any job body (numpy arrays have at most 64 dimensions, the body adds 3).
MAX_JSON_DEPTH = 80

_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_KEEP = b"[]{},"
_DELETE = bytes(b for b in range(256) if b not in _KEEP)
_SLICE = 1 << 18
_OPEN = np.zeros(256, dtype=np.int8)
_OPEN[ord("[")] = _OPEN[ord("{")] = 1
_OPEN[ord("]")] = _OPEN[ord("}")] = -1


def json_value_limit(max_dataset_bytes: int) -> int:
    """Values a JSON body may hold: a dataset's worth of 8-byte numbers plus room for the
    rest of a job body. (Over the quota but under this, the dataset check answers 403.)"""
    return max_dataset_bytes // 8 + 4096


@dataclass(frozen=True)
class JsonShape:
    depth: int
    values: int  # an upper-bound estimate of scalars + containers


def json_shape(body: bytes) -> JsonShape:
    """Depth and value count of a JSON text, strings ignored, without building objects.

    Invalid JSON (an unterminated string, unbalanced brackets) gives some answer; the
    parser that runs afterwards refuses it anyway.
    """
    skeleton = _JSON_STRING.sub(b"", body).translate(None, _DELETE)
    if not skeleton:
        return JsonShape(depth=0, values=1 if body.strip() else 0)
    # In slices, so the step arrays stay small whatever the body's size.
    depth = level = separators = containers = 0
    view = memoryview(skeleton)
    for start in range(0, len(skeleton), _SLICE):
        codes = np.frombuffer(view[start:start + _SLICE], dtype=np.uint8)
        steps = _OPEN[codes]
        levels = np.cumsum(steps, dtype=np.int64) + level
        depth = max(depth, int(levels.max()))
        level = int(levels[-1])
        separators += int(np.count_nonzero(codes == ord(",")))
        containers += int(np.count_nonzero(steps == 1))
    return JsonShape(depth=depth, values=separators + 2 * containers)


def check_json_text(body: bytes, *, max_depth: int, max_values: int | None, pointer: str | None = None) -> None:
    """Raise ``MalformedRequest`` (400) for a too-deep text, ``PayloadTooLarge`` (413) for one
    with more values than ``max_values``."""
    shape = json_shape(body)
    if shape.depth > max_depth:
        raise MalformedRequest(
            f"The JSON nests {shape.depth} levels deep; at most {max_depth} are accepted.",
            pointer=pointer, depth=shape.depth, limit=max_depth,
        )
    if max_values is not None and shape.values > max_values:
        raise PayloadTooLarge(
            f"The JSON holds about {shape.values} values, at least {8 * shape.values} bytes once "
            f"decoded; the limit is {max_values} values ({8 * max_values} bytes).",
            pointer=pointer, decoded_bytes=8 * shape.values, limit=8 * max_values, values=shape.values,
        )


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return True  # FastAPI parses a body without a content type as JSON


class JsonGuardMiddleware:
    """Checks a JSON request body's depth and size before the app parses it (see module doc).

    The body is buffered here (it is bounded by the body-limit middleware inside) and
    replayed to the app as one message.
    """

    def __init__(self, app: ASGIApp, *, max_depth: int = MAX_JSON_DEPTH, max_values: int | None = None) -> None:
        self.app = app
        self.max_depth = max_depth
        self.max_values = max_values

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE") \
                or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        first: Message | None = None
        while True:
            try:
                message = await receive()
            except HTTPException as exc:  # the body limit (api.limits) tripped while buffering
                problem = PayloadTooLarge(str(exc.detail)) if exc.status_code == 413 else MalformedRequest(str(exc.detail))
                await problem_response(problem.to_problem(scope.get("path")))(scope, receive, send)
                return
            if message["type"] != "http.request":
                first = message  # a disconnect: let the app see it
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if first is None and body:
            try:
                check_json_text(body, max_depth=self.max_depth, max_values=self.max_values)
            except VihubError as exc:
                await problem_response(exc.to_problem(scope.get("path")), exc.headers)(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                if first is not None:
                    return first
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class ErrorBoundaryMiddleware:
    """The outermost layer: nothing raised inside ever reaches the server (see module doc)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if isinstance(exc, HTTPException) and exc.status_code == 413 and not started:
                # The body limit tripped in a middleware outside the exception handlers.
                problem: VihubError = PayloadTooLarge(str(exc.detail))
                await problem_response(problem.to_problem(scope.get("path")))(scope, receive, send)
                return
            log.error("unhandled error on %s %s", scope.get("method"), scope.get("path"), exc_info=exc)
            if not started:
                body = VihubError("An unexpected error occurred; it has been logged.").to_problem(scope.get("path"))
                try:
                    await problem_response(body)(scope, receive, send)
                except Exception:
                    log.warning("could not send the 500 problem", exc_info=True)
            # Headers already out (a stream failed midway): return without ending the body.
            # The server then closes the connection, so the client sees a truncated
            # response as an error instead of a short body that looks complete.
