"""The ``vihub`` client commands via typer's CliRunner, against the fake server."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from client_fakes import job_json, problem, sse
from typer.testing import CliRunner
from vihub_client import cli

runner = CliRunner()


@pytest.fixture
def app(server, monkeypatch):
    monkeypatch.setattr(cli, "_client", lambda url, key: server.client())
    return cli.make_app(with_server=False)


def test_submit_catalog_model_quiet_prints_id(app, server) -> None:
    server.add("POST", "/v1/jobs", httpx.Response(202, json=job_json("job_9")))
    result = runner.invoke(app, ["submit", "catalog:eight_schools_noncentered", "--guide", "AutoNormal",
                                 "--elbo", "TraceMeanField_ELBO", "--steps", "500", "--lr", "0.05", "--seed", "3",
                                 "--num-samples", "200", "-l", "team=a", "-q"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "job_9"
    body = json.loads(server.requests[0].content)
    assert body == {
        "model": {"catalog": "eight_schools_noncentered"},
        "guide": {"auto": "AutoNormal"},
        "inference": {"elbo": {"name": "TraceMeanField_ELBO"}, "optimizer": {"lr": 0.05}, "steps": 500, "seed": 3},
        "outputs": {"num_samples": 200},
        "labels": {"team": "a"},
    }
    assert server.requests[0].headers.get("Idempotency-Key")


def test_submit_file_with_data_and_watch(app, server, tmp_path: Path) -> None:
    model = tmp_path / "model.py"
    model.write_text("def model(y):\n    pass\n")
    data = tmp_path / "data.csv"
    data.write_text("y\n1.0\n2.0\n")
    server.add("POST", "/v1/datasets", httpx.Response(201, json={"id": "ds_1", "sha256": "x", "fields": []}))
    server.add("POST", "/v1/jobs", httpx.Response(202, json=job_json("j")))
    server.add("GET", "/v1/jobs/j/events", httpx.Response(200, content=sse(
        ("end", {"id": "j", "state": "succeeded", "error": None}, 10))))
    server.add("GET", "/v1/jobs/j", httpx.Response(200, json=job_json("j", "succeeded", 100)))
    result = runner.invoke(app, ["submit", str(model), "--data", str(data), "--watch"])
    assert result.exit_code == 0, result.output
    assert "submitted j" in result.stdout and "succeeded" in result.stderr
    assert json.loads(server.calls("POST", "/v1/jobs")[0].content)["model"]["source"].startswith("def model")


def test_watch_failed_job_exits_1(app, server) -> None:
    error = {"type": "https://vihub.dev/problems/non-finite-loss", "title": "Non finite loss", "status": 422,
             "detail": "loss is nan at step 3"}
    server.add("GET", "/v1/jobs/j", httpx.Response(200, json=job_json("j", "failed", 3, error=error)))
    result = runner.invoke(app, ["watch", "j"])
    assert result.exit_code == 1
    assert "Job failed" in result.stderr and "loss is nan at step 3" in result.stderr


def test_api_error_exits_3_with_title_and_detail(app, server) -> None:
    server.add("GET", "/v1/jobs/nope", problem(404, "job-not-found", "Job not found", "No job 'nope' in this account."))
    result = runner.invoke(app, ["status", "nope"])
    assert result.exit_code == 3
    assert "Job not found (404)" in result.stderr and "No job 'nope' in this account." in result.stderr


def test_validation_error_lists_pointers(app, server, tmp_path: Path) -> None:
    model = tmp_path / "m.py"
    model.write_text("import os\ndef model():\n    pass\n")
    server.add("POST", "/v1/jobs", problem(422, "forbidden-construct", "Forbidden construct",
                                           "import os is not allowed", line=1, col=1, pointer="/model/source"))
    result = runner.invoke(app, ["submit", str(model)])
    assert result.exit_code == 3
    assert "Forbidden construct (422)" in result.stderr and "line 1, column 1" in result.stderr


def test_usage_errors_exit_2(app, server, tmp_path: Path) -> None:
    assert runner.invoke(app, ["submit", str(tmp_path / "missing.py")]).exit_code == 2
    assert runner.invoke(app, ["submit", "catalog:x", "--data", str(tmp_path / "no.csv")]).exit_code == 2
    assert runner.invoke(app, ["submit"]).exit_code == 2
    assert runner.invoke(app, ["results", "j", "--format", "xml"]).exit_code == 2
    assert runner.invoke(app, ["no-such-command"]).exit_code == 2
    assert server.requests == []


def test_connection_refused_exits_3(monkeypatch) -> None:
    def refuse(request):
        raise httpx.ConnectError("refused", request=request)

    from vihub_client import Client

    def client(url, key):
        c = Client("http://127.0.0.1:9", transport=httpx.MockTransport(refuse), retries=0)
        return c

    monkeypatch.setattr(cli, "_client", client)
    result = runner.invoke(cli.make_app(with_server=False), ["jobs"])
    assert result.exit_code == 3 and "Could not reach the vihub server" in result.stderr


def test_status_jobs_cancel(app, server) -> None:
    server.add("GET", "/v1/jobs/j", httpx.Response(200, json=job_json("j", "running", 30, loss=2.5, labels={"a": "b"})))
    server.add("GET", "/v1/jobs", httpx.Response(200, json={"items": [job_json("j", "running", 30), job_json("k")],
                                                            "next_page_token": None}))
    server.add("POST", "/v1/jobs/j/cancel", httpx.Response(202, json=job_json("j", "cancelled", 30)))
    result = runner.invoke(app, ["status", "j"])
    assert result.exit_code == 0 and "step 30/100" in result.stdout and "a=b" in result.stdout
    result = runner.invoke(app, ["status", "j", "--json"])
    assert json.loads(result.stdout)["id"] == "j"
    result = runner.invoke(app, ["jobs", "--state", "running", "--limit", "5"])
    assert result.exit_code == 0 and "j" in result.stdout and "k" in result.stdout
    assert server.calls("GET", "/v1/jobs")[0].url.params.get_list("state") == ["running"]
    result = runner.invoke(app, ["jobs", "--json"])
    assert [j["id"] for j in json.loads(result.stdout)] == ["j", "k"]
    result = runner.invoke(app, ["cancel", "j"])
    assert result.exit_code == 0 and "cancelled" in result.stdout


def test_results_catalog_validate_datasets(app, server, tmp_path: Path) -> None:
    server.add("GET", r"/v1/jobs/j/.*", lambda r, _: httpx.Response(200, content=b"{}"))
    server.add("GET", "/v1/jobs/j", httpx.Response(200, json=job_json("j", "succeeded")))
    result = runner.invoke(app, ["results", "j", "--format", "json", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [
        "diagnostics.json", "job.json", "log_probs.json", "loss.json", "params.json", "samples.json", "summary.json"]

    server.add("GET", "/v1/catalog", httpx.Response(200, json={"items": [
        {"name": "eight_schools_noncentered", "description": "Eight schools", "href": "/v1/catalog/eight_schools_noncentered"}]}))
    result = runner.invoke(app, ["catalog"])
    assert result.exit_code == 0 and "eight_schools_noncentered" in result.stdout

    server.add("POST", "/v1/validate", httpx.Response(200, json={"ok": True, "report": {}, "warnings": ["unused field x"]}))
    result = runner.invoke(app, ["validate", "catalog:eight_schools_noncentered"])
    assert result.exit_code == 0 and "ok" in result.stdout and "unused field x" in result.stdout

    data = tmp_path / "d.npz"
    data.write_bytes(b"PK\x03\x04fake")
    server.add("POST", "/v1/datasets", httpx.Response(201, json={
        "id": "ds_7", "sha256": "abc", "fields": [{"name": "y", "shape": [8], "dtype": "float64"}]}))
    result = runner.invoke(app, ["datasets", "upload", str(data), "-q"])
    assert result.exit_code == 0 and result.stdout.strip() == "ds_7"


def _install_fake_commands(monkeypatch, tmp_path: Path, dist: str, entry_points: str, module: str,
                           source: str) -> None:
    """A throwaway installed distribution (a dist-info folder on sys.path) that registers
    commands in the ``vihub.commands`` group: the real discovery path, no monkeypatched
    lookups."""
    import sys

    info = tmp_path / f"{dist.replace('-', '_')}-9.9.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 9.9\n")
    (info / "entry_points.txt").write_text(f"[vihub.commands]\n{entry_points}\n")
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)


FAKE_SERVER = """
import typer

app = typer.Typer(name="vihub")  # named: a plain add_typer would nest it
keys = typer.Typer()
app.add_typer(keys, name="keys")


@app.command()
def up() -> None:
    print("server up")


@app.command()
def submit() -> None:  # clashes with a client command: the client's wins
    print("server submit")


@keys.command("create")
def keys_create() -> None:
    print("key created")
"""


def test_registered_commands_join_the_program(monkeypatch, tmp_path: Path, server) -> None:
    _install_fake_commands(monkeypatch, tmp_path, "fake-server", "server = fake_vihub_server:app",
                           "fake_vihub_server", FAKE_SERVER)
    monkeypatch.setattr(cli, "_client", lambda url, key: server.client())
    app = cli.make_app()
    assert runner.invoke(app, ["up"]).stdout.strip() == "server up"
    assert runner.invoke(app, ["keys", "create"]).stdout.strip() == "key created"
    help_text = runner.invoke(app, ["--help"]).stdout
    assert "submit" in help_text and "datasets" in help_text and "up" in help_text
    # The client's own `submit` is kept (it asks for a model, the fake one takes nothing).
    assert runner.invoke(app, ["submit"]).exit_code == 2
    # --version names every distribution that adds commands.
    assert "fake-server 9.9" in runner.invoke(app, ["--version"]).stdout.splitlines()
    assert "up" not in runner.invoke(cli.make_app(with_server=False), ["--help"]).stdout.split()


def test_client_commands_alone_without_registered_commands(monkeypatch) -> None:
    monkeypatch.setattr(cli, "entry_points", lambda group: [])
    app = cli.make_app()
    assert runner.invoke(app, ["up"]).exit_code == 2
    assert "submit" in runner.invoke(app, ["--help"]).stdout
    assert runner.invoke(app, ["--version"]).stdout.splitlines() == [f"vihub-client {cli.__version__}"]


def test_a_broken_registration_does_not_break_the_client(monkeypatch, tmp_path: Path) -> None:
    _install_fake_commands(monkeypatch, tmp_path, "broken-server", "server = fake_broken_server:app",
                           "fake_broken_server", "import a_module_that_is_not_installed\n")
    app = cli.make_app()
    assert "submit" in runner.invoke(app, ["--help"]).stdout


def test_a_registration_that_is_not_a_typer_app_is_an_error(monkeypatch, tmp_path: Path) -> None:
    _install_fake_commands(monkeypatch, tmp_path, "odd-server", "server = fake_odd_server:app",
                           "fake_odd_server", "app = 42\n")
    with pytest.raises(TypeError, match="not a typer.Typer"):
        cli.make_app()


def test_installed_client_registers_its_sweep_commands() -> None:
    # Needs the client installed from this tree (`pip install -e client`): entry points
    # live in the distribution's metadata. `sweep` and `compare` reach the program this way.
    from importlib.metadata import entry_points

    registered = {(cli._dist_name(e), e.value) for e in entry_points(group=cli.COMMANDS_GROUP)}
    assert ("vihub-client", "vihub_client.cli_sweeps:app") in registered
    help_text = runner.invoke(cli.make_app(with_server=False), ["--help"]).stdout
    assert {"sweep", "compare", "submit"} <= set(help_text.replace("│", " ").split())
