"""Engine tests: small models, few steps, fixed seeds, one torch thread (the CI machine
is shared; intra-op threads only add contention at these sizes)."""

import sys
from pathlib import Path

import pytest
import torch
import pyro

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _clean_pyro():
    pyro.clear_param_store()
    yield
    pyro.clear_param_store()
