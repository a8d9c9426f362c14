"""One call that fills the parts of a ``FitResult`` computed after training.

``inference.fit`` may call the functions one by one instead; this is the same sequence,
with the choices that keep the pieces consistent (the phi/theta split stored with the
param-store file, the point-mass case of k-hat, the site roles ``predict`` needs).
The caller adds the loss curve, ELBO terms, gradient norms, its own diagnostics and meta.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping

import torch
from pyro import poutine

from ._traces import guess_max_plate_nesting, site_roles, traced_pair
from .log_probs import trace_log_probs
from .params import param_store_safetensors, split_params
from .posterior import draw_posterior, summarize
from .psis import importance_diagnostics
from .result import FitResult


def collect_results(
    model: Callable,
    guide: Callable,
    kwargs: Mapping,
    *,
    num_samples: int = 1000,
    predictive: bool = False,
    log_probs: bool = True,
    num_log_prob_draws: int | None = None,
    max_plate_nesting: int | None = None,
) -> FitResult:
    """A ``FitResult`` with params, samples, summary, log-probs and the k-hat diagnostics.

    ``num_log_prob_draws`` defaults to ``num_samples``; enumerated models are evaluated
    one draw at a time, so callers may want fewer there. Warnings raised on the way (e.g.
    "not vectorisable; one draw at a time") are kept in ``diagnostics["warnings"]``.
    ``meta`` gets ``observed_sites``, ``latent_sites``, ``enumerated_sites``.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.no_grad():
            if max_plate_nesting is None:
                max_plate_nesting = guess_max_plate_nesting(model, guide, kwargs)
            with poutine.block():
                guide_trace, model_trace = traced_pair(model, guide, kwargs)
        roles = site_roles(model_trace, guide_trace)
        guide_params, model_params = split_params(model, guide, kwargs)
        state = param_store_safetensors(guide_params=guide_params, model_params=model_params)
        samples, predictive_samples = draw_posterior(
            model, guide, kwargs, num_samples, predictive=predictive, max_plate_nesting=max_plate_nesting
        )
        log_prob_dict: dict = {}
        diagnostics: dict = {"k_hat": None, "k_hat_reading": "unknown"}
        if log_probs:
            draws = num_log_prob_draws or num_samples
            log_prob_dict = trace_log_probs(
                model, guide, kwargs, draws, max_plate_nesting=max_plate_nesting
            )
            diagnostics = importance_diagnostics(
                log_prob_dict["log_weight"],
                point_mass_guide=log_prob_dict["point_mass_guide"],
                has_latents=log_prob_dict["has_latents"],
            )
    diagnostics.update(
        {
            "warnings": sorted({str(w.message) for w in caught if _worth_reporting(w)}),
            "converged": None,
            "validation": None,
        }
    )
    return FitResult(
        guide_params=guide_params,
        model_params=model_params,
        samples=samples,
        predictive=predictive_samples,
        summary=summarize(samples),
        log_probs=log_prob_dict,
        diagnostics=diagnostics,
        param_store_state=state,
        meta={
            "observed_sites": list(roles.observed),
            "latent_sites": list(roles.latent),
            "enumerated_sites": list(roles.enumerated),
            "max_plate_nesting": int(max_plate_nesting),
        },
    )


def _worth_reporting(w: warnings.WarningMessage) -> bool:
    # Library deprecation chatter is not about the user's fit.
    return not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning, FutureWarning))
