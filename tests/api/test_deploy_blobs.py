"""docker-compose.yml wires the S3-compatible blob store (MinIO) to the API and workers."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_blob_store_service_and_wiring() -> None:
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    minio = services["minio"]
    assert minio["command"][:2] == ["server", "/data"] and "blobdata:/data" in minio["volumes"]
    for name in ("migrate", "api", "worker-cpu", "worker-gpu"):
        env = services[name]["environment"]
        assert env["VIHUB_BLOBS__BACKEND"] == "s3"
        assert "minio:9000" in env["VIHUB_BLOBS__S3_ENDPOINT_URL"]
        assert env["VIHUB_BLOBS__S3_ACCESS_KEY_ID"] and env["VIHUB_BLOBS__S3_SECRET_ACCESS_KEY"]
    for name in ("api", "worker-cpu", "worker-gpu"):
        assert services[name]["depends_on"]["minio"]["condition"] == "service_healthy"
    # Scaled workers must not pin a container name or a host port (--scale worker-cpu=N).
    assert "container_name" not in services["worker-cpu"] and "ports" not in services["worker-cpu"]
