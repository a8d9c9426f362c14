"""problem+json -> typed exceptions."""

from __future__ import annotations

import httpx
import pytest
import vihub_client as vc
from client_fakes import problem
from vihub_client.errors import error_from_response


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, vc.InvalidRequest), (401, vc.Unauthorized), (403, vc.Forbidden), (404, vc.NotFound),
        (406, vc.InvalidRequest), (409, vc.Conflict), (413, vc.InvalidRequest), (415, vc.InvalidRequest),
        (422, vc.InvalidRequest), (429, vc.RateLimited), (500, vc.ServerError), (503, vc.ServerError),
    ],
)
def test_status_maps_to_class(status: int, cls: type) -> None:
    error = error_from_response(problem(status, "x", "Title", "Detail"))
    assert type(error) is cls
    assert isinstance(error, vc.VihubError)
    assert error.status == status


def test_problem_members_and_extensions_are_kept() -> None:
    response = problem(
        422, "forbidden-construct", "Forbidden construct", "line 3: import os is not allowed",
        instance="/v1/jobs", line=3, col=1, pointer="/model/source",
        errors=[{"pointer": "/inference/steps", "detail": "must be >= 1"}],
    )
    error = error_from_response(response)
    assert error.type == "https://vihub.dev/problems/forbidden-construct"
    assert error.slug == "forbidden-construct"
    assert error.title == "Forbidden construct"
    assert error.detail == "line 3: import os is not allowed"
    assert error.instance == "/v1/jobs"
    assert error.line == 3 and error.col == 1 and error.pointer == "/model/source"
    assert error.errors == [{"pointer": "/inference/steps", "detail": "must be >= 1"}]
    assert error.to_problem()["line"] == 3
    assert "422 Forbidden construct: line 3" in str(error)
    assert error.response is response
    with pytest.raises(AttributeError):
        _ = error.no_such_member


def test_non_json_error_body_still_typed() -> None:
    error = error_from_response(httpx.Response(502, text="<html>bad gateway</html>"))
    assert isinstance(error, vc.ServerError)
    assert error.title == "Bad gateway"
    assert "bad gateway" in (error.detail or "")


def test_status_line_wins_over_body_status() -> None:
    response = httpx.Response(404, json={"type": "about:blank", "title": "Gone", "status": 200})
    assert isinstance(error_from_response(response), vc.NotFound)


def test_rate_limited_exposes_retry_after() -> None:
    error = error_from_response(problem(429, "too-many", "Too many", headers={"Retry-After": "7"}))
    assert isinstance(error, vc.RateLimited)
    assert error.retry_after == 7.0


def test_client_raises_typed_error(server) -> None:
    server.add("GET", "/v1/jobs/nope", problem(404, "job-not-found", "Job not found", "No job 'nope' in this account."))
    with server.client() as client, pytest.raises(vc.NotFound) as info:
        client.job("nope")
    assert info.value.slug == "job-not-found"
    assert info.value.detail == "No job 'nope' in this account."
