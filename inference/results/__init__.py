"""What a fit returns: the result object and the functions that fill it after training.

``inference.fit`` calls these once training is done, with the model and guide as Pyro
callables, the bound data as keyword arguments and the trained params in the live param
store. Each function is usable on its own from a notebook.
"""

from .collect import collect_results
from .log_probs import estimate_elbo_terms, trace_log_probs
from .params import (
    constraint_name,
    load_param_store_safetensors,
    param_store_bytes,
    param_store_pt,
    param_store_safetensors,
    parse_constraint,
    split_params,
)
from .posterior import draw_posterior, predict_from_params, summarize
from .psis import importance_diagnostics, importance_ess, khat_reading, pareto_khat
from .result import FitResult

__all__ = [
    "FitResult",
    "collect_results",
    "constraint_name",
    "draw_posterior",
    "estimate_elbo_terms",
    "importance_diagnostics",
    "importance_ess",
    "khat_reading",
    "load_param_store_safetensors",
    "param_store_bytes",
    "param_store_pt",
    "param_store_safetensors",
    "pareto_khat",
    "parse_constraint",
    "predict_from_params",
    "split_params",
    "summarize",
    "trace_log_probs",
]
