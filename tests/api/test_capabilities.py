"""``GET /v1/capabilities`` says what the server offers, and says it from the places
that decide it: the spec's enums and defaults, the engine's option tables, the result
routes' format table and the k-hat readings of ``inference.results.psis``."""

from __future__ import annotations

import math
import typing
from typing import Any

import pytest

from api import dryrun
from api.capabilities import service
from api.formats import RESULT_FORMATS
from inference import spec


@pytest.fixture(scope="module")
def body(api_sqlite: Any) -> dict[str, Any]:
    # No key: like the catalog, it describes the server, not a tenant.
    response = api_sqlite.client.get("/v1/capabilities")
    assert response.status_code == 200, response.text
    return response.json()


def _names(choices: list[dict[str, Any]]) -> list[str]:
    return [c["name"] for c in choices]


def test_names_and_defaults_are_the_spec_enums(body: dict[str, Any]) -> None:
    assert _names(body["elbos"]["names"]) == list(spec.ELBO_NAMES)
    assert _names(body["guides"]["auto"]) == list(spec.AUTOGUIDE_NAMES)
    assert _names(body["optimizers"]["names"]) == list(spec.OPTIMIZER_NAMES)
    assert body["elbos"]["default"] == spec.ElboSpec().name
    assert body["optimizers"]["default"] == spec.OptimizerSpec().name
    assert body["guides"]["default"] == spec.JobSpec(model={"catalog": "x"}).guide.auto
    assert body["devices"] == list(typing.get_args(spec.InferenceSpec.model_fields["device"].annotation))
    assert body["float_dtypes"] == list(spec.FLOAT_DTYPES)
    assert body["optimizers"]["schedulers"] == list(typing.get_args(spec.SchedulerSpec.model_fields["name"].annotation))
    assert "reduce_on_plateau" in body["optimizers"]["schedulers"]
    defaults = spec.OutputsSpec().model_dump()
    assert {o["name"]: o["default"] for o in body["outputs"]} == defaults


def test_options_are_the_engines(body: dict[str, Any]) -> None:
    from inference.engine.elbos import allowed_elbo_options
    from inference.engine.guides import INIT_LOC_FNS, allowed_options
    from inference.engine.optim import allowed_optimizer_options

    assert {c["name"]: c["options"] for c in body["elbos"]["names"]} == {
        n: allowed_elbo_options(n) for n in spec.ELBO_NAMES}
    assert {c["name"]: c["options"] for c in body["guides"]["auto"]} == {
        n: allowed_options(n) for n in spec.AUTOGUIDE_NAMES}
    assert {c["name"]: c["options"] for c in body["optimizers"]["names"]} == {
        n: allowed_optimizer_options(n) for n in spec.OPTIMIZER_NAMES}
    assert body["guides"]["init_loc_fns"] == list(INIT_LOC_FNS)
    # What the options mean in practice: alpha is RenyiELBO's alone, rank the low-rank guide's.
    assert [c["name"] for c in body["elbos"]["names"] if "alpha" in c["options"]] == ["RenyiELBO"]
    assert [c["name"] for c in body["guides"]["auto"] if "rank" in c["options"]] == ["AutoLowRankMultivariateNormal"]
    assert [c["name"] for c in body["optimizers"]["names"] if "clip_norm" in c["options"]] == ["ClippedAdam"]


def test_elbo_options_are_the_ones_build_elbo_passes() -> None:
    from inference.engine.elbos import allowed_elbo_options, build_elbo
    from inference.engine.errors import SpecError

    renyi = build_elbo(spec.ElboSpec(name="RenyiELBO", alpha=0.5), max_plate_nesting=1)
    assert renyi.alpha == 0.5
    assert "alpha" not in allowed_elbo_options("Trace_ELBO")
    with pytest.raises(SpecError, match="alpha"):
        build_elbo(spec.ElboSpec(name="Trace_ELBO", alpha=0.5), max_plate_nesting=1)
    assert "retain_graph" not in allowed_elbo_options("RenyiELBO")
    with pytest.raises(SpecError, match="retain_graph"):
        build_elbo(spec.ElboSpec(name="RenyiELBO", retain_graph=True), max_plate_nesting=1)
    tail = build_elbo(spec.ElboSpec(name="TraceTailAdaptive_ELBO", num_particles=2, vectorize_particles=True,
                                    tail_adaptive_beta=-0.5), max_plate_nesting=1)
    assert tail.tail_adaptive_beta == -0.5


def test_k_hat_readings_are_the_ones_diagnostics_use(body: dict[str, Any]) -> None:
    from inference.results.psis import KHAT_READINGS, khat_reading

    readings = body["k_hat"]["readings"]
    assert [(r["below"], r["reading"]) for r in readings] == [
        (None if math.isinf(b) else b, r) for b, r in KHAT_READINGS]
    # Each range reads as its word at both ends, the way a job's diagnostics say it.
    lower = 0.0
    for r in readings:
        upper = math.inf if r["below"] is None else r["below"]
        assert khat_reading(lower) == r["reading"]
        assert khat_reading(min(upper - 1e-9, lower + 10)) == r["reading"]
        lower = upper


def test_result_formats_are_the_ones_the_routes_accept(api_sqlite: Any, body: dict[str, Any]) -> None:
    listed = {r["name"]: r["formats"] for r in body["results"]}
    assert listed == {name: [f.value for f in formats] for name, formats in RESULT_FORMATS.items()}
    every = [f["name"] for f in body["formats"]]
    assert set(every) == {f for formats in listed.values() for f in formats}
    headers = api_sqlite.tenant_headers()
    for name, formats in listed.items():
        if formats == ["json"]:
            continue  # JSON-only resources take no ?format
        for fmt in every:
            response = api_sqlite.client.get(f"/v1/jobs/no-such-job/{name}", params={"format": fmt}, headers=headers)
            # A listed format passes negotiation (then the job is missing); any other is 406.
            assert response.status_code == (404 if fmt in formats else 406), (name, fmt, response.text)


def test_it_is_in_the_openapi_document(api_sqlite: Any) -> None:
    paths = api_sqlite.client.get("/openapi.json").json()["paths"]
    assert "/v1/capabilities" in paths
    assert paths["/v1/capabilities"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]


def test_the_client_sdk_reads_it(api_sqlite: Any, body: dict[str, Any]) -> None:
    import httpx
    import vihub_client

    def forward(request: httpx.Request) -> httpx.Response:
        answer = api_sqlite.client.get(request.url.path)
        return httpx.Response(answer.status_code, headers={"Content-Type": "application/json"}, content=answer.content)

    with vihub_client.Client("http://vihub.test", "unused", transport=httpx.MockTransport(forward)) as client:
        assert client.capabilities() == body


class _Pool:
    """A stand-in for the trial-run pool: busy, or answering from this process."""

    def __init__(self, busy: bool) -> None:
        self.busy = busy
        self.calls = 0

    def run(self, fn: Any, *args: Any) -> dict[str, Any]:
        self.calls += 1
        if self.busy:
            raise dryrun.DryRunUnavailable("all trial-run processes are busy")
        return fn(*args, 30.0)


def test_busy_trial_runs_leave_options_unknown_then_the_next_call_reads_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "_engine_tables", None)
    busy = service.capabilities(_Pool(busy=True))
    assert [c.name for c in busy.elbos.names] == list(spec.ELBO_NAMES)  # names never need the engine
    assert all(c.options is None for c in busy.elbos.names) and busy.k_hat.readings is None
    pool = _Pool(busy=False)
    ready = service.capabilities(pool)
    assert ready.elbos.names[0].options and ready.k_hat.readings
    service.capabilities(pool)
    assert pool.calls == 1  # read once per process
