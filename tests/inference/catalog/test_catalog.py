"""The catalog: every model compiles in the language, its trace matches the same model
written directly in Pyro (``catalog_reference_models.py``), its example data fits its
schema, and a few SVI steps with its suggested settings give a finite loss."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pyro
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

import catalog_checks as checks
import catalog_reference_models as reference

from inference import catalog
from inference.errors import InferenceError

NAMES = catalog.names()
REQUIRED = {
    "eight_schools_centered",
    "eight_schools_noncentered",
    "linear_regression",
    "logistic_regression",
    "poisson_regression",
    "hierarchical_intercept",
    "gaussian_mixture",
    "hmm",
    "vae",
}
MAX_PLATE_NESTING = {"gaussian_mixture": 1, "hmm": 1}
# Models written to run on a batch of posterior draws at once (Predictive(parallel=True)),
# which the results module uses for samples and log-probs; the others fall back to one
# draw at a time there.
VECTORISED = {
    "eight_schools_centered",
    "eight_schools_noncentered",
    "linear_regression",
    "logistic_regression",
    "poisson_regression",
    "hierarchical_intercept",
    "vae",
    "arK",
    "gp_pois_regr",
}


def language():
    """The language package, or a skip while it is not importable."""
    import inference.language as lang

    return lang


def example_tensors(entry) -> dict:
    """The example data as the language binds it by default: float32 / int64 tensors,
    Python numbers for scalars."""
    out = {}
    for field, value in entry.example_data.items():
        if isinstance(value, np.ndarray):
            dtype = (
                torch.float32
                if entry.data_schema[field]["dtype"] == "float"
                else torch.int64
            )
            out[field] = torch.as_tensor(value, dtype=dtype)
        else:
            out[field] = value
    return out


@pytest.fixture(autouse=True)
def _fresh_pyro_state():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()


# ---------------------------------------------------------------- catalog contents


def test_names_lists_every_model():
    assert REQUIRED <= set(NAMES)
    assert set(NAMES) == set(reference.MODELS), "every catalog model needs a reference"
    assert len(NAMES) == len(set(NAMES))


@pytest.mark.parametrize("name", NAMES)
def test_entry_fields_are_populated(name):
    entry = catalog.get(name)
    assert entry.name == name
    assert f"def {entry.entry}(" in entry.source
    assert entry.source.lstrip().startswith('"""'), "source opens with its docstring"
    assert "import pyro" in entry.source
    assert len(entry.description) > 40 and entry.description in entry.source
    assert entry.example_data and entry.data_schema
    suggested = entry.suggested
    assert set(suggested) == {"guide", "inference"}
    assert "auto" in suggested["guide"] or suggested["guide"]["source"] == entry.source
    assert suggested["inference"]["elbo"]["name"] in {"Trace_ELBO", "TraceEnum_ELBO"}
    assert suggested["inference"]["optimizer"]["lr"] > 0
    assert suggested["inference"]["steps"] >= 100
    if name in reference.ENUMERATED:
        assert suggested["inference"]["elbo"]["name"] == "TraceEnum_ELBO"
        assert "@config_enumerate" in entry.source


@pytest.mark.parametrize("name", NAMES)
def test_suggested_settings_are_a_valid_job_spec(name):
    import inference.spec as spec_module
    entry = catalog.get(name)
    spec = spec_module.JobSpec.model_validate(
        {"model": {"catalog": name}, **entry.suggested}
    )
    assert spec.inference.steps == entry.suggested["inference"]["steps"]
    assert spec.inference.elbo.name == entry.suggested["inference"]["elbo"]["name"]


def test_eight_schools_reference_posterior():
    for name in ("eight_schools_centered", "eight_schools_noncentered"):
        posterior = catalog.get(name).reference["posterior"]
        assert posterior["mu"]["mean"] == pytest.approx(4.4, abs=0.1)


def test_get_returns_a_fresh_copy():
    first = catalog.get("eight_schools_centered")
    first.example_data["y"][0] = 1e9
    first.suggested["inference"]["steps"] = 1
    second = catalog.get("eight_schools_centered")
    assert second.example_data["y"][0] == 28.0
    assert second.suggested["inference"]["steps"] != 1
    with pytest.raises(AttributeError):
        second.name = "other"  # frozen


def test_unknown_name_raises_catalog_error():
    with pytest.raises(catalog.CatalogError) as info:
        catalog.get("eight_schools_typo")
    error = info.value
    assert isinstance(error, KeyError) and isinstance(error, InferenceError)
    assert error.kind == "unknown-catalog-model"
    assert "eight_schools_centered" in str(error) and "eight_schools_typo" in str(error)
    assert error.to_dict()["available"] == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_example_data_matches_schema(name):
    entry = catalog.get(name)
    data, schema = entry.example_data, entry.data_schema
    assert set(data) == set(schema)
    sizes: dict[str, int] = {}
    for field, spec in schema.items():
        value = data[field]
        assert spec["dtype"] in {"float", "int"} and spec["description"]
        if not spec["shape"]:
            assert type(value) is (float if spec["dtype"] == "float" else int), field
            continue
        assert isinstance(value, np.ndarray), field
        assert value.dtype == (np.float64 if spec["dtype"] == "float" else np.int64), (
            field
        )
        assert value.ndim == len(spec["shape"]), field
        assert np.all(np.isfinite(value)), field
        for size, dim in zip(spec["shape"], value.shape):
            if isinstance(size, int):
                assert dim == size, (field, size)
            else:
                assert sizes.setdefault(size, dim) == dim, (field, size)
    for size, dim in sizes.items():
        if size in data:  # a size named after an integer field must equal it
            assert data[size] == dim, size


# ---------------------------------------------------------------- the catalog source is plain Pyro


@pytest.mark.parametrize("name", NAMES)
def test_catalog_source_as_plain_python_matches_reference(name):
    """Run as ordinary Python the catalog text is the reference model: so any mismatch in
    the language tests below is the language's, not the catalog's."""
    entry = catalog.get(name)
    kwargs = example_tensors(entry)
    plain = checks.load_plain_python(name, entry.entry)
    if name in reference.ENUMERATED:
        losses, traces = checks.enumerated_comparison(
            plain,
            reference.MODELS[name],
            kwargs,
            MAX_PLATE_NESTING[name],
            entry.suggested["guide"]["expose"],
        )
        assert losses[0] == pytest.approx(losses[1], rel=1e-6, abs=1e-5)
        checks.assert_same_traces(*traces)
    else:
        checks.assert_same_traces(
            *checks.trace_pair(plain, reference.MODELS[name], kwargs)
        )
    if entry.guide_entry:
        plain_guide = checks.load_plain_python(name, entry.guide_entry)
        checks.assert_same_traces(
            *checks.trace_pair(plain_guide, reference.GUIDES[name], kwargs)
        )


# ---------------------------------------------------------------- through the language


def compiled(name, entry_name=None):
    lang = language()
    entry = catalog.get(name)
    program = lang.compile_source(entry.source, entry_name or entry.entry)
    bound = lang.bind_data(program, entry.example_data)
    return program, bound


@pytest.mark.parametrize("name", NAMES)
def test_compiles_and_binds_example_data(name):
    entry = catalog.get(name)
    program, bound = compiled(name)
    assert bound.warnings == []
    expected = example_tensors(entry)
    assert set(bound.kwargs) == set(expected)
    for field, value in expected.items():
        got = bound.kwargs[field]
        if isinstance(value, torch.Tensor):
            assert isinstance(got, torch.Tensor) and got.dtype == value.dtype, field
            torch.testing.assert_close(got, value)
        else:
            assert got == value and type(got) is type(value), field
    parameters = dict(program.parameters)
    assert set(parameters) == set(entry.data_schema)
    required = {field for field, has_default in parameters.items() if not has_default}
    assert required <= set(entry.data_schema)


@pytest.mark.parametrize("name", sorted(VECTORISED))
def test_runs_on_a_batch_of_posterior_draws(name):
    entry = catalog.get(name)
    program, bound = compiled(name)
    custom_guide = compiled(name, entry.guide_entry)[0] if entry.guide_entry else None
    guide = checks.suggested_svi(entry.suggested, program, custom_guide).guide
    guide(**bound.kwargs)  # creates the guide's parameters
    num_draws = 5
    predictive = pyro.infer.Predictive(
        program, guide=guide, num_samples=num_draws, parallel=True
    )
    draws = predictive(**bound.kwargs)
    one_trace = pyro.poutine.trace(program).get_trace(**bound.kwargs)
    for site_name, value in draws.items():
        site = one_trace.nodes[site_name]
        expected = (num_draws, *site["value"].shape)
        assert value.shape[0] == num_draws and value.numel() == math.prod(expected), (
            site_name
        )


@pytest.mark.parametrize("name", NAMES)
def test_runs_in_float64_under_float64_default_dtype(name):
    """No catalog source hard-codes float32: compiled, bound and run with torch's default
    dtype set to float64 (as a float64 job must run), every log-density is float64.
    (With float64 data but the float32 default, ``X @ beta`` mixes a float64 matrix with
    float32 prior draws and fails: an engine running float64 jobs must set the default.)"""
    lang = language()
    entry = catalog.get(name)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        program = lang.compile_source(entry.source, entry.entry)
        bound = lang.bind_data(program, entry.example_data, float_dtype="float64")
        trace = pyro.poutine.trace(program).get_trace(**bound.kwargs)
        trace.compute_log_prob()
    finally:
        torch.set_default_dtype(previous)
    for site_name, site in trace.nodes.items():
        if site["type"] == "sample" and "log_prob" in site:
            assert site["log_prob"].dtype == torch.float64, site_name
    assert math.isfinite(trace.log_prob_sum().item())


@pytest.mark.parametrize("name", [n for n in NAMES if n not in reference.ENUMERATED])
def test_trace_matches_reference(name):
    program, bound = compiled(name)
    candidate_trace, native_trace = checks.trace_pair(
        program, reference.MODELS[name], bound.kwargs
    )
    checks.assert_same_traces(candidate_trace, native_trace)
    # A second seed: other latent values, still the same log-density.
    checks.assert_same_traces(
        *checks.trace_pair(program, reference.MODELS[name], bound.kwargs, seed=1)
    )


@pytest.mark.parametrize("name", sorted(reference.ENUMERATED))
def test_enumerated_model_matches_reference(name):
    program, bound = compiled(name)
    expose = catalog.get(name).suggested["guide"]["expose"]
    losses, traces = checks.enumerated_comparison(
        program, reference.MODELS[name], bound.kwargs, MAX_PLATE_NESTING[name], expose
    )
    assert all(math.isfinite(loss) for loss in losses)
    assert losses[0] == pytest.approx(losses[1], rel=1e-6, abs=1e-5)
    checks.assert_same_traces(*traces)
    enumerated = [
        s
        for s in traces[0].nodes.values()
        if s["type"] == "sample" and s["infer"].get("_enumerate_dim") is not None
    ]
    assert enumerated, "discrete sites were not enumerated"


def test_vae_guide_matches_reference():
    guide, bound = compiled("vae", "guide")
    checks.assert_same_traces(
        *checks.trace_pair(guide, reference.GUIDES["vae"], bound.kwargs)
    )


@pytest.mark.parametrize("name", NAMES)
def test_suggested_settings_run_svi(name):
    entry = catalog.get(name)
    program, bound = compiled(name)
    custom_guide = compiled(name, entry.guide_entry)[0] if entry.guide_entry else None
    svi = checks.suggested_svi(entry.suggested, program, custom_guide)
    pyro.set_rng_seed(0)
    losses = [svi.step(**bound.kwargs) for _ in range(5)]
    assert all(math.isfinite(loss) for loss in losses), losses
    params = pyro.get_param_store()
    assert len(params) > 0
    assert all(torch.isfinite(params[p]).all() for p in params)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, expected, tolerance",
    [
        # posteriordb's NUTS reference: mu has mean 4.4 and sd 3.3
        ("eight_schools_noncentered", {"mu": 4.4}, 1.0),
        ("poisson_regression", {"alpha": 1.0, "beta": 0.6}, 0.15),
    ],
)
def test_suggested_fit_through_language_recovers_reference(name, expected, tolerance):
    """The full suggested fit of the compiled model lands on the catalog's reference."""
    entry = catalog.get(name)
    reference_values = (
        entry.reference.get("posterior") or entry.reference["true_values"]
    )
    for site, value in expected.items():
        got = (
            reference_values[site]["mean"]
            if "posterior" in entry.reference
            else reference_values[site]
        )
        assert got == pytest.approx(value)
    program, bound = compiled(name)
    svi = checks.suggested_svi(entry.suggested, program)
    pyro.set_rng_seed(0)
    pyro.enable_validation(False)
    try:
        for _ in range(entry.suggested["inference"]["steps"]):
            svi.step(**bound.kwargs)
    finally:
        pyro.enable_validation(True)
    # AutoNormal's median of an unconstrained site is its posterior mean.
    medians = svi.guide.median(**bound.kwargs)
    for site, value in expected.items():
        assert medians[site].item() == pytest.approx(value, abs=tolerance), site
