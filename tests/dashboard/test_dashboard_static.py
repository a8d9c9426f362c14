"""The dashboard router and its assets, without a browser: what is served, with which
headers, that nothing escapes the static folder, that the page loads nothing from
another origin, and that every module the page imports ships in the package."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from js_functions import functions

from api.dashboard.router import CONTENT_SECURITY_POLICY, STATIC_DIR, resolve_asset, router
from api.errors import NotFound, install_error_handlers

# A longer function needs a comment just above it that says why it is one piece.
MAX_FUNCTION_LINES = 80


@pytest.fixture(scope="module")
def client() -> TestClient:
    # The router alone: serving the page needs no database, broker or worker.
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    return TestClient(app)


def test_index_is_the_single_page_with_a_strict_csp(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/ui/js/main.js">' in response.text
    csp = response.headers["content-security-policy"]
    assert csp == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in csp and "connect-src 'self'" in csp and "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(("path", "media"), [
    ("/ui/js/main.js", "text/javascript"),
    ("/ui/js/charts.js", "text/javascript"),
    ("/ui/app.css", "text/css"),
    ("/ui/index.html", "text/html"),
])
def test_assets_have_their_media_types(client: TestClient, path: str, media: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media)
    assert response.headers.get("etag")  # cheap revalidation with Cache-Control: no-cache


@pytest.mark.parametrize("path", ["/ui/nope.js", "/ui/js", "/ui/../router.py", "/ui/%2e%2e/router.py",
                                  "/ui/..%2f..%2fapp.py", "/ui//etc/passwd"])
def test_nothing_outside_the_static_folder_is_served(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "import" not in response.text  # no Python source leaked


def test_resolve_asset_refuses_escapes() -> None:
    for path in ("../router.py", "/etc/passwd", "js/../../router.py", "js"):
        with pytest.raises(NotFound):
            resolve_asset(path)
    assert resolve_asset("js/../app.css") == STATIC_DIR / "app.css"


def _static_files() -> list[Path]:
    return [p for p in STATIC_DIR.rglob("*") if p.is_file()]


def test_every_module_import_resolves_to_a_shipped_file() -> None:
    # No bundler: a typo in an import path would only show as a blank page.
    for js in STATIC_DIR.rglob("*.js"):
        for spec in re.findall(r"""^import\s+(?:[\w*{}\s,]+?\s+from\s+)?['"]([^'"]+)['"];""", js.read_text(), flags=re.M):
            assert spec.startswith("."), f"{js.name} imports {spec!r}: only relative imports of shipped modules"
            assert (js.parent / spec).resolve().is_file(), f"{js.name} imports missing {spec}"


def test_assets_reference_no_other_origin() -> None:
    # Everything the page loads is same-origin: no CDN, web font, analytics or map tiles.
    # (The SVG namespace URI is an identifier, never fetched.)
    allowed = {"http://www.w3.org/2000/svg"}
    for path in _static_files():
        for url in re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}[^\s'\"`)]*", path.read_text()):
            assert url in allowed or url.startswith("//"), f"{path.name} references {url}"


def test_static_files_ship_with_the_package() -> None:
    # pyproject's package-data "static/**/*" covers them; this guards the layout it assumes.
    import tomllib

    root = Path(__file__).resolve().parents[2]
    package_data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["*"]
    assert "static/**/*" in package_data
    assert STATIC_DIR.name == "static" and STATIC_DIR.parent.name == "dashboard"
    assert (STATIC_DIR.parent / "__init__.py").is_file()
    names = {p.relative_to(STATIC_DIR).as_posix() for p in _static_files()}
    assert {"index.html", "app.css", "js/main.js", "js/api.js", "js/charts.js", "js/capabilities.js", "js/pages/job.js",
            "js/pages/jobs.js", "js/pages/newjob.js", "js/pages/job/header.js", "js/pages/newjob/guide.js"} <= names


def test_the_api_app_serves_the_dashboard() -> None:
    from api.app import create_app

    # Without entering the lifespan: the page needs no database or broker.
    client = TestClient(create_app())
    page = client.get("/")
    assert page.status_code == 200 and "/ui/js/main.js" in page.text
    assert client.get("/ui/js/pages/job.js").status_code == 200
    assert "/ui/{path}" not in client.get("/openapi.json").text  # not part of the public API


def _section_modules() -> list[Path]:
    shared = {"context.js", "form.js"}
    return [p for page in ("job", "newjob") for p in sorted((STATIC_DIR / "js" / "pages" / page).glob("*.js"))
            if p.name not in shared]


def test_each_page_section_is_a_module_with_mount() -> None:
    sections = _section_modules()
    assert len(sections) >= 12
    for path in sections:
        text = path.read_text()
        assert re.search(r"^export function mount\(ctx\) \{", text, flags=re.M), f"{path.name} exports no mount(ctx)"
        page = path.parent.name
        # The page composes it (and runs the cleanup mount returns on navigation).
        assert f"./{page}/{path.name}" in (path.parent.parent / f"{page}.js").read_text(), f"{page}.js does not mount {path.name}"


def test_no_long_function_without_a_comment_saying_why() -> None:
    long = []
    for path in STATIC_DIR.rglob("*.js"):
        lines = path.read_text().splitlines()
        for first, last in functions(path.read_text()):
            above = lines[first - 2].strip() if first > 1 else ""
            if last - first + 1 > MAX_FUNCTION_LINES and not (above.startswith("//") and "one piece" in above):
                long.append(f"{path.relative_to(STATIC_DIR)}:{first} ({last - first + 1} lines)")
    assert not long, long


def test_the_function_finder_measures_what_it_should() -> None:
    # Braces inside strings, templates, regexes and comments do not end a function.
    body = "\n".join([f"  const s{i} = '}}' + `${{x}} }}` + /[}}]/.source; // }}" for i in range(90)])
    src = f"export function big(x) {{\n{body}\n}}\nconst small = (y) => {{\n  return y;\n}};\n"
    assert list(functions(src)) == [(1, 92), (93, 95)]
