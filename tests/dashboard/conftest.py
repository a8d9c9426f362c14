"""Fixtures of the dashboard's browser tests: a real server (API + Celery worker on
Postgres + Redis, see ``live_server.py``), headless Debian Chromium driven by Selenium, and a
page helper that stores the API key the way a user does (the key dialog).

Screenshots go to ``test-artifacts/dashboard/`` (git-ignored). Under ``CI=true`` a missing
browser or service is a failure, never a skip.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browser_page import Page
from live_server import ARTIFACTS, running_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the browser tests must run; see tests/dashboard/install_browser.sh)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def dashboard_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The server the browser talks to. ``VIHUB_DASHBOARD_BACKEND=embedded`` runs the
    ``vihub up`` configuration (SQLite, serverless broker, no key) instead of Postgres +
    Redis with API keys (the default, which exercises the key handling)."""
    backend = os.environ.get("VIHUB_DASHBOARD_BACKEND", "postgres")
    database_url = None
    if backend != "embedded":
        try:
            import redis

            redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2).ping()
        except Exception as exc:  # pragma: no cover - depends on the machine
            _unavailable(f"Redis is not reachable for the dashboard server: {exc}")
        # The shared session database (tests/conftest.py); the dashboard's tenant sees
        # only its own jobs there.
        database_url = request.getfixturevalue("pg_url")
    log_dir = tmp_path_factory.mktemp("dashboard-server")
    with running_server(log_dir, backend=backend, database_url=database_url) as server:
        yield server
        # Keep the server logs beside the screenshots: they explain a failed run.
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for log in log_dir.glob("*.log"):
            shutil.copy(log, ARTIFACTS / f"server-{log.name}")


@pytest.fixture(scope="session")
def download_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="session")
def browser(download_dir: Path) -> Iterator[Any]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (it is in the test extras)")
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        _unavailable("Debian chromium/chromium-driver are not installed (tests/dashboard/install_browser.sh)")
    profile = tempfile.mkdtemp(prefix="vihub-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-extensions", "--disable-default-apps", "--mute-audio",
                 "--disable-features=Translate,OptimizationHints,MediaRouter",
                 f"--user-data-dir={profile}", "--window-size=1360,1000"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(download_dir),
        "download.prompt_for_download": False,
        "safebrowsing.enabled": False,
    })
    # The performance log lists every request the page makes (Network.requestWillBeSent).
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_script_timeout(30)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser: Any, dashboard_server: Any) -> Page:
    p = Page(browser, dashboard_server)
    p.open("")
    p.wait_css("#key-button")
    if not dashboard_server.api_key:  # embedded mode: no key needed
        return p
    # Enter the key through the dialog, as a user would. Without a stored key the jobs
    # request gets a 401 and the page opens the dialog by itself; with one, use the button.
    # Settle first: the dialog opened by a 401, or the list loaded with a stored key.
    p.wait(lambda d: p.js("""return document.getElementById('key-dialog').open
        || !/Loading/.test(document.getElementById('jobs-status')?.textContent || 'Loading')"""))
    if not p.js("return document.getElementById('key-dialog').open"):
        p.css("#key-button").click()
    key_input = p.wait_css("#key-input")
    key_input.clear()
    key_input.send_keys(dashboard_server.api_key)
    p.css('#key-form button[value="save"]').click()
    p.wait(lambda d: p.js("return localStorage.getItem('vihub.apiKey')") == dashboard_server.api_key)
    return p
