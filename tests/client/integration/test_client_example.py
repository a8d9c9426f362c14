"""``examples/eight_schools.py`` runs as a script against the live server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "eight_schools.py"


def test_eight_schools_example(live, api_key, tmp_path: Path) -> None:
    pytest.importorskip("arviz")
    result = subprocess.run([sys.executable, str(EXAMPLE)], env=live.client_env(api_key), cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:] + live.logs()
    assert "  mu: mean" in result.stdout and "k-hat:" in result.stdout
    # The progress bar ends full: at the step cap, or where stop "auto" ended the fit.
    assert re.search(r"\b(\d+)/\1\b", result.stderr), result.stderr[-500:]
    assert (tmp_path / "eight_schools_results" / "samples.npz").is_file()
