from __future__ import annotations

import pytest
from client_fakes import FakeServer


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()
