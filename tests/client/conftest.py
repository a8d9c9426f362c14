"""The client's tests import ``vihub_client`` from ``client/`` even when the package is not
installed (``scripts/test.sh`` installs the server package; the client is a separate one)."""

from __future__ import annotations

import sys
from pathlib import Path

CLIENT_DIR = Path(__file__).resolve().parents[2] / "client"

try:
    import vihub_client  # noqa: F401
except ImportError:
    sys.path.insert(0, str(CLIENT_DIR))
