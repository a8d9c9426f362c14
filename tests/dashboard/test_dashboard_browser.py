"""The dashboard in headless Chromium against a real server (uvicorn + Celery worker on
Postgres + Redis): submit from the new-job page, watch a running job's loss curve grow
over the SSE stream, read the summary and histograms of a finished job, see a language
error on the line it names, cancel a running job, page through and filter the job list,
download results with the key, and check that no request leaves 127.0.0.1.

Jobs are tiny (eight schools, a few hundred steps) except one long job that the
live-curve test watches and then cancels. The worker runs one job at a time, so tests
that need a finished job wait for it.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from browser_page import Page

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

BROKEN_SOURCE = """import pyro
import pyro.distributions as dist


def model(x, y=None):
    slope = pyro.sample("slope", dist.Normal(0.0, 10.0))
    noise = open("/etc/passwd")
    with pyro.plate("data", x.shape[0]):
        pyro.sample("obs", dist.Normal(slope * x, 1.0), obs=y)
"""
BROKEN_LINE = 7


def _select(page: Page, selector: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(page.css(selector)).select_by_value(value)


def _set_value(page: Page, selector: str, value: str) -> None:
    element = page.css(selector)
    element.clear()
    element.send_keys(value)


def _wait_state(page: Page, states: tuple[str, ...], timeout: float = 120) -> str:
    page.wait(lambda d: page.js("return document.querySelector('h1')?.dataset.state") in states, timeout,
              f"the job page never showed a state in {states}")
    return page.js("return document.querySelector('h1').dataset.state")


def _loss_points(page: Page) -> tuple[int, float]:
    """(plotted points, last plotted step) of the raw loss line; (0, -1) before any."""
    value = page.js("""const p = document.querySelector('#loss-chart path.raw');
        return p ? [Number(p.dataset.points), Number(p.dataset.lastX)] : [0, -1];""")
    return int(value[0]), float(value[1])


@pytest.fixture(scope="module")
def finished_job(page_module: Page) -> dict[str, Any]:
    """A small job submitted from the new-job page, run to success (shared by the tests
    that read results)."""
    page = page_module
    page.open("#/new")
    page.wait(lambda d: page.js("return document.querySelector('#catalog-model')?.value") == "eight_schools_noncentered",
              message="the catalog did not load")
    page.wait(lambda d: page.all("#catalog-info details"), message="the catalog entry did not load")
    _set_value(page, "#steps", "300")
    _set_value(page, "#num-samples", "300")
    _set_value(page, "#labels", "suite=dashboard\nsize=small")
    page.screenshot("new-job-page")
    page.css("#submit-button").click()
    page.wait(lambda d: "#/jobs/" in d.current_url, 60, "submitting did not open the job page")
    job_id = page.driver.current_url.rsplit("/", 1)[-1]
    state = _wait_state(page, ("succeeded", "failed", "cancelled"), timeout=150)
    assert state == "succeeded", page.css("#job-error").text
    return {"id": job_id}


@pytest.fixture(scope="module")
def page_module(browser: Any, dashboard_server: Any) -> Page:
    p = Page(browser, dashboard_server)
    p.open("")
    p.js("localStorage.setItem('vihub.apiKey', arguments[0])", dashboard_server.api_key)
    p.driver.refresh()  # a new document that starts with the key (no 401, no key dialog)
    p.wait(lambda d: p.js("return document.readyState") == "complete")
    return p


def test_api_key_is_entered_once_and_sent_as_a_header(page: Page) -> None:
    if not page.server.api_key:
        pytest.skip("the embedded server needs no key")
    # The page fixture typed the key into the dialog; the jobs page now loads with it.
    page.open("#/jobs")
    page.wait(lambda d: "job" in page.css("#jobs-status").text.lower() and "Loading" not in page.css("#jobs-status").text)
    assert "Could not load" not in page.css("main").text
    assert page.js("return document.getElementById('key-button').textContent").startswith("API key ✓")
    assert page.server.api_key not in page.driver.current_url


def test_new_job_page_submits_and_the_job_page_shows_results(page: Page, finished_job: dict[str, Any]) -> None:
    page.open(f"#/jobs/{finished_job['id']}")
    _wait_state(page, ("succeeded",))
    table = page.wait_css("#summary-table")
    sites = [row.get_attribute("data-site") for row in table.find_elements("css selector", "tbody tr")]
    assert {"mu", "tau"} <= set(sites)
    assert "theta_tilde[0]" in sites and "theta_tilde[7]" in sites  # a vector site, element by element
    mu_cells = [c.text for c in page.css('#summary-table tr[data-site="mu"]').find_elements("css selector", "td")]
    assert len(mu_cells) == 5 and all(c not in ("", "—") for c in mu_cells)  # mean, sd, 5/50/95%
    # A histogram per scalar latent site and a forest plot per vector site.
    page.wait(lambda d: page.all('figure.site-plot.hist[data-site="mu"] .bars'))
    bins = int(page.css('figure.site-plot.hist[data-site="mu"] .bars').get_attribute("data-bins"))
    assert bins >= 5
    assert page.all('figure.site-plot.hist[data-site="tau"] rect.bar')
    assert int(page.css('figure.site-plot.forest[data-site="theta_tilde"] .forest').get_attribute("data-rows")) == 8
    # Diagnostics: k-hat with the server's reading of it in words, and the validation pass.
    khat = page.wait_css("#khat").text
    assert "k-hat" in khat and any(w in khat for w in ("good", "ok", "unreliable"))
    reading = page.api("GET", f"/v1/jobs/{finished_job['id']}/diagnostics")["diagnostics"]["k_hat_reading"]
    assert page.attr("#khat", "data-reading") == reading and reading in khat
    assert page.all("#validation-messages")
    # How the fit ended and whether the fast path trained it, as the server reported.
    diagnostics = page.api("GET", f"/v1/jobs/{finished_job['id']}/diagnostics")["diagnostics"]
    stop_text = page.text("#stop-reading")
    assert f"at step {diagnostics['stop']['step']}" in stop_text and diagnostics["stop"]["rule"] in stop_text
    fast = diagnostics["fast_path"]
    assert ("taken" if fast["taken"] else fast["reason"]) in page.text("#fast-path-reading")
    # The loss curve has every step of a short run; ELBO terms and gradient norms are drawn.
    points, last = _loss_points(page)
    assert points == 300 and last == 300
    page.wait(lambda d: page.all("#elbo-terms-chart path.series"))
    terms = {p.get_attribute("data-series") for p in page.all("#elbo-terms-chart path.series")}
    assert {"KL mu", "KL tau", "reconstruction obs"} <= terms
    assert page.all("#grad-norms-chart path.series")
    # The spec: model source highlighted, data fields with shapes, and the labels.
    assert page.all("#spec-body .tok-keyword") and "def" in page.css("#spec-body .source-view").text
    assert "sigma" in page.wait_css("#data-fields").text and "[8]" in page.css("#data-fields").text
    assert "suite=dashboard" in page.css("dl.meta").text
    page.screenshot("job-page-succeeded")


def test_snippets_reproduce_the_job_without_the_key(page: Page, finished_job: dict[str, Any]) -> None:
    page.open(f"#/jobs/{finished_job['id']}")
    # the spec is known once results load; read in one step each (the page may re-render)
    page.wait(lambda d: "AutoNormal" in (page.text("#snippet-python") or ""), 60)
    curl = page.text("#snippet-curl")
    python = page.text("#snippet-python")
    assert "curl -sS -X POST" in curl and "/v1/jobs" in curl and "$VIHUB_API_KEY" in curl
    body = json.loads(curl.split("<<'JSON'\n", 1)[1].rsplit("\nJSON", 1)[0])
    assert body["model"] == {"catalog": "eight_schools_noncentered"}
    assert body["inference"]["steps"] == 300 and body["guide"]["auto"] == "AutoNormal"
    assert '"eight_schools_noncentered"' in python and "httpx.Client" in python
    if page.server.api_key:
        assert page.server.api_key not in curl + python
    page.driver.execute_cdp_cmd("Browser.grantPermissions", {
        "origin": page.server.base_url, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    page.css("#copy-curl").click()
    page.wait(lambda d: "Copied" in page.css("#copy-curl + span").text)
    copied = page.driver.execute_async_script("navigator.clipboard.readText().then(arguments[0], e => arguments[0]('ERR ' + e))")
    assert copied == curl


def test_new_job_from_an_earlier_one(page: Page, finished_job: dict[str, Any]) -> None:
    page.open(f"#/jobs/{finished_job['id']}")
    page.wait_css("#edit-job").click()
    page.wait_css("#from-job", timeout=30)
    assert page.css("#catalog-model").get_attribute("value") == "eight_schools_noncentered"
    assert page.css("#steps").get_attribute("value") == "300"
    assert page.css("#num-samples").get_attribute("value") == "300"
    assert page.css("#guide-name").get_attribute("value") == "AutoNormal"
    assert "suite=dashboard" in page.css("#labels").get_attribute("value")
    page.css("#validate-button").click()
    assert "Valid" in page.wait_css("#validation-ok", timeout=60).text


def test_downloads_are_fetched_with_the_key(page: Page, finished_job: dict[str, Any], download_dir: Path) -> None:
    page.open(f"#/jobs/{finished_job['id']}")
    _wait_state(page, ("succeeded",))
    for name in ("params.json", "params.safetensors", "samples.npz"):
        button = page.wait_css(f'button[data-download="{name}"]')
        button.click()
        page.wait(lambda d: button.get_attribute("data-downloaded"), 30, f"{name} was not downloaded")
        assert int(button.get_attribute("data-downloaded")) > 0
    page.wait(lambda d: len([p for p in download_dir.iterdir() if not p.name.endswith(".crdownload")]) >= 3, 30)
    files = {p.suffix: p for p in download_dir.iterdir()}
    params = json.loads(files[".json"].read_text())
    assert "guide_params" in params and params["guide_params"]
    assert files[".npz"].read_bytes()[:2] == b"PK"  # a zip archive
    assert files[".safetensors"].stat().st_size > 8


def _option_values(page: Page, selector: str) -> list[str]:
    return page.js("return [...document.querySelectorAll(arguments[0] + ' option')].map((o) => o.value)", selector)


def _field_shown(page: Page, control: str) -> bool:
    return page.js("return !document.querySelector(arguments[0]).closest('.field').hidden", control)


def test_choices_options_and_downloads_are_the_servers(page: Page, finished_job: dict[str, Any]) -> None:
    caps = page.api("GET", "/v1/capabilities")
    names = {kind: [c["name"] for c in caps[kind]["auto" if kind == "guides" else "names"]]
             for kind in ("guides", "elbos", "optimizers")}
    page.open("#/new")
    page.wait(lambda d: page.all("#catalog-info details"), message="the catalog entry did not load")
    assert _option_values(page, "#guide-name") == [*names["guides"], "custom"]
    assert _option_values(page, "#elbo-name") == names["elbos"]
    assert _option_values(page, "#optimizer-name") == names["optimizers"]
    assert _option_values(page, "#device") == caps["devices"]
    assert _option_values(page, "#guide-init-loc") == ["", *caps["guides"]["init_loc_fns"]]
    # A field shows exactly for the choices whose options, as the server lists them, name it.
    checks = [("guides", "#guide-name", {"init_scale": "#guide-init-scale", "rank": "#guide-rank",
                                         "num_transforms": "#guide-num-transforms"}),
              ("elbos", "#elbo-name", {"alpha": "#elbo-alpha", "tail_adaptive_beta": "#elbo-tail-beta"}),
              ("optimizers", "#optimizer-name", {"betas": "#optimizer-betas", "momentum": "#optimizer-momentum",
                                                 "clip_norm": "#optimizer-clip-norm", "lrd": "#optimizer-lrd"})]
    for kind, select, fields in checks:
        for choice in caps[kind]["auto" if kind == "guides" else "names"]:
            _select(page, select, choice["name"])
            for option, control in fields.items():
                assert _field_shown(page, control) == (option in choice["options"]), (choice["name"], option)
    # The job page offers each result in each format the server lists for it.
    page.open(f"#/jobs/{finished_job['id']}")
    _wait_state(page, ("succeeded",))
    page.wait(lambda d: page.all("button[data-download]"))
    offered = page.js("return [...document.querySelectorAll('button[data-download]')].map((b) => b.dataset.download)")
    assert offered == [f"{r['name']}.{f}" for r in caps["results"] for f in r["formats"]]


def test_k_hat_shows_each_server_reading_with_the_servers_thresholds(page: Page) -> None:
    caps = page.api("GET", "/v1/capabilities")
    readings = caps["k_hat"]["readings"]
    page.open("#/jobs")
    views = page.driver.execute_async_script("""
        const [readings, done] = [arguments[0], arguments[arguments.length - 1]];
        import('/ui/js/pages/job/diagnostics.js').then(({ khatView }) => done([
          { k_hat: 0.3, k_hat_reading: 'good' },
          { k_hat: 0.8, k_hat_reading: 'unreliable' },
          { k_hat: null, k_hat_reading: 'very bad', k_hat_note: 'point-mass guide (Delta sites)' },
          { k_hat: null, k_hat_reading: 'not applicable', k_hat_note: 'the model has no latent sites' },
        ].map((d) => { const el = khatView(d, readings); return { text: el.textContent, cls: el.className }; })),
        (e) => done(String(e)));
    """, readings)
    good, unreliable, very_bad, not_applicable = views
    bounds = {r["reading"]: r["below"] for r in readings}
    lower_of_unreliable = bounds["ok"]
    assert "0.3" in good["text"] and f"k-hat < {bounds['good']:g}" in good["text"] and "khat-good" in good["cls"]
    assert f"{lower_of_unreliable:g} ≤ k-hat < {bounds['unreliable']:g}" in unreliable["text"] and "khat-bad" in unreliable["cls"]
    # An infinite k-hat travels as null; the reading and the note say what it was.
    assert "∞" in very_bad["text"] and f"k-hat ≥ {bounds['unreliable']:g}" in very_bad["text"]
    assert "point-mass guide" in very_bad["text"]
    assert "not applicable" in not_applicable["text"] and "khat-unknown" in not_applicable["cls"]
    assert "≥" not in not_applicable["text"] and "no latent sites" in not_applicable["text"]


def test_live_loss_curve_grows_and_the_job_can_be_cancelled(page: Page, finished_job: dict[str, Any]) -> None:
    job = page.api("POST", "/v1/jobs", {
        "model": {"catalog": "eight_schools_noncentered"},
        # A job that stays running until cancelled: every step on Pyro's path (the fast
        # path and stop "auto" would end it within seconds).
        "inference": {"steps": 50000, "progress_every_steps": 20, "stop": "steps", "fast_path": False},
        "outputs": {"num_samples": 50},
        "labels": {"suite": "dashboard", "size": "long"},
    })
    page.open(f"#/jobs/{job['id']}")
    _wait_state(page, ("running",), timeout=60)
    page.wait(lambda d: _loss_points(page)[0] > 0, 60, "no loss points while running")
    first_points, first_step = _loss_points(page)
    # No reload: the curve grows from the event stream.
    page.wait(lambda d: _loss_points(page)[1] > first_step, 30, "the loss curve did not grow")
    second_points, second_step = _loss_points(page)
    assert second_points > first_points and second_step > first_step
    # Live through the event stream (fetch with the key), not by polling the job.
    requested = page.requested_urls()
    assert any(url.endswith(f"/v1/jobs/{job['id']}/events") for url in requested)
    assert sum(url.endswith(f"/v1/jobs/{job['id']}") for url in requested) <= 2
    assert "steps" in page.css("#progress-text").text
    page.css("#log-scale").click()  # log-scale toggle redraws the same points
    page.wait(lambda d: page.js("return document.querySelector('#loss-chart svg').dataset.scale") in ("log", "symlog"))
    page.screenshot("job-page-running")
    # The jobs page refreshes running jobs by itself.
    page.open("#/jobs")
    row = f'tr[data-job-id="{job["id"]}"]'
    page.wait(lambda d: page.attr(row, "data-state") == "running")
    steps_before = page.text(f"{row} td:nth-child(5)")
    page.js("document.querySelector(arguments[0]).focus()", f"{row} a")  # a keyboard user on the running row
    page.wait(lambda d: page.text(f"{row} td:nth-child(5)") not in (steps_before, None), 30, "the running row did not update")
    assert "live" in page.text("#jobs-status")
    assert page.js("return document.activeElement.closest('tr')?.dataset.jobId") == job["id"]  # focus kept
    page.open(f"#/jobs/{job['id']}")
    page.wait_css("#cancel-button")
    page.css("#cancel-button").click()
    assert _wait_state(page, ("cancelled", "succeeded", "failed"), timeout=60) == "cancelled"
    page.wait(lambda d: not page.css("#cancel-button").is_displayed())
    assert page.api("GET", f"/v1/jobs/{job['id']}")["state"] == "cancelled"
    page.screenshot("job-page-cancelled")


def test_dataset_upload_then_validate_with_it(page: Page, tmp_path: Path) -> None:
    csv = tmp_path / "line.csv"
    csv.write_text("x,y\n0.0,0.9\n1.0,3.1\n2.0,5.0\n3.0,7.2\n4.0,8.8\n")
    page.open("#/new")
    page.wait_css("#model-kind-source").click()  # the page's example source: model(x, y=None)
    page.css("#data-kind-upload").click()
    page.wait_css("#data-file").send_keys(str(csv))
    page.css("#upload-button").click()
    info = page.wait_css("#upload-info table", timeout=30)
    assert "x" in info.text and "[5]" in info.text
    dataset_id = page.css("#upload-info p").text.split("dataset ", 1)[1].split(" ")[0].rstrip(".")
    page.css("#validate-button").click()
    ok = page.wait_css("#validation-ok", timeout=60)
    assert "Valid" in ok.text
    # The uploaded dataset is offered under "Existing dataset" too.
    page.css("#data-kind-existing").click()
    page.wait(lambda d: dataset_id in [o.get_attribute("value") for o in page.all("#dataset-existing option")])
    _select(page, "#dataset-existing", dataset_id)
    assert "y" in page.wait_css("#dataset-info table").text


def test_validation_error_points_at_the_line(page: Page) -> None:
    page.open("#/new")
    page.wait_css("#model-kind-source").click()
    source = page.wait_css("#model-source")
    page.js("arguments[0].value = arguments[1]", source, BROKEN_SOURCE)
    page.css("#data-kind-inline").click()
    page.js("arguments[0].value = arguments[1]", page.css("#data-inline"), '{"x": [1.0, 2.0], "y": [1.5, 2.5]}')
    page.css("#validate-button").click()
    message = page.wait_css("#problem-line", timeout=60).text
    assert f"Line {BROKEN_LINE}" in message
    marked = page.wait_css("#model-source-view .code-line.error-line")
    assert marked.get_attribute("data-line") == str(BROKEN_LINE)
    assert "open" in marked.text
    assert page.css("#model-source").get_attribute("aria-invalid") == "true"
    assert f"Line {BROKEN_LINE}" in page.css("#model-source-error").text
    # Focus moves to the offending field; its text selection is the offending line.
    assert page.js("return document.activeElement.id") == "model-source"
    selected = page.js("const a = document.activeElement; return a.value.slice(a.selectionStart, a.selectionEnd)")
    assert "open(" in selected
    page.screenshot("new-job-validation-error")
    # A field error points at its field.
    page.css("#model-kind-catalog").click()
    _set_value(page, "#steps", "0")
    page.css("#validate-button").click()
    page.wait(lambda d: page.css("#steps").get_attribute("aria-invalid") == "true", 30)
    assert page.css("#steps-error").text


FAILING_SOURCE = """import pyro
import pyro.distributions as dist
import torch


def model(y):
    u = pyro.sample("u", dist.Uniform(0.0, 1.0))
    if u > 0.97:
        big = torch.zeros(100000000)
    pyro.sample("obs", dist.Normal(u, 1.0), obs=y)
"""
FAILING_LINE = 9


def test_failed_job_shows_its_error_on_the_source_line(page: Page, finished_job: dict[str, Any]) -> None:
    # Passes the submission's trial run, then breaks a model-language limit at line 9 once
    # the guide proposes u > 0.97 during training: a runtime error with a position.
    import urllib.error

    job = None
    for seed in range(5):  # a seed whose trial run happens to hit line 9 is refused: take the next
        try:
            job = page.api("POST", "/v1/jobs", {"model": {"source": FAILING_SOURCE}, "data": {"inline": {"y": [0.5, 0.6]}},
                                                "inference": {"steps": 3000, "seed": seed, "optimizer": {"name": "Adam", "lr": 0.05}}})
            break
        except urllib.error.HTTPError as exc:
            assert exc.code == 422
    assert job is not None
    page.open(f"#/jobs/{job['id']}")
    assert _wait_state(page, ("succeeded", "failed", "cancelled"), timeout=120) == "failed"
    alert = page.wait_css("#job-error-alert")
    assert "Limit exceeded" in alert.text
    marked = page.css("#job-error-alert .code-line.error-line")
    assert marked.get_attribute("data-line") == str(FAILING_LINE) and "torch.zeros" in marked.text
    assert page.all("#job-error-alert .code-error .caret")
    assert "no results" in page.css("#posterior-body").text
    page.screenshot("job-page-failed")


def test_jobs_page_filters_pages_and_links(page: Page, finished_job: dict[str, Any]) -> None:
    for i in range(3):  # queue-only jobs for paging: cancelled before the worker takes them
        job = page.api("POST", "/v1/jobs", {"model": {"catalog": "eight_schools_noncentered"},
                                             "inference": {"steps": 10}, "labels": {"suite": "paging", "n": str(i)}})
        page.api("POST", f"/v1/jobs/{job['id']}/cancel")
    page.open("#/jobs")
    page.wait(lambda d: len(page.all("tr[data-job-id]")) >= 5)
    headers = [th.text for th in page.all(".jobs-table thead th")]
    assert headers == ["State", "Model", "ELBO", "Guide", "Steps", "Final loss", "Duration", "Created"]
    row = page.css(f'tr[data-job-id="{finished_job["id"]}"]')
    cells = [td.text for td in row.find_elements("css selector", "td")]
    assert cells[0] == "succeeded" and cells[1].startswith("eight_schools_noncentered") and cells[4] == "300 / 300"
    page.screenshot("jobs-page")
    # State filter
    _select(page, "#filter-state", "succeeded")
    page.css(".filters button[type=submit]").click()
    page.wait(lambda d: "state=succeeded" in d.current_url)
    page.wait(lambda d: page.all("tr[data-job-id]") and all(r.get_attribute("data-state") == "succeeded" for r in page.all("tr[data-job-id]")))
    # Label filter
    _select(page, "#filter-state", "")
    _set_value(page, "#filter-label", "suite=paging n=1")
    page.css(".filters button[type=submit]").click()
    page.wait(lambda d: len(page.all("tr[data-job-id]")) == 1 and "n=1" in page.css("tr[data-job-id]").text)
    # Paging with the API's page tokens, two jobs a page.
    page.open("#/jobs?limit=2")
    page.wait(lambda d: len(page.all("tr[data-job-id]")) == 2 and "Page 1" in page.css("#page-number").text)
    first = [r.get_attribute("data-job-id") for r in page.all("tr[data-job-id]")]
    previous, following = page.all(".pager button")
    assert previous.get_attribute("disabled") is not None and following.get_attribute("disabled") is None
    following.click()
    page.wait(lambda d: "Page 2" in page.css("#page-number").text)
    second = [r.get_attribute("data-job-id") for r in page.all("tr[data-job-id]")]
    assert len(second) == 2 and not set(first) & set(second)
    previous.click()
    page.wait(lambda d: "Page 1" in page.css("#page-number").text)
    assert [r.get_attribute("data-job-id") for r in page.all("tr[data-job-id]")] == first
    page.open("#/jobs")
    # A row links to its job page.
    page.wait(lambda d: page.all(f'tr[data-job-id="{finished_job["id"]}"] a'))
    page.css(f'tr[data-job-id="{finished_job["id"]}"] a').click()
    page.wait(lambda d: finished_job["id"] in d.current_url)
    _wait_state(page, ("succeeded",))


def test_sse_parser_handles_split_chunks_comments_and_multiline_data(page: Page) -> None:
    events = page.driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        import('/ui/js/api.js').then(({ EventStreamParser }) => {
          const seen = [];
          const parser = new EventStreamParser((e) => seen.push(e));
          const wire = 'retry: 2000\\n\\n: keep-alive\\n\\nevent: progress\\nid: 7\\ndata: {"step":7,\\r\\ndata: "loss":1.5}\\n\\nevent: end\\ndata: {"state":"succeeded"}\\n\\n';
          for (let i = 0; i < wire.length; i += 5) parser.push(wire.slice(i, i + 5));
          parser.end();
          done(seen);
        }, (e) => done(String(e)));
    """)
    assert events == [
        {"event": "progress", "data": {"step": 7, "loss": 1.5}, "id": "7"},
        {"event": "end", "data": {"state": "succeeded"}, "id": "7"},
    ]


def test_follow_job_falls_back_to_polling_without_a_stream(page: Page, finished_job: dict[str, Any]) -> None:
    # A proxy that refuses or buffers text/event-stream must not leave the page frozen.
    page.open("#/jobs")
    result = page.driver.execute_async_script("""
        const [jobId, done] = [arguments[0], arguments[arguments.length - 1]];
        const realFetch = window.fetch;
        window.fetch = (url, init) => String(url).endsWith('/events')
          ? Promise.resolve(new Response('{"title":"Not found","status":404}', {status: 404, headers: {'Content-Type': 'application/problem+json'}}))
          : realFetch(url, init);
        import('/ui/js/api.js').then(({ followJob }) => {
          const kinds = [];
          followJob(jobId, (u) => kinds.push(u.type), { pollMs: 200 })
            .then((job) => { window.fetch = realFetch; done({ state: job.state, kinds }); },
                  (e) => { window.fetch = realFetch; done({ error: String(e) }); });
        });
    """, finished_job["id"])
    assert result == {"state": "succeeded", "kinds": ["job"]}


def test_pages_make_no_request_beyond_127_0_0_1(page: Page, finished_job: dict[str, Any]) -> None:
    page.requested_urls()  # drop what earlier tests logged
    for route in ("#/jobs", f"#/jobs/{finished_job['id']}", "#/new"):
        page.driver.get(f"{page.server.base_url}/{route}")
        page.wait(lambda d: page.js("return document.readyState") == "complete")
        time.sleep(1.5)  # let the page's fetches start
        entries = page.js("return performance.getEntries()"
                          ".filter(e => ['navigation', 'resource'].includes(e.entryType)).map(e => e.name)")
        assert entries, route
        for url in entries:
            assert url.startswith(page.server.base_url + "/"), f"{route} loaded {url}"
    logged = page.requested_urls()
    assert len(logged) > 10
    for url in logged:
        parsed = urlparse(url)
        # chrome:// is the browser's own UI (its first tab), never the network.
        assert parsed.scheme in ("data", "blob", "chrome") or parsed.hostname == "127.0.0.1", url
    severe = [e["message"] for e in page.driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not [m for m in severe if "Content Security Policy" in m or "Uncaught" in m], severe


def test_controls_are_labelled_and_keyboard_reachable(page: Page, finished_job: dict[str, Any]) -> None:
    unlabelled_js = """return [...document.querySelectorAll('input, select, textarea, button, a[href]')]
        .filter(e => e.offsetParent !== null)
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby')
                     && !(e.textContent || '').trim())
        .map(e => e.outerHTML.slice(0, 80));"""
    for route in ("#/jobs", f"#/jobs/{finished_job['id']}", "#/new"):
        page.open(route)
        page.wait(lambda d: page.all("main h1"))
        time.sleep(1)
        assert page.js(unlabelled_js) == [], route
        # No JavaScript value leaks into the prose (code and snippets may say null).
        prose = page.js("""const main = document.querySelector('main').cloneNode(true);
            main.querySelectorAll('pre, code, textarea').forEach((e) => e.remove());
            return main.textContent;""")
        assert not re.search(r"\bnull\b|\bundefined\b|\bNaN\b(?! / inf events)|\[object Object\]", prose), route
    # Keyboard: the first Tab reaches the skip link, and the key dialog opens from the keyboard.
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    page.open("#/jobs")
    page.driver.refresh()  # a fresh document: focus starts at its beginning
    page.wait(lambda d: page.all("main h1"))
    ActionChains(page.driver).send_keys(Keys.TAB).perform()
    assert page.js("return document.activeElement.className") == "skip-link"
    page.js("document.getElementById('key-button').focus()")
    ActionChains(page.driver).send_keys(Keys.ENTER).perform()
    page.wait(lambda d: page.js("return document.getElementById('key-dialog').open"))
    assert page.js("return document.activeElement.id") == "key-input"
    ActionChains(page.driver).send_keys(Keys.ESCAPE).perform()
    page.wait(lambda d: not page.js("return document.getElementById('key-dialog').open"))
    assert page.js("return localStorage.getItem('vihub.apiKey')") == page.server.api_key


def test_narrow_screen_layout(page: Page, finished_job: dict[str, Any]) -> None:
    page.driver.set_window_size(420, 900)
    try:
        page.open(f"#/jobs/{finished_job['id']}")
        page.wait_css("#summary-table", 60)
        # Nothing wider than the viewport except inside horizontally scrolling boxes.
        overflow = page.js("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1
        page.screenshot("job-page-narrow")
    finally:
        page.driver.set_window_size(1360, 1000)
