"""Library hygiene (issue 9, part 3): ``fit``, ``validate`` and ``predict`` leave Pyro's and
torch's process-global state as they found it, even when user code raises; a handler left
on Pyro's stack by earlier code never sees a fit's messages; compile-time randomness is a
function of the job seed.

Every test starts from a deliberately unusual "caller" state (float64 default dtype, three
threads, validation off, a changed Pyro setting, a param in the store, advanced RNGs, and a
recording/rewriting handler on ``_PYRO_STACK``), so that "unchanged" means restored, not
"happened to be the default". The state is compared with a snapshot taken here, independent
of ``inference.engine.global_state``.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import pyro
import pyro.distributions as dist
import pyro.distributions.util as dist_util
import pyro.infer.util as infer_util
import pyro.poutine.util as poutine_util
from pyro.poutine import runtime
from pyro.poutine.messenger import Messenger

from inference import ModelLanguageError
from inference.fitting import FitCallbacks, FitFailed, fit, predict, prepare, validate

SOURCE = """
import pyro
import pyro.distributions as dist

noise = torch.randn(3)  # module level: runs at compile time
calls = []

def model(y):
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("obs", dist.Normal(mu, 1.0), obs=y)

def noisy_model(y):
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    pyro.deterministic("noise", noise)
    with pyro.plate("data", y.shape[0]):
        pyro.sample("obs", dist.Normal(mu + noise[0], 1.0), obs=y)

def broken_model(y):
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("obs", dist.Normal(mu, 1.0), obs=y[100])

def late_failing_model(y):
    # Fine through validation and the first training steps, then raises inside a plate.
    calls.append(1)
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    with pyro.plate("data", y.shape[0]):
        if len(calls) > 25:
            z = y[100]
        pyro.sample("obs", dist.Normal(mu, 1.0), obs=y)
"""
BAD_SYNTAX = "def model(y:\n    return 1\n"
Y = np.array([1.2, 0.8, 1.9, 1.4, 0.6, 1.1])


def spec(entry: str = "model", *, seed: int = 0, steps: int = 40, source: str = SOURCE, **inference):
    return {"model": {"source": source, "entry": entry},
            "guide": {"auto": "AutoNormal"},
            "inference": {"steps": steps, "seed": seed, "optimizer": {"lr": 0.05}, **inference},
            "outputs": {"num_samples": 20, "log_prob_draws": 20, "elbo_terms_every": 0}}


# ---------------------------------------------------------------- the caller's state
class Poison(Messenger):
    """What a hostile source could leave behind: reads every message, rewrites observed data."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def _pyro_sample(self, msg) -> None:
        self.seen.append(msg["name"])
        if msg["is_observed"]:
            msg["value"] = msg["value"] + 100.0

    def _pyro_param(self, msg) -> None:
        self.seen.append(msg["name"])


def take_snapshot() -> dict:
    store = pyro.get_param_store()
    return {
        "stack": [id(h) for h in runtime._PYRO_STACK],
        "dims": list(runtime._DIM_ALLOCATOR._stack),
        "enum": {k: (dict(v) if isinstance(v, dict) else v) for k, v in vars(runtime._ENUM_ALLOCATOR).items()},
        "store_dicts": (id(store._params), id(store._param_to_name), id(store._constraints)),
        "store": {name: id(value) for name, value in store._params.items()},
        "store_values": {name: value.detach().clone() for name, value in store._params.items()},
        "dtype": torch.get_default_dtype(),
        "grad": torch.is_grad_enabled(),
        "threads": torch.get_num_threads(),
        "validation": (dist_util._VALIDATION_ENABLED, infer_util._VALIDATION_ENABLED,
                       poutine_util._VALIDATION_ENABLED, torch.distributions.Distribution._validate_args),
        "settings": pyro.settings.get(),
        "torch_rng": torch.get_rng_state(),
        "python_rng": random.getstate(),
        "numpy_rng": np.random.get_state(),
    }


def assert_same(before: dict, after: dict) -> None:
    changed = []
    for key, a in before.items():
        b = after[key]
        if key == "torch_rng":
            same = torch.equal(a, b)
        elif key == "numpy_rng":
            same = a[0] == b[0] and np.array_equal(a[1], b[1]) and a[2:] == b[2:]
        elif key == "store_values":
            same = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        else:
            same = a == b
        if not same:
            changed.append(key)
    assert changed == [], f"global state changed: {changed}"


@pytest.fixture
def caller():
    """A process whose global state is nothing like the defaults, restored after the test."""
    saved_dtype, saved_threads = torch.get_default_dtype(), torch.get_num_threads()
    saved_settings = pyro.settings.get()
    saved_store = pyro.get_param_store().get_state()
    saved_stack = list(runtime._PYRO_STACK)
    pyro.clear_param_store()
    pyro.param("caller_param", torch.tensor([1.0, 2.0]))
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(3)
    pyro.enable_validation(False)
    pyro.settings.set(cholesky_relative_jitter=7.0)
    torch.manual_seed(1234)
    torch.randn(7)
    random.seed(99)
    np.random.seed(77)
    poison = Poison()
    poison.__enter__()
    try:
        yield poison
    finally:
        runtime._PYRO_STACK[:] = saved_stack
        pyro.enable_validation(True)
        pyro.settings.set(**saved_settings)
        torch.set_default_dtype(saved_dtype)
        torch.set_num_threads(saved_threads)
        pyro.clear_param_store()
        pyro.get_param_store().set_state(saved_store)


@pytest.fixture(scope="module")
def fitted():
    """A clean-process fit (no caller state) of ``model``: the reference and predict's input."""
    return fit(spec(), {"y": Y})


# ---------------------------------------------------------------- (a) success leaves state unchanged
def test_fit_leaves_global_state_unchanged(caller):
    before = take_snapshot()
    result = fit(spec(), {"y": Y})
    assert_same(before, take_snapshot())
    assert len(result.loss) == 40
    assert pyro.get_param_store()["caller_param"].tolist() == [1.0, 2.0]


def test_validate_leaves_global_state_unchanged(caller):
    before = take_snapshot()
    report = validate(spec(), {"y": Y})
    assert report.ok
    assert_same(before, take_snapshot())


def test_predict_leaves_global_state_unchanged(caller, fitted):
    before = take_snapshot()
    draws = predict(fitted, spec(), {"y": np.zeros(4)}, num_samples=10)
    assert draws["obs"].shape == (10, 4)
    assert_same(before, take_snapshot())


# ---------------------------------------------------------------- (b) failure leaves state unchanged
def fit_failing_half_way() -> None:
    """``late_failing_model`` passes validation, trains some steps, then raises."""
    progress = []
    with pytest.raises(ModelLanguageError, match="index 100 is out of bounds"):
        # Pyro's path: the fast path runs the model's Python only while recording its graph,
        # so a model that fails on its 26th call would fail after training there.
        fit(spec("late_failing_model", progress_every_steps=1, fast_path=False), {"y": Y},
            callbacks=FitCallbacks(on_progress=progress.append))
    assert 0 < len(progress) < 40, "the model must fail during training, not before or after"


def test_fit_whose_model_raises_mid_run_leaves_state_unchanged(caller):
    before = take_snapshot()
    fit_failing_half_way()
    assert_same(before, take_snapshot())
    assert caller.seen == []


def test_fit_whose_model_raises_at_once_leaves_state_unchanged(caller):
    before = take_snapshot()
    with pytest.raises(ModelLanguageError):
        fit(spec("broken_model"), {"y": Y})
    assert_same(before, take_snapshot())


@pytest.mark.parametrize("call", ["fit", "validate", "predict"])
def test_compile_error_leaves_state_unchanged(caller, fitted, call):
    bad = spec(source=BAD_SYNTAX)
    before = take_snapshot()
    with pytest.raises(ModelLanguageError):
        if call == "fit":
            fit(bad, {"y": Y})
        elif call == "validate":
            validate(bad, {"y": Y})
        else:
            predict(fitted, bad, {"y": Y}, num_samples=5)
    assert_same(before, take_snapshot())


def test_validate_whose_model_raises_leaves_state_unchanged(caller):
    before = take_snapshot()
    with pytest.raises(ModelLanguageError):
        validate(spec("broken_model"), {"y": Y})
    assert_same(before, take_snapshot())


def test_predict_whose_model_raises_leaves_state_unchanged(caller, fitted):
    before = take_snapshot()
    with pytest.raises((FitFailed, ModelLanguageError)):
        predict(fitted, spec("broken_model"), {"y": np.zeros(4)}, num_samples=5)
    assert_same(before, take_snapshot())


# ---------------------------------------------------------------- (c) a planted handler is invisible
def test_planted_handler_does_not_see_or_change_the_fit(caller, fitted):
    plate = pyro.plate("planted", 5)  # a poisoned process can hold a plate dim too
    plate.__enter__()
    caller.seen.clear()  # entering the plate sent one message through the poison
    try:
        result = fit(spec(), {"y": Y})
        assert caller.seen == []
        assert runtime._PYRO_STACK[-2:] == [caller, plate], "the caller's handlers must be restored"
        assert runtime._DIM_ALLOCATOR._stack == ["planted"]
    finally:
        plate.__exit__(None, None, None)
    assert result.loss == fitted.loss
    assert result.summary["mu"] == fitted.summary["mu"]
    # The poison would have moved the data by +100: the posterior mean would be near 101.
    assert abs(result.summary["mu"]["mean"] - Y.mean()) < 1.0


def test_planted_handler_does_not_see_validate_or_predict(caller, fitted):
    assert validate(spec(), {"y": Y}).ok
    draws = predict(fitted, spec(), {"y": np.zeros(4)}, num_samples=10)
    assert caller.seen == []
    assert runtime._PYRO_STACK[-1] is caller
    clean = predict(fitted, spec(), {"y": np.zeros(4)}, num_samples=10)
    assert np.array_equal(draws["obs"], clean["obs"])
    assert np.abs(draws["obs"]).max() < 50  # not shifted by the poison's +100


def test_planted_handler_still_works_after_the_fit(caller):
    fit(spec(steps=5), {"y": Y})
    pyro.sample("after", dist.Normal(0.0, 1.0), obs=torch.tensor(0.0))
    assert caller.seen == ["after"]


# ---------------------------------------------------------------- (d) a failed fit does not affect the next
def test_same_seed_same_losses_after_a_fit_that_raised_half_way(fitted):
    fit_failing_half_way()
    again = fit(spec(), {"y": Y})
    assert again.loss == fitted.loss
    assert again.summary == fitted.summary


def test_same_seed_same_losses_whatever_the_caller_rng(caller, fitted):
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    assert fit(spec(), {"y": Y}).loss == fitted.loss


# ---------------------------------------------------------------- (e) compile-time randomness
def compiled_noise(seed: int) -> list[float]:
    result = fit(spec("noisy_model", seed=seed, steps=3), {"y": Y})
    return result.samples["noise"][0].tolist()


def test_compile_time_randomness_follows_the_job_seed():
    torch.manual_seed(1)
    first = compiled_noise(7)
    torch.manual_seed(2)
    torch.randn(100)
    second = compiled_noise(7)
    assert first == second
    assert compiled_noise(8) != first


def test_compile_time_randomness_is_the_same_in_validate_and_fit():
    job_a = prepare(spec("noisy_model", seed=11), {"y": Y})
    torch.randn(10)  # the caller's stream moves on between the two compiles
    job_b = prepare(spec("noisy_model", seed=11), {"y": Y})
    trace_a = pyro.poutine.trace(job_a.model).get_trace(**job_a.kwargs)
    trace_b = pyro.poutine.trace(job_b.model).get_trace(**job_b.kwargs)
    assert torch.equal(trace_a.nodes["noise"]["value"], trace_b.nodes["noise"]["value"])


def test_compiling_does_not_move_the_caller_rng():
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    prepare(spec("noisy_model", seed=11), {"y": Y})
    assert torch.equal(torch.rand(4), expected)


def test_seeds_beyond_32_bits_are_accepted():
    # numpy takes 32-bit seeds only; pyro.set_rng_seed(2**40) raised ValueError.
    big = 2**40 + 5
    assert validate(spec(seed=big), {"y": Y}).ok
    assert compiled_noise(big) == compiled_noise(big)
