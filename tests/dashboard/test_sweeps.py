"""The sweep page and the job page's posterior predictive check panel in headless Chromium,
against the real server (uvicorn + Celery worker on Postgres + Redis, see conftest.py).

A two-point sweep (AutoNormal vs AutoDiagonalNormal on eight schools, with predictive
draws) is created over REST; the sweep page must show each member's progress, the loss
curves overlaid, the comparison table (one recommended row, sortable) and the overlaid
marginals; a member's job page must show the PPC panel with its statistics.
"""

from __future__ import annotations

from typing import Any

import pytest
from browser_page import Page

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SWEEP = {
    "name": "dashboard-sweep",
    "base": {
        "model": {"catalog": "eight_schools_noncentered"},
        "guide": {"auto": "AutoNormal"},
        "inference": {"steps": 300, "seed": 0, "optimizer": {"name": "Adam", "lr": 0.05}},
        "outputs": {"num_samples": 200, "log_prob_draws": 200, "predictive": True, "elbo_terms_every": 0},
    },
    "axes": {"guide.auto": ["AutoNormal", "AutoDiagonalNormal"]},
}


@pytest.fixture(scope="module")
def sweep_id(browser: Any, dashboard_server: Any) -> str:
    page = Page(browser, dashboard_server)
    created = page.api("POST", "/v1/sweeps", SWEEP)
    assert len(created["members"]) == 2
    return created["id"]


def test_sweep_page_shows_progress_curves_table_and_marginals(page: Page, sweep_id: str) -> None:
    page.open(f"#/sweeps/{sweep_id}")
    page.wait_css("#members-table")
    assert len(page.all("#members-table tbody tr")) == 2
    page.wait(lambda d: page.js("return document.querySelector('h1')?.dataset.state") == "finished", 240,
              "the sweep never finished")
    states = page.js("return [...document.querySelectorAll('#members-table tbody tr')].map(r => r.dataset.state)")
    assert states == ["succeeded", "succeeded"]
    assert "2 succeeded" in page.text("#sweep-summary")
    assert page.js("return document.getElementById('sweep-progress').value") == pytest.approx(1.0)

    # Overlaid loss curves: one line per member, each with points.
    page.wait(lambda d: len(page.all("#sweep-loss-chart path.series")) == 2, 30, "no overlaid loss curves")
    points = page.js("return [...document.querySelectorAll('#sweep-loss-chart path.series')].map(p => Number(p.dataset.points))")
    assert all(n > 10 for n in points), points

    # The comparison table: two rows, exactly one recommended, the rule spelled out.
    page.wait(lambda d: len(page.all("#comparison-table tbody tr")) == 2, 30, "no comparison table")
    recommended = page.js("return [...document.querySelectorAll('#comparison-table tbody tr')].map(r => r.dataset.recommended)")
    assert recommended.count("true") == 1
    assert "Recommended by ELBO" in page.text("#comparison-rule")
    elbo_cells = page.js("return [...document.querySelectorAll('#comparison-table td[data-col=elbo]')].map(c => c.textContent)")
    assert all("±" in cell for cell in elbo_cells)
    readings = page.js("return [...document.querySelectorAll('#comparison-table td[data-col=k_hat]')].map(c => c.textContent)")
    assert all(any(word in r for word in ("good", "ok", "unreliable", "very bad")) for r in readings), readings

    # Sortable: clicking "Steps" sorts by it (descending first), again flips the order.
    page.css('#comparison-table button[data-sort="steps"]').click()
    page.wait(lambda d: page.attr('#comparison-table th[aria-sort]', "aria-sort") == "descending"
              and "Steps" in (page.text('#comparison-table th[aria-sort]') or ""), 15)
    page.css('#comparison-table button[data-sort="steps"]').click()
    page.wait(lambda d: page.attr('#comparison-table th[aria-sort]', "aria-sort") == "ascending", 15)

    # Overlaid marginals of a chosen site.
    page.wait(lambda d: page.js("return document.getElementById('sweep-marginals')?.dataset.site"), 30,
              "no marginals drawn")
    page.js("const s = document.getElementById('marginal-site'); s.value = 'mu'; s.dispatchEvent(new Event('change'));")
    page.wait(lambda d: page.js("return document.getElementById('sweep-marginals').dataset.site") == "mu"
              and len(page.all("#sweep-marginals path.series")) == 2, 15, "the marginals of mu were not overlaid")
    assert page.js("return document.getElementById('sweep-marginals').dataset.members") == "2"
    page.screenshot("sweep-page")

    page.open("#/sweeps")
    page.wait(lambda d: page.all(f'#sweeps-table tr[data-sweep-id="{sweep_id}"]'), 30, "the sweep is not listed")
    # The list reads summaries (no members): the member count comes from member_count.
    cells = page.js(f"return [...document.querySelectorAll('#sweeps-table tr[data-sweep-id=\"{sweep_id}\"] td')]"
                    ".map(td => td.textContent)")
    assert cells[2] == "2", cells


def test_ppc_panel_on_a_members_job_page(page: Page, sweep_id: str) -> None:
    sweep = page.api("GET", f"/v1/sweeps/{sweep_id}")
    job_id = sweep["members"][0]["job"]["id"]
    page.open(f"#/jobs/{job_id}")
    page.wait(lambda d: page.js("return document.getElementById('ppc')?.dataset.loaded") == "true", 240,
              "the PPC panel did not load")
    assert page.js("return document.getElementById('ppc').hidden") is False
    stats = page.js("return [...document.querySelectorAll('#ppc .ppc-table tbody tr')].map(r => [r.dataset.stat, Number(r.dataset.pValue)])")
    names = [name for name, _ in stats]
    assert {"mean", "sd", "min", "max", "q50"} <= set(names)
    assert all(0.0 <= p <= 1.0 for _, p in stats)
    expected = page.api("GET", f"/v1/jobs/{job_id}/ppc")["sites"]["obs"]["statistics"]
    assert dict(stats)["mean"] == pytest.approx(expected["mean"]["p_value"])
    assert len(page.all("#ppc .ppc-site path.series")) == 2  # observed and replicated histograms
    page.screenshot("job-ppc-panel")


def test_no_ppc_panel_without_predictive_draws(page: Page) -> None:
    body = {**SWEEP["base"], "outputs": {"num_samples": 50, "elbo_terms_every": 0}, "inference": {"steps": 20}}
    job = page.api("POST", "/v1/jobs", body)
    page.open(f"#/jobs/{job['id']}")
    page.wait_css("#job-progress")
    page.wait(lambda d: page.js("return document.querySelector('h1')?.dataset.state") == "succeeded", 120)
    page.wait_css("#posterior")
    assert page.js("return document.getElementById('ppc')") is None  # no panel without predictive draws
