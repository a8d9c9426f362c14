"""Canonical NPZ: content-addressed, pickle-free, scalars come back as scalars."""

from __future__ import annotations

import numpy as np
import pytest

from common.arrays import decode_arrays, encode_arrays


def test_same_data_same_sha_in_any_key_order() -> None:
    a = encode_arrays({"y": [28.0, 8.0, -3.0], "J": 3})
    b = encode_arrays({"J": 3, "y": np.array([28.0, 8.0, -3.0])})
    assert a.sha256 == b.sha256 and a.content == b.content
    assert a.fields == {"J": {"dtype": "int64", "shape": []}, "y": {"dtype": "float64", "shape": [3]}}


def test_round_trip_keeps_scalars_as_python_numbers() -> None:
    data = decode_arrays(encode_arrays({"J": 8, "sigma": np.ones((2, 3), dtype=np.float32)}).content)
    assert data["J"] == 8 and isinstance(data["J"], int)
    assert data["sigma"].shape == (2, 3) and data["sigma"].dtype == np.float32


def test_object_arrays_are_refused() -> None:
    with pytest.raises(ValueError):
        encode_arrays({"x": np.array([{"a": 1}], dtype=object)})


def test_canonical_digest_is_pinned() -> None:
    # Datasets are addressed by this digest: a change in how the NPZ is written would make
    # equal data stored twice. (Digest of the original writestr-based encoder.)
    data = {"J": 8, "y": [28, 8, -3], "s": 1.5, "b": True}
    assert encode_arrays(data).sha256 == "81a811f694aeb579244335a294f568eaedaf89cb05db6fd82f2739a5762dc56e"
    f = np.asfortranarray(np.arange(20.0).reshape(4, 5))
    import io
    import zipfile

    member = zipfile.ZipFile(io.BytesIO(encode_arrays({"f": f, "e": np.zeros((0, 2))}).content)).read("f.npy")
    expected = io.BytesIO()
    np.lib.format.write_array(expected, np.ascontiguousarray(f), allow_pickle=False)
    assert member == expected.getvalue()
