"""docker-compose.yml and the Dockerfile: the production stack the docs describe.

The structure is checked with PyYAML (always); ``docker compose config -q`` (or the v1
``docker-compose``) validates the file against the Compose spec where a client exists.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_services_and_their_order(compose):
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "minio", "migrate", "api", "worker-cpu", "worker-gpu"}
    assert services["migrate"]["command"] == ["vihub", "migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker-cpu", "worker-gpu"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "/healthz" in " ".join(services["api"]["healthcheck"]["test"])
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]


def test_workers_queues_and_gpu_reservation(compose):
    services = compose["services"]
    assert services["worker-cpu"]["command"][:4] == ["vihub", "worker", "--queues", "cpu"]
    assert services["worker-gpu"]["command"][:4] == ["vihub", "worker", "--queues", "gpu"]
    devices = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert services["worker-gpu"]["environment"]["VIHUB_WORKER__GPU_MAX_TASKS_PER_CHILD"]


def test_production_environment(compose):
    for name in ("migrate", "api", "worker-cpu", "worker-gpu"):
        env = compose["services"][name]["environment"]
        assert env["VIHUB_DATABASE_URL"].startswith("postgresql")
        assert env["VIHUB_BROKER_URL"].startswith("redis://")
        assert env["VIHUB_AUTH"] == "required"


def test_dockerfile_pins_torch_and_has_a_gpu_variant():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert "-c constraints.txt" in dockerfile
    assert "ARG TORCH_VARIANT=cpu" in dockerfile
    assert "HEALTHCHECK" in dockerfile


def test_compose_config_validates():
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        argv = ["docker", "compose", "config", "-q"]
    elif shutil.which("docker-compose"):
        argv = ["docker-compose", "config", "-q"]
    else:
        pytest.skip("no docker compose client on this machine")
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
