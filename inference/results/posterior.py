"""Posterior draws, posterior predictive draws and their per-site summaries.

Draws come from the guide, with ``pyro.infer.Predictive`` semantics: latent sites are the
guide's draws, deterministic sites are recomputed by the model, and observed sites are
resampled (posterior predictive) by running the model under ``poutine.uncondition``.

Enumerated models: the guide does not cover discrete sites that the model enumerates.
Their draws are made from their exact conditional posterior p(z_d | x, z_guide) with
``pyro.infer.infer_discrete`` (temperature 1) given each guide draw, so that the joint
(z_guide, z_d) is a posterior draw; the posterior predictive then resamples the observed
sites given both.

Draws are vectorised with an outermost plate (like ``Predictive(parallel=True)``); if the
model cannot be vectorised (a site without a declared plate, data-dependent control flow),
the draws fall back to a loop, one model run per draw.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.infer import infer_discrete

from inference.engine.elbos import infer_max_plate_nesting

from .formats import to_numpy
from ._traces import (
    ScopedReplay,
    check_vectorised_draw,
    draws_first,
    is_sample_site,
    site_roles,
    traced_pair,
    uncondition_observed,
    vectorized,
)

QUANTILES = {"q05": 0.05, "q50": 0.5, "q95": 0.95}


def _draw_block(model, guide, kwargs, num, mpn, roles, want_predictive, vectorise):
    """One block of ``num`` draws -> (samples, predictive) as tensors with draws first."""
    if vectorise:
        model_run = vectorized(model, num, mpn)
        first_dim = -(mpn + 2)
    else:
        model_run, first_dim = model, -(mpn + 1)
    guide_trace, _ = traced_pair(model, guide, kwargs, num=num if vectorise else None, max_plate_nesting=mpn)
    if roles.enumerated:
        conditioned = infer_discrete(
            ScopedReplay(trace=guide_trace)(model_run), first_available_dim=first_dim, temperature=1
        )
    else:
        conditioned = poutine.replay(model_run, trace=guide_trace)
    model_trace = poutine.trace(conditioned).get_trace(**kwargs)
    pred_trace = None
    if want_predictive and roles.observed:
        latent_values = {
            name: site["value"]
            for name, site in model_trace.nodes.items()
            if is_sample_site(name, site) and not site["is_observed"]
        }
        # Handlers apply innermost first: unconditioning must come before conditioning the
        # latents, or it would undo their conditioning too.
        pred_trace = poutine.trace(
            poutine.condition(uncondition_observed(model_run), data=latent_values)
        ).get_trace(**kwargs)
    return model_trace, pred_trace


def draw_posterior(
    model: Callable,
    guide: Callable,
    kwargs: Mapping,
    num_samples: int,
    *,
    predictive: bool = False,
    observed_sites: Iterable[str] | None = None,
    batch_size: int = 1000,
    max_plate_nesting: int | None = None,
    parallel: bool | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(samples, predictive_samples): dicts of site -> numpy array with draws first.

    ``samples`` holds the latent sites (the guide's draws, plus enumerated discrete sites
    drawn by ``infer_discrete``) and the deterministic sites; ``predictive_samples`` holds
    the observed sites resampled given each draw (empty unless ``predictive``), restricted
    to ``observed_sites`` when given. Draws are made in blocks of ``batch_size``.
    ``parallel=None`` tries the vectorised path and falls back to a loop; ``False`` loops.
    Runs under ``torch.no_grad``; the param store is only read.
    """
    if num_samples <= 0:
        return {}, {}
    with torch.no_grad():
        if max_plate_nesting is None:
            max_plate_nesting = infer_max_plate_nesting(model, guide, kwargs)
        with poutine.block():
            guide_trace, model_trace = traced_pair(model, guide, kwargs)
        roles = site_roles(model_trace, guide_trace)
        natural = {
            n: tuple(s["value"].shape) for n, s in model_trace.nodes.items() if is_sample_site(n, s)
        }
        sample_sites = roles.latent + roles.enumerated + roles.unguided + roles.deterministic
        obs_sites = list(roles.observed)
        if observed_sites is not None:
            wanted = set(observed_sites)
            obs_sites = [n for n in obs_sites if n in wanted]

        vectorise = parallel is not False
        checked = False
        drawn_obs = obs_sites if predictive else []
        samples: dict[str, list] = {n: [] for n in sample_sites}
        pred: dict[str, list] = {n: [] for n in obs_sites} if predictive else {}
        done = 0
        while done < num_samples:
            num = min(batch_size, num_samples - done)
            if vectorise:
                try:
                    block = _vectorised_block(model, guide, kwargs, num, max_plate_nesting, roles, natural,
                                              sample_sites, drawn_obs, predictive, check=not checked)
                    checked = True
                except Exception as exc:
                    if parallel:
                        raise
                    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    warnings.warn(f"posterior draws not vectorisable ({first_line}); drawing one at a time")
                    vectorise = False
                    continue
            else:
                block = _looped_block(model, guide, kwargs, num, max_plate_nesting, roles, natural,
                                      sample_sites, drawn_obs, predictive)
            for n in sample_sites:
                samples[n].append(block[n])
            for n, parts in pred.items():
                parts.append(block[n])
            done += num
    samples_np = {n: to_numpy(torch.cat(v)) for n, v in samples.items()}
    pred_np = {n: to_numpy(torch.cat(v)) for n, v in pred.items()}
    return samples_np, pred_np


def _vectorised_block(model, guide, kwargs, num, mpn, roles, natural, sample_sites, drawn_obs, predictive,
                      *, check: bool) -> dict[str, torch.Tensor]:
    """``num`` draws in one run under the draws plate; with ``check``, the first draw is
    compared with a plain run (a model not written for batching raises ``ValueError``)."""
    with poutine.block():
        mtr, ptr = _draw_block(model, guide, kwargs, num, mpn, roles, predictive, True)
    block = _collect(mtr, ptr, num, natural, sample_sites, drawn_obs)
    if check:
        problem = check_vectorised_draw(model, ptr if ptr is not None else mtr, kwargs,
                                        num=num, max_plate_nesting=mpn, natural=natural)
        if problem:
            raise ValueError(f"the batched run disagrees with a plain run: {problem}")
    return block


def _looped_block(model, guide, kwargs, num, mpn, roles, natural, sample_sites, drawn_obs,
                  predictive) -> dict[str, torch.Tensor]:
    """``num`` draws one model run at a time."""
    block: dict[str, list] = {n: [] for n in sample_sites + drawn_obs}
    for _ in range(num):
        with poutine.block():
            mtr, ptr = _draw_block(model, guide, kwargs, 1, mpn, roles, predictive, False)
        for n, v in _collect(mtr, ptr, 1, natural, sample_sites, drawn_obs).items():
            block[n].append(v)
    return {n: torch.cat(v) for n, v in block.items()}


def _collect(model_trace, pred_trace, num, natural, sample_sites, obs_sites) -> dict[str, torch.Tensor]:
    out = {}
    for n in sample_sites:
        out[n] = draws_first(model_trace.nodes[n]["value"], num, natural[n])
    for n in obs_sites:
        out[n] = draws_first(pred_trace.nodes[n]["value"], num, natural[n])
    return out


# ---------------------------------------------------------------- summaries


def _as_json(x: np.ndarray) -> Any:
    return float(x) if np.ndim(x) == 0 else np.asarray(x, dtype=float).tolist()


def summarize(samples: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per site: mean, sd (ddof=1), and the 5/50/95% quantiles over draws (axis 0).

    Scalars give floats; vector sites give nested lists in the site's shape.
    Non-numeric or empty sites are skipped.
    """
    summary = {}
    for name, value in samples.items():
        draws = np.asarray(to_numpy(value), dtype=float)
        if draws.ndim == 0 or draws.shape[0] == 0:
            continue
        ddof = 1 if draws.shape[0] > 1 else 0
        q = np.quantile(draws, list(QUANTILES.values()), axis=0)
        summary[name] = {
            "mean": _as_json(draws.mean(axis=0)),
            "sd": _as_json(draws.std(axis=0, ddof=ddof)),
            **{key: _as_json(q[i]) for i, key in enumerate(QUANTILES)},
        }
    return summary


# ---------------------------------------------------------------- prediction on new data


def predict_from_params(
    model: Callable,
    guide_factory: Callable[[Callable], Callable],
    param_state: Mapping | bytes,
    new_kwargs: Mapping,
    num_samples: int,
    *,
    return_sites: Iterable[str] | None = None,
    local_sites: Iterable[str] | None = None,
    observed_sites: Iterable[str] | None = None,
    batch_size: int = 1000,
) -> dict[str, np.ndarray]:
    """Posterior predictive draws on new data from a stored fit.

    ``param_state`` is a ``ParamStore.get_state()`` dict or the bytes of
    :func:`inference.results.param_store_safetensors`; it REPLACES the live param store
    (the worker runs one job per process, and clears the store around each). The guide is
    rebuilt with ``guide_factory(model)`` and run on ``new_kwargs``; autoguides then find
    their fitted params in the store by name.

    Global latents are drawn from the guide; plates are sized by the new data. Latent
    sites whose shape follows the data (``local_sites``, e.g. a per-observation latent
    when N changes) cannot come from the guide: when the full guide does not fit the new
    data, or when ``local_sites`` is given, the guide is rebuilt on the model with those
    sites hidden and they are drawn from their prior given the globals. This works for
    guides with one param set per site (AutoNormal, AutoDelta, AutoNormalMessenger, custom
    guides); joint guides (AutoDiagonalNormal, AutoMultivariateNormal, ...) need every
    latent's shape unchanged.

    The sites that were observed in the fit must not be given to the guide when the new
    data leaves them out (``model(x, y=None)`` makes ``y`` latent): pass them as
    ``observed_sites`` (``inference.fit`` records them). Without it, a site is taken as
    observed-in-the-fit when no stored param name ends in ``.<site>`` while other sites'
    do (the autoguide naming scheme); guides whose param names do not name sites fall
    back to hiding data-sized sites if the full guide does not fit.

    Returns site -> array (draws first) for the latent, deterministic and (resampled)
    observed sites, restricted to ``return_sites`` when given.
    """
    from .params import load_param_store_safetensors

    if isinstance(param_state, (bytes, bytearray, memoryview)):
        param_state = load_param_store_safetensors(bytes(param_state))
    store = pyro.get_param_store()
    store.clear()
    store.set_state(param_state)

    def attempt(hidden: list[str]):
        target = poutine.block(model, hide=hidden) if hidden else model
        guide = guide_factory(target)
        samples, pred = draw_posterior(
            model, guide, new_kwargs, num_samples, predictive=True, batch_size=batch_size
        )
        return {**samples, **pred}

    if observed_sites is None:
        observed_sites = _unfitted_sites(model, new_kwargs, param_state["params"])
    observed = list(observed_sites)
    hidden = list(dict.fromkeys(list(local_sites or []) + observed))
    try:
        out = attempt(hidden)
    except (RuntimeError, ValueError, AssertionError) as exc:
        if local_sites:
            raise
        hidden = list(dict.fromkeys(observed + _data_sized_latents(model, new_kwargs)))
        if set(hidden) == set(observed):
            raise
        warnings.warn(
            f"the guide does not fit the new data ({exc}); drawing {hidden} from their prior"
        )
        store.clear()
        store.set_state(param_state)
        out = attempt(hidden)
    if return_sites is not None:
        wanted = set(return_sites)
        out = {k: v for k, v in out.items() if k in wanted}
    return out


def _unfitted_sites(model: Callable, kwargs: Mapping, params: Mapping) -> list[str]:
    """Unobserved sites on the new data that no stored (autoguide-named) param belongs to."""
    with torch.no_grad(), poutine.block():
        trace = poutine.trace(model).get_trace(**kwargs)
    names = [
        n for n, site in trace.nodes.items()
        if is_sample_site(n, site) and not site["is_observed"]
    ]
    fitted = {n for n in names if any(p == n or p.endswith("." + n) for p in params)}
    return [n for n in names if n not in fitted] if fitted else []


def _data_sized_latents(model: Callable, kwargs: Mapping) -> list[str]:
    """Latent sites inside a vectorised plate: the ones whose shape can follow the data."""
    with torch.no_grad(), poutine.block():
        trace = poutine.trace(model).get_trace(**kwargs)
    out = []
    for name, site in trace.nodes.items():
        in_plate = any(f.vectorized for f in site.get("cond_indep_stack", ()))
        if is_sample_site(name, site) and not site["is_observed"] and in_plate:
            out.append(name)
    return out
