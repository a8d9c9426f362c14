"""Bad input that an outside tester saw answered ``500 internal-error``: each is a clear
4xx problem+json now, on both store backends where the store is involved.

- lone UTF-16 surrogates (``\\ud800``) and NUL (``\\u0000``) anywhere in a JSON body:
  ``422 validation-error`` with the pointer (the renderer also never fails on such a str);
- NUL in a URL path or query: ``400 malformed-request``; a job/dataset id that is not a
  UUID: ``404``;
- a ``created_after`` out of the datetime range once in UTC: ``422`` naming it;
- forged page tokens: ``400 invalid-page-token``;
- CSV/Parquet with duplicate columns, CSV that is not UTF-8: ``422 invalid-data``;
- a 5000-digit integer in a JSON body: ``422 invalid-data`` without Python's hint.
"""

from __future__ import annotations

import base64
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.security.conftest import SMALL_QUOTAS, assert_problem, new_key

BOOM = '''
import pyro
import pyro.distributions as dist

def model(x):
    assert False, "boom\\ud800"
    pyro.sample("w", dist.Normal(0.0, 1.0))
'''

LINEAR = '''
import pyro
import pyro.distributions as dist

def model(x, y=None):
    w = pyro.sample("w", dist.Normal(0.0, 1.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("obs", dist.Normal(w * x, 1.0), obs=y)
'''


def _client(url: str, home: Path) -> Iterator[TestClient]:
    from api.app import create_app
    from common.settings import Settings
    from store.migrate import upgrade

    upgrade(url)
    settings = Settings(home=home, database_url=url, broker_url=f"sqla+sqlite:///{home / 'broker.sqlite3'}",
                        auth="required", quotas=SMALL_QUOTAS)
    settings.api = settings.api.model_copy(update=dict(warm_up_pool=False, dry_run_time_limit_s=30.0))
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def store_client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    home = tmp_path_factory.mktemp(f"bad-input-{request.param}")
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else f"sqlite:///{home / 'vihub.sqlite3'}"
    yield from _client(url, home)


@pytest.fixture
def h(store_client: TestClient) -> dict[str, str]:
    return {**new_key(store_client), "Content-Type": "application/json"}


def post_raw(client: TestClient, path: str, headers: dict[str, str], text: str) -> Any:
    """``text`` is sent as is: JSON escapes like ``\\ud800`` stay escapes on the wire."""
    return client.post(path, headers=headers, content=text.encode("ascii"))


def job_text(data: str = '{"x": [0.0, 1.0], "y": [0.5, 1.5]}', labels: str = "{}", source: str = LINEAR) -> str:
    return ('{"model": {"source": %s}, "guide": {"auto": "AutoNormal"}, "data": {"inline": %s}, '
            '"inference": {"steps": 5, "seed": 0}, "labels": %s}') % (json.dumps(source), data, labels)


def assert_no_raw_surrogate(response: Any) -> None:
    # The body is valid UTF-8 JSON: it decodes (a raw surrogate could not be encoded).
    json.loads(response.content.decode("utf-8"))


# ---------------------------------------------------------------------------------------
# 1-2. Lone surrogates and NUL in JSON bodies


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "\\u0000", "a\\ud800b", "\\uDBFF"])
def test_bad_code_points_in_a_dataset_field_name_are_422(store_client, h, escape):
    response = post_raw(store_client, "/v1/datasets", h, '{"data": {"%s": [1]}}' % escape)
    body = assert_problem(response, 422, "validation-error")
    assert_no_raw_surrogate(response)
    assert body["errors"][0]["pointer"].startswith("/data/")


@pytest.mark.parametrize("escape", ["\\ud800", "\\u0000"])
def test_bad_code_points_in_a_dataset_name_are_422(store_client, h, escape):
    response = post_raw(store_client, "/v1/datasets", h, '{"name": "n%s", "data": {"x": [1]}}' % escape)
    body = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["pointer"] == "/name"


@pytest.mark.parametrize("escape", ["\\ud800", "\\u0000"])
def test_bad_code_points_in_job_inline_data_and_labels_are_422(store_client, h, escape):
    cases = {
        f"/data/inline/{escape}": job_text(data='{"x": [0.0, 1.0], "%s": [1]}' % escape),
        "/labels/team": job_text(labels='{"team": "ml%s"}' % escape),
        "/labels": job_text(labels='{"t%s": "ml"}' % escape),
    }
    for path in ("/v1/jobs", "/v1/validate"):
        for pointer, text in cases.items():
            response = post_raw(store_client, path, h, text)
            body = assert_problem(response, 422, "validation-error")
            assert_no_raw_surrogate(response)
            assert body["errors"][0]["pointer"].startswith(pointer.split("\\")[0].rstrip("/")), body


def test_a_surrogate_in_model_source_is_422_not_500(store_client, h):
    for path in ("/v1/jobs", "/v1/validate"):
        response = post_raw(store_client, path, h, job_text(source=BOOM).replace("\\\\ud800", "\\ud800"))
        body = assert_problem(response, 422)
        assert_no_raw_surrogate(response)
        assert body["errors"][0]["pointer"] == "/model/source"


def test_a_surrogate_pair_and_escaped_backslashes_still_pass(store_client, h):
    # A valid pair (U+1F600) and a literal backslash-u text are not lone surrogates.
    response = post_raw(store_client, "/v1/datasets", h, '{"name": "ok \\ud83d\\ude00 \\\\ud800 \\\\u0000", "data": {"x": [1]}}')
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "ok \U0001F600 \\ud800 \\u0000"


def test_predict_with_bad_code_points_in_inline_data_is_422(store_client, h):
    created = post_raw(store_client, "/v1/jobs", h, job_text())
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    for escape in ("\\ud800", "\\u0000"):
        response = post_raw(store_client, f"/v1/jobs/{job_id}/predict", h,
                            '{"data": {"inline": {"x": [1.0], "%s": [1]}}}' % escape)
        assert_problem(response, 422, "validation-error")
        assert_no_raw_surrogate(response)


def test_a_dry_run_error_carrying_a_surrogate_renders(store_client, h):
    # The source text holds `"boom\ud800"` (a Python escape, plain ASCII in the JSON): the
    # lone surrogate exists only at run time, in the model's assertion message.
    assert "\\ud800" in json.dumps(BOOM)
    for path in ("/v1/jobs", "/v1/validate"):
        response = post_raw(store_client, path, h, job_text(source=BOOM))
        assert response.status_code in (200, 422), response.text
        assert_no_raw_surrogate(response)
        if response.status_code == 422:
            assert "boom" in response.json()["detail"]


def test_the_renderer_never_fails_on_any_str():
    from api.errors import Unprocessable, problem_response

    problem = Unprocessable("bad \ud800 and \x00 end", pointer="/data/\udfff", errors=[{"pointer": "/\ud800", "detail": "x\x00"}])
    response = problem_response(problem.to_problem("/v1/\ud800"))
    text = response.body.decode("utf-8")
    body = json.loads(text)
    assert body["detail"] == "bad \\ud800 and \\x00 end"
    assert body["pointer"] == "/data/\\udfff" and body["instance"] == "/v1/\\ud800"
    assert body["errors"] == [{"pointer": "/\\ud800", "detail": "x\\x00"}]
    assert "\\u0000" not in text


def test_raw_bytes_that_are_not_utf8_are_4xx(store_client, h):
    # A UTF-8-encoded surrogate (ED A0 80): Python's json decodes it ("surrogatepass").
    for path, text in [("/v1/datasets", b'{"name": "\xed\xa0\x80", "data": {"x": [1]}}'),
                       ("/v1/datasets", b'{"data": {"\xed\xa0\x80": [1]}}'),
                       ("/v1/jobs", job_text(labels='{"team": "@"}').encode().replace(b"@", b"\xed\xbf\xbf"))]:
        response = store_client.post(path, headers=h, content=text)
        assert_problem(response, 422, "validation-error")
        assert_no_raw_surrogate(response)
    response = store_client.post("/v1/datasets", headers=h, content=b'{"name": "\xff", "data": {"x": [1]}}')
    assert_problem(response, 400, "malformed-request")


# ---------------------------------------------------------------------------------------
# 3. NUL in URL path or query; ids that are not UUIDs


@pytest.mark.parametrize("url", ["/v1/jobs/a%00b", "/v1/datasets/a%00b", "/v1/jobs?label=a=b%00", "/ui/%00",
                                 "/v1/jobs/a%00b/params", "/v1/jobs?page_token=%00", "/%00"])
def test_nul_in_path_or_query_is_400(store_client, h, url):
    body = assert_problem(store_client.get(url, headers=h), 400, "malformed-request")
    assert "NUL" in body["detail"]


@pytest.mark.parametrize("url", ["/v1/jobs/not-a-uuid", "/v1/datasets/not-a-uuid", "/v1/jobs/x/summary",
                                 "/v1/jobs/" + "9" * 300, f"/v1/jobs/{uuid.uuid4()}"])
def test_an_id_that_is_no_uuid_is_404(store_client, h, url):
    response = store_client.get(url, headers=h)
    assert_problem(response, 404)


@pytest.mark.parametrize("name, filename, pointer", [("a\x00b", "d.csv", "/name"), ("n" * 201, "d.csv", "/name"),
                                                     ("", "d\x00.csv", "/file")])
def test_bad_multipart_names_are_422(store_client, h, name, filename, pointer):
    # Written by hand: httpx would percent-encode a NUL in the file name.
    parts = []
    if name:
        parts.append(b'--B\r\nContent-Disposition: form-data; name="name"\r\n\r\n' + name.encode() + b"\r\n")
    parts.append(b'--B\r\nContent-Disposition: form-data; name="file"; filename="' + filename.encode()
                 + b'"\r\nContent-Type: text/csv\r\n\r\nx\n1\n\r\n--B--\r\n')
    response = store_client.post("/v1/datasets", content=b"".join(parts),
                                 headers={"Authorization": h["Authorization"],
                                          "Content-Type": "multipart/form-data; boundary=B"})
    body = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["pointer"] == pointer


def test_a_long_file_name_becomes_a_200_character_dataset_name(store_client, h):
    response = store_client.post("/v1/datasets", headers={"Authorization": h["Authorization"]},
                                 files={"file": ("f" * 300 + ".csv", b"x\n1\n2\n", "text/csv")})
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "f" * 200


def test_nul_in_a_header_is_400(store_client, h):
    # Idempotency-Key is stored; h11 refuses NUL on the wire, the ASGI scope is checked anyway.
    response = store_client.post("/v1/jobs", headers={**h, "Idempotency-Key": "k\x00"}, content=job_text().encode())
    assert_problem(response, 400, "malformed-request")


# ---------------------------------------------------------------------------------------
# 4. Datetimes that overflow once converted to UTC


@pytest.mark.parametrize("name, value", [("created_after", "9999-12-31T23:59:59-23:59"),
                                         ("created_before", "0001-01-01T00:00:00+23:59")])
def test_a_created_filter_out_of_range_is_422_naming_it(store_client, h, name, value):
    body = assert_problem(store_client.get("/v1/jobs", headers=h, params={name: value}), 422)
    assert name in body["detail"]
    assert body["errors"][0]["parameter"] == name


# ---------------------------------------------------------------------------------------
# 5. Forged page tokens


def _token(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize("token", [
    _token(["9999-12-31T23:59:59-23:59", str(uuid.uuid4())]),
    _token(["2026-01-01T00:00:00+00:00", "x"]),
    _token(["2026-01-01T00:00:00+00:00", "a\u0000"]),
    base64.urlsafe_b64encode(b'["2026-01-01T00:00:00+00:00","\\ud800"]').decode().rstrip("="),
    _token(["2026-01-01T00:00:00", str(uuid.uuid4())]),
    _token(["2026-01-01T00:00:00+00:00", str(uuid.uuid4()), 3]),
    _token({"a": 1}),
    _token([1, 2]),
    _token("x"),
    base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    "!!!",
])
def test_forged_page_tokens_are_400(store_client, h, token):
    body = assert_problem(store_client.get("/v1/jobs", headers=h, params={"page_token": token}), 400,
                          "invalid-page-token")
    assert body["parameter"] == "page_token"


def test_issued_page_tokens_still_work(store_client, h):
    ids = []
    for _ in range(3):
        response = post_raw(store_client, "/v1/jobs", h, job_text())
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
        # cancel, so the concurrent-job quota does not refuse the next one
        assert store_client.post(f"/v1/jobs/{ids[-1]}/cancel", headers=h).status_code == 202
    seen, token = [], None
    while True:
        params = {"limit": 2, **({"page_token": token} if token else {})}
        page = store_client.get("/v1/jobs", headers=h, params=params)
        assert page.status_code == 200, page.text
        seen += [j["id"] for j in page.json()["items"]]
        token = page.json()["next_page_token"]
        if not token:
            break
    assert sorted(seen) == sorted(ids)


# ---------------------------------------------------------------------------------------
# 6. Uploads: duplicate columns, CSV not UTF-8


def _upload(client: TestClient, h: dict[str, str], name: str, content: bytes, ctype: str) -> Any:
    return client.post("/v1/datasets", headers={"Authorization": h["Authorization"]},
                       files={"file": (name, content, ctype)})


def test_csv_with_duplicate_columns_is_422_naming_the_column(store_client, h):
    body = assert_problem(_upload(store_client, h, "d.csv", b"a,a\n1,2\n", "text/csv"), 422, "invalid-data")
    assert "'a'" in body["detail"] and body["pointer"] == "/file/a"


def test_parquet_with_duplicate_columns_is_422_naming_the_column(store_client, h):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_arrays([pa.array([1, 2]), pa.array([3, 4])], names=["a", "a"])
    sink = io.BytesIO()
    pq.write_table(table, sink)
    body = assert_problem(_upload(store_client, h, "d.parquet", sink.getvalue(), "application/vnd.apache.parquet"),
                          422, "invalid-data")
    assert "'a'" in body["detail"]


@pytest.mark.parametrize("content", [b"a\xff,b\n1,2\n", b"a,b\n1,\xff\n", b"\xed\xa0\x80,b\n1,2\n"])
def test_csv_that_is_not_utf8_is_422(store_client, h, content):
    body = assert_problem(_upload(store_client, h, "d.csv", content, "text/csv"), 422, "invalid-data")
    assert "UTF-8" in body["detail"]


@pytest.mark.parametrize("content", [b"a\x00,b\n1,2\n", b"\\ud800,b\n1,2\n"])
def test_csv_with_nul_or_odd_names_is_422(store_client, h, content):
    response = _upload(store_client, h, "d.csv", content, "text/csv")
    assert_problem(response, 422, "invalid-data")
    assert_no_raw_surrogate(response)


# ---------------------------------------------------------------------------------------
# 7. Integers with more digits than Python parses


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/validate", "/v1/datasets"])
def test_a_5000_digit_integer_is_422_invalid_data(store_client, h, path):
    big = "9" * 5000
    text = job_text(data='{"x": [0.0, 1.0], "y": [1, %s]}' % big) if path != "/v1/datasets" \
        else '{"data": {"y": [1, %s]}}' % big
    body = assert_problem(post_raw(store_client, path, h, text), 422, "invalid-data")
    assert "int64" in body["detail"] or "64-bit" in body["detail"]
    assert "set_int_max_str_digits" not in json.dumps(body)


PRINTS = '''
import pyro
import pyro.distributions as dist

def model(x, y=None):
    print("hello\\ud800\\x00")
    w = pyro.sample("w\\ud800", dist.Normal(0.0, 1.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("obs", dist.Normal(w * x, 1.0), obs=y)
'''


def test_a_model_printing_or_naming_sites_with_odd_characters_is_not_500(store_client, h):
    # Site names and printed lines are made at run time from source escapes (plain ASCII
    # in the JSON body): whatever the dry run reports must render.
    for path in ("/v1/validate", "/v1/jobs"):
        response = post_raw(store_client, path, h, job_text(source=PRINTS))
        body = assert_problem(response, 422, "dry-run-failed")
        assert_no_raw_surrogate(response)
        assert body["report_pointer"].startswith("/")


@pytest.mark.parametrize("content", [b'{"y": [1, ' + b"9" * 5000 + b"]}", b'{"\\ud800": [1]}', b'{"a\\u0000": [1]}',
                                     b'{"y": "\\ud800"}'])
def test_a_json_file_upload_with_odd_content_is_422(store_client, h, content):
    response = _upload(store_client, h, "d.json", content, "application/json")
    assert_problem(response, 422)
    assert_no_raw_surrogate(response)
    assert "set_int_max_str_digits" not in response.text


def test_parquet_and_npz_with_odd_column_names_are_422(store_client, h):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pa.Table.from_arrays([pa.array([1, 2])], names=["a\x00b"]), sink)
    response = _upload(store_client, h, "d.parquet", sink.getvalue(), "application/vnd.apache.parquet")
    assert_problem(response, 422, "invalid-data")
    sink = io.BytesIO()
    np.savez(sink, **{"a\x00b": np.arange(3)})
    response = _upload(store_client, h, "d.npz", sink.getvalue(), "application/x-npz")
    assert_problem(response, 422, "invalid-data")
