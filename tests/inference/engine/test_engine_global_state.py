"""``inference.engine.global_state``: snapshot, isolate, restore; leaked handlers closed."""

import random

import numpy as np
import pytest
import torch
import pyro
import pyro.distributions as dist
from pyro.poutine import runtime
from pyro.poutine.messenger import Messenger

from inference.engine.global_state import isolated, seed_all, seeded, snapshot


class Recorder(Messenger):
    def __init__(self):
        super().__init__()
        self.seen = []

    def _pyro_sample(self, msg):
        self.seen.append(msg["name"])


@pytest.fixture
def planted():
    handler = Recorder()
    handler.__enter__()
    try:
        yield handler
    finally:
        if handler in runtime._PYRO_STACK:
            runtime._PYRO_STACK.remove(handler)


def test_block_runs_on_a_clean_stack_and_store_and_the_callers_come_back(planted):
    pyro.param("outer", torch.ones(2))
    outer = pyro.get_param_store()._params["outer"]
    before = snapshot()
    with isolated(seed=0):
        assert runtime._PYRO_STACK == []
        assert list(pyro.get_param_store().keys()) == []
        pyro.param("inner", torch.zeros(3))
        pyro.sample("x", dist.Normal(0.0, 1.0))
    assert planted.seen == []
    assert before.differences(snapshot()) == []
    assert runtime._PYRO_STACK == [planted]
    assert list(pyro.get_param_store().keys()) == ["outer"]
    assert pyro.get_param_store()._params["outer"] is outer  # swapped back, not copied


def test_state_is_restored_when_the_block_raises(planted):
    before = snapshot()
    with pytest.raises(RuntimeError, match="boom"):
        with isolated(seed=0, float_dtype=torch.float64):
            pyro.enable_validation(False)
            torch.set_num_threads(torch.get_num_threads() + 1)
            pyro.settings.set(cholesky_relative_jitter=9.0)
            with pyro.plate("p", 3):
                raise RuntimeError("boom")
    assert before.differences(snapshot()) == []


def test_inside_the_block_settings_are_the_defaults_whatever_the_caller_set():
    pyro.enable_validation(False)
    jitter = pyro.settings.get("cholesky_relative_jitter")
    pyro.settings.set(cholesky_relative_jitter=jitter + 1.0)
    try:
        with torch.no_grad():
            with isolated(float_dtype=torch.float64):
                assert pyro.settings.get("cholesky_relative_jitter") == jitter
                assert pyro.settings.get("validate_poutine") is True
                assert torch.distributions.Distribution._validate_args is True
                assert torch.is_grad_enabled()
                assert torch.get_default_dtype() == torch.float64
            assert not torch.is_grad_enabled()
        assert pyro.settings.get("cholesky_relative_jitter") == jitter + 1.0
        assert pyro.settings.get("validate_poutine") is False
        assert torch.get_default_dtype() == torch.float32
    finally:
        pyro.settings.set(cholesky_relative_jitter=jitter)
        pyro.enable_validation(True)


def test_leaked_plate_iterator_is_closed_and_a_leaked_plate_frees_its_dim():
    before = snapshot()
    with isolated():
        iterator = iter(pyro.plate("sequential", 3))
        next(iterator)  # suspended inside `with self:` -> the plate sits on the stack
        vectorized = pyro.plate("vectorized", 4)
        vectorized.__enter__()
        assert len(runtime._PYRO_STACK) == 2 and runtime._DIM_ALLOCATOR._stack == ["vectorized"]
    assert iterator.gi_frame is None  # the generator was closed, not just unlinked
    assert runtime._PYRO_STACK == [] and runtime._DIM_ALLOCATOR._stack == []
    assert before.differences(snapshot()) == []
    # The same names can be used again: nothing stale is left in the allocator.
    with pyro.plate("vectorized", 4):
        pass


def test_a_plate_dim_held_by_the_caller_does_not_shift_the_blocks_dims():
    outer = pyro.plate("caller_plate", 2)
    outer.__enter__()
    try:
        with isolated():
            with pyro.plate("inner", 3) as p:
                assert runtime._DIM_ALLOCATOR._stack == ["inner"]
                assert p is not None
        assert runtime._DIM_ALLOCATOR._stack == ["caller_plate"]
    finally:
        outer.__exit__(None, None, None)


def test_seed_on_entry_makes_draws_independent_of_the_callers_rng():
    draws = []
    for caller_seed in (1, 2):
        torch.manual_seed(caller_seed)
        random.seed(caller_seed)
        np.random.seed(caller_seed)
        with isolated(seed=42):
            draws.append((torch.randn(3), random.random(), np.random.rand()))
    assert torch.equal(draws[0][0], draws[1][0]) and draws[0][1:] == draws[1][1:]


def test_seeded_restores_the_callers_rng():
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    expected = (torch.rand(2), random.random(), np.random.rand())
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    with seeded(123):
        inside = torch.rand(2)
    with seeded(123):
        assert torch.equal(torch.rand(2), inside)
    assert torch.equal(torch.rand(2), expected[0])
    assert random.random() == expected[1] and np.random.rand() == expected[2]


def test_seed_all_matches_pyro_below_32_bits_and_accepts_larger_seeds():
    pyro.set_rng_seed(2**32 - 1)
    a = (torch.rand(2), random.random(), np.random.rand())
    seed_all(2**32 - 1)
    b = (torch.rand(2), random.random(), np.random.rand())
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]
    seed_all(2**63 - 1)
    first = np.random.rand()
    seed_all(2**63 - 1)
    assert np.random.rand() == first


def test_differences_names_what_changed():
    before = snapshot()
    torch.rand(1)
    pyro.param("changed", torch.ones(1))
    assert set(before.differences(snapshot())) == {"torch_rng", "param_store"}


def test_anomaly_mode_is_restored():
    torch.autograd.set_detect_anomaly(True)
    try:
        with isolated():
            assert not torch.is_anomaly_enabled()
        assert torch.is_anomaly_enabled()
    finally:
        torch.autograd.set_detect_anomaly(False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_rng_is_restored_and_seeded():
    torch.cuda.init()
    torch.cuda.manual_seed_all(5)
    before = snapshot()
    with isolated(seed=3):
        first = torch.randn(3, device="cuda")
    with isolated(seed=3):
        assert torch.equal(torch.randn(3, device="cuda"), first)
        torch.randn(10, device="cuda")
    assert before.differences(snapshot()) == []
