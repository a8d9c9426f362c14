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
- ``check_json_strings`` (run by ``JsonGuardMiddleware`` too): a JSON body holding a
  string (key or value, anywhere) with NUL or a lone UTF-16 surrogate is ``422
  validation-error`` with the member's pointer (Postgres cannot store NUL; a lone
  surrogate is not Unicode and cannot be encoded), an integer literal of 640+ digits
  ``422 invalid-data`` (beyond int64; Python's int() refuses 4300+ digits).
- ``UrlGuardMiddleware``: NUL in the URL path, query or a header value is ``400
  malformed-request``.
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
from typing import Any

import numpy as np
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import (
    InvalidData,
    MalformedRequest,
    PayloadTooLarge,
    Unprocessable,
    VihubError,
    problem_response,
)

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


# A JSON escape that decodes to NUL or to a UTF-16 surrogate (paired or not: pairs are
# told apart after parsing), a UTF-8-encoded surrogate (ED A0..BF: Python's json decodes
# bytes with "surrogatepass"), and an integer too long for Python's int() (sys.int_info.
# str_digits_check_threshold is 640, the default limit 4300; anything over 19 digits is
# beyond int64 anyway). Either one found (cheaply, on the bytes) makes the text be parsed
# once here to name the member; a false positive (inside a string, a valid pair) only
# costs that parse.
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})|\xed[\xa0-\xbf]")
_LONG_INTEGER = re.compile(rb"(?<![0-9])[0-9]{640}")  # from a run's start only: linear
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")


class _LongInteger(int):
    """Stands in for an integer literal too long to convert (never compared by value)."""


def _parse_int(text: str) -> int:
    return int(text) if len(text) < 640 else _LongInteger(0)


def check_json_strings(body: bytes, *, pointer: str = "") -> None:
    """Refuse a JSON text holding a string (a key or a value, anywhere: model sources too)
    with NUL or a lone UTF-16 surrogate (``422 validation-error`` with the member's
    pointer), or an integer literal of 640+ digits (``422 invalid-data``, beyond int64).

    NUL is refused because Postgres text and JSONB cannot store it (and Python source
    cannot hold it); a lone surrogate is not Unicode, so it cannot be stored as UTF-8 nor
    echoed back. Invalid JSON passes: the parser that runs afterwards refuses it.
    """
    suspect_escape = _SUSPECT_ESCAPE.search(body) is not None
    long_integer = _LONG_INTEGER.search(body) is not None
    if not (suspect_escape or long_integer):
        return
    import json

    try:
        value = json.loads(body, parse_int=_parse_int)
    except (ValueError, RecursionError):
        return
    found = find_bad_text(value, [])
    if found is None:
        return
    pointer, what = pointer + found[0], found[1]
    if what == "integer":
        raise InvalidData(
            f"{pointer or '(body)'}: an integer literal with 640 or more digits is beyond int64 "
            f"[{-(2**63)}, {2**63 - 1}]; send it as a float if that is what it is.",
            pointer=pointer,
        )
    detail = f"{what}; strings must be valid Unicode without NUL characters"
    raise Unprocessable(f"{pointer or '(body)'}: {detail}", errors=[{"pointer": pointer, "detail": detail}])


def bad_chars(text: str) -> str | None:
    """What is wrong with ``text`` for storing it ("holds a NUL character ..."), or None."""
    match = _BAD_CHARS.search(text)
    if match is None:
        return None
    return "holds a NUL character (\\u0000)" if match.group() == "\x00" else \
        f"holds a lone UTF-16 surrogate (\\u{ord(match.group()):04x})"


def find_bad_text(value: Any, path: list[str] | None = None) -> tuple[str, str] | None:
    """(pointer, what) of the first string (key or value) with NUL or a lone surrogate, or
    over-long integer literal, in a parsed JSON value; depth-first; None if there is none."""
    stack: list[tuple[Any, list[str]]] = [(value, path or [])]
    while stack:
        item, at = stack.pop()
        if isinstance(item, str):
            what = bad_chars(item)
            if what is not None:
                return _pointer(at), f"the string {what}"
        elif isinstance(item, _LongInteger):
            return _pointer(at), "integer"
        elif isinstance(item, dict):
            children = []
            for key, child in item.items():
                what = bad_chars(key)
                if what is not None:
                    return _pointer([*at, key]), f"the member name {what}"
                children.append((child, [*at, key]))
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend(reversed([(child, [*at, str(i)]) for i, child in enumerate(item)]))
    return None


def _pointer(parts: list[str]) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


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
                check_json_strings(body)
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


class UrlGuardMiddleware:
    """``400 malformed-request`` for a NUL character in the URL path or query (raw or as
    ``%00``) or in a header value, before any route sees it: no id, label or token holds
    one, and Postgres cannot compare text with NUL (it raised -> 500)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            where = _nul_in_request(scope)
            if where is not None:
                problem = MalformedRequest(f"The {where} holds a NUL character (%00); it is never valid there.")
                await problem_response(problem.to_problem(scope.get("path")))(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _nul_in_request(scope: Scope) -> str | None:
    raw_path = scope.get("raw_path") or b""
    if "\x00" in scope.get("path", "") or b"\x00" in raw_path or b"%00" in raw_path:
        return "URL path"
    query = scope.get("query_string") or b""
    if b"\x00" in query or b"%00" in query:
        return "query string"
    for _, value in scope.get("headers", ()):
        if b"\x00" in value:
            return "header"
    return None


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
