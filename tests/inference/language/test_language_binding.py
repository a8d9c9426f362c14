"""Data binding: dataset fields become the entry function's arguments."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inference import bind_data, compile_source
from inference.language import DataBindingError

SOURCE = """
def model(N, x, counts, flags, scale=1.0, y=None):
    with pyro.plate("n", N):
        pyro.sample("y", dist.Normal(x * scale, 1.0), obs=y)
"""


@pytest.fixture(scope="module")
def program():
    return compile_source(SOURCE)


def test_conversion_rules(program):
    bound = bind_data(
        program,
        {
            "N": np.int64(3),
            "x": np.array([1.0, 2.0, 3.0]),
            "counts": [1, 2, 3],
            "flags": np.array([True, False, True]),
            "y": [0.5, 0.1, 0.2],
        },
    )
    kw = bound.kwargs
    assert kw["N"] == 3 and type(kw["N"]) is int
    assert kw["x"].dtype == torch.float32 and kw["counts"].dtype == torch.int64
    assert kw["flags"].dtype == torch.bool and kw["y"].dtype == torch.float32
    assert "scale" not in kw  # the keyword default applies
    assert bound.warnings == []


def test_float64_on_request_and_scalars_stay_python(program):
    bound = bind_data(
        program,
        {
            "N": 2,
            "x": [1.0, 2.0],
            "counts": np.array([1, 2], dtype=np.int32),
            "flags": [True, True],
            "scale": np.float32(2.5),
        },
        float_dtype="float64",
    )
    assert bound.kwargs["x"].dtype == torch.float64
    assert bound.kwargs["counts"].dtype == torch.int64
    assert bound.kwargs["scale"] == 2.5 and type(bound.kwargs["scale"]) is float


def test_torch_tensors_are_accepted(program):
    bound = bind_data(
        program,
        {
            "N": 2,
            "x": torch.ones(2, dtype=torch.float64),
            "counts": torch.ones(2, dtype=torch.int32),
            "flags": torch.ones(2, dtype=torch.bool),
        },
    )
    assert (
        bound.kwargs["x"].dtype == torch.float32
        and bound.kwargs["counts"].dtype == torch.int64
    )


def test_missing_field_lists_present_fields(program):
    with pytest.raises(DataBindingError) as err:
        bind_data(program, {"N": 2, "x": [1.0, 2.0], "flags": [True, False]})
    message = str(err.value)
    assert "'counts'" in message and "N, flags, x" in message
    assert err.value.kind == "data-binding"


def test_unused_fields_are_warnings(program):
    bound = bind_data(
        program, {"N": 1, "x": [1.0], "counts": [1], "flags": [True], "extra": [1, 2]}
    )
    assert len(bound.warnings) == 1 and "'extra'" in bound.warnings[0]


@pytest.mark.parametrize(
    "value, fragment",
    [
        ([1.0, float("nan")], "NaN"),
        (np.array([1.0, np.inf]), "NaN or infinite"),
        ("text", "text"),
        ({"__class__": 1}, "nested keys"),
        ([[1.0, 2.0], [3.0]], "rectangular"),
        (np.array(["a", "b"]), "only numbers"),
        (np.array([1 + 2j]), "complex"),
        (object(), "unsupported type"),
        (float("inf"), "NaN and infinite"),
    ],
)
def test_bad_values_are_data_binding_errors(program, value, fragment):
    with pytest.raises(DataBindingError) as err:
        bind_data(
            program, {"N": 2, "x": value, "counts": [1, 2], "flags": [True, True]}
        )
    assert fragment in str(err.value) and "'x'" in str(err.value)


def test_plate_size_contradicting_observed_length_is_reported(program):
    with pytest.raises(DataBindingError) as err:
        bind_data(
            program,
            {
                "N": 3,
                "x": [1.0, 2.0, 3.0],
                "counts": [1],
                "flags": [True],
                "y": [1.0, 2.0],
            },
        )
    assert "'y'" in str(err.value) and "N=3" in str(err.value)


def test_bad_dtype_option_and_non_mapping(program):
    with pytest.raises(DataBindingError):
        bind_data(program, {}, float_dtype="float16")
    with pytest.raises(DataBindingError):
        bind_data(program, [1, 2])  # type: ignore[arg-type]


def test_bound_data_runs_the_program(program):
    bound = bind_data(
        program,
        {
            "N": 3,
            "x": [1.0, 2.0, 3.0],
            "counts": [1, 2, 3],
            "flags": [True, False, True],
            "y": [1.0, 2.0, 3.0],
        },
    )
    program(**bound.kwargs)


def test_size_limit_applies_to_data():
    from inference.language import Limits

    small = compile_source(
        "def model(x):\n    pass", limits=Limits(max_tensor_elements=10)
    )
    with pytest.raises(DataBindingError) as err:
        bind_data(small, {"x": np.zeros(11)})
    assert "max_tensor_elements=10" in str(err.value)
