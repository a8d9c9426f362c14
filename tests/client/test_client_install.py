"""The client installs alone (no torch, no server code) in a fresh venv and its unit tests
pass there. Slow (~1 min: a venv, httpx/typer/rich and pytest from the package index or
pip's cache), but it runs in CI like every other test."""

from __future__ import annotations

import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]


def _run(argv: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, **kwargs)


def test_client_installs_alone_and_its_unit_tests_pass(tmp_path: Path) -> None:
    home = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False, clear=True).create(home)
    python = str(home / "bin" / "python")

    # A copy of the package: the build must not write egg-info into the working tree.
    source = tmp_path / "client-src"
    shutil.copytree(REPO_ROOT / "client", source, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
    install = _run([python, "-m", "pip", "install", "-q", str(source), "pytest"])
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]

    probe = _run([python, "-c", "import vihub_client, httpx, typer, rich; print(vihub_client.__file__)"])
    assert probe.returncode == 0 and str(home) in probe.stdout, probe.stderr
    for absent in ("torch", "pyro", "numpy", "fastapi", "api", "inference", "store"):
        result = _run([python, "-c", f"import {absent}"], cwd=tmp_path)
        assert result.returncode != 0, f"{absent} is importable in the client-only venv"

    cli = _run([str(home / "bin" / "vihub"), "--help"])
    assert cli.returncode == 0 and "submit" in cli.stdout and "datasets" in cli.stdout, cli.stderr

    tests = tmp_path / "tests"
    shutil.copytree(REPO_ROOT / "tests" / "client" / "unit", tests, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    result = _run([python, "-m", "pytest", "-q", "-rs", str(tests)], cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and " failed" not in result.stdout
