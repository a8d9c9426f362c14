"""Decoding result downloads and building ArviZ InferenceData (numpy/arviz optional).

Key convention, the same as the server's NPZ files so JSON and NPZ give the same dict:
samples are ``{site: draws}`` plus ``{"predictive/<site>": draws}``; trace log-probs are
``log_joint``, ``log_q``, ``log_weight`` and ``model_sites/<site>``, ``guide_sites/<site>``,
``pointwise/<site>``.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any


def have_numpy() -> bool:
    try:
        import numpy  # noqa: F401
    except ImportError:
        return False
    return True


def load_npz(content: bytes) -> dict[str, Any]:
    import numpy as np

    # Never unpickle bytes from the network.
    with np.load(io.BytesIO(content), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"model_sites": {"mu": [...]}}`` -> ``{"model_sites/mu": [...]}`` (leaves: lists / numbers)."""
    out: dict[str, Any] = {}
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}/{key}" if prefix else str(key)))
    elif prefix:
        out[prefix] = tree
    return out


def samples_from_json(body: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(body.get("samples") or {})
    out.update({f"predictive/{k}": v for k, v in (body.get("predictive") or {}).items()})
    return out


def log_probs_from_json(body: Mapping[str, Any]) -> dict[str, Any]:
    return flatten(body.get("log_probs") or {})


def as_arrays(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Lists -> numpy arrays when numpy is installed (``None`` -> nan in float arrays)."""
    if not have_numpy():
        return dict(mapping)
    import numpy as np

    out = {}
    for key, value in mapping.items():
        try:
            array = np.asarray(value)
            if array.dtype == object:
                array = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            out[key] = value
            continue
        out[key] = array
    return out


def inference_data(samples: Mapping[str, Any], log_probs: Mapping[str, Any], attrs: Mapping[str, Any] | None = None) -> Any:
    """ArviZ ``InferenceData`` from the flat sample and log-prob dicts (one chain).

    Groups, filled where the job has them: ``posterior`` (latent and deterministic sites),
    ``posterior_predictive`` (``predictive/<site>``), ``log_likelihood`` (``pointwise/<site>``:
    per draw and observation, what ``az.loo`` needs), ``sample_stats`` (``lp`` = log p(x, z),
    ``log_q``, ``log_weight``). The same layout as the server's netCDF download.
    """
    try:
        import arviz as az
        import numpy as np
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("to_arviz() needs the arviz extra: pip install 'vihub-client[arviz]'") from exc

    def chains(arrays: Mapping[str, Any]) -> dict[str, Any]:
        return {k: np.asarray(v)[None, ...] for k, v in arrays.items()}

    posterior = {k: v for k, v in samples.items() if not k.startswith("predictive/")}
    predictive = {k[len("predictive/"):]: v for k, v in samples.items() if k.startswith("predictive/")}
    pointwise = {k[len("pointwise/"):]: v for k, v in log_probs.items() if k.startswith("pointwise/")}
    stats = {
        name: log_probs[key]
        for name, key in (("lp", "log_joint"), ("log_q", "log_q"), ("log_weight", "log_weight"))
        if key in log_probs
    }
    groups: dict[str, Any] = {"posterior": chains(posterior)}
    if predictive:
        groups["posterior_predictive"] = chains(predictive)
    if pointwise:
        groups["log_likelihood"] = chains(pointwise)
    if stats:
        groups["sample_stats"] = chains(stats)
    return az.from_dict(**groups, attrs=dict(attrs or {}))


def open_netcdf(content: bytes) -> Any:
    """ArviZ InferenceData from netCDF bytes (the server's ``?format=netcdf``)."""
    import os
    import tempfile

    import arviz as az

    fd, path = tempfile.mkstemp(suffix=".nc")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        return az.from_netcdf(path)  # lazy=False (default): read fully before unlink
    finally:
        try:
            os.unlink(path)
        except OSError:  # pragma: no cover - Windows keeps open files
            pass
