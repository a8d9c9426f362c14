"""What a fit returns: the result object, its formats, and the functions that fill it
after training.

``inference.fit`` calls these once training is done, with the model and guide as Pyro
callables, the bound data as keyword arguments and the trained params in the live param
store. Each function is usable on its own from a notebook.

Names are resolved lazily (as in ``inference``): ``inference.results.formats`` and
``FitResult`` load numpy only, so the API process can read and encode results without
importing torch or Pyro.
"""

from inference._lazy import lazy_exports

# Public names and the module each lives in.
_EXPORTS = {
    "FitResult": "inference.results.result",
    "estimate_elbo_terms": "inference.results.log_probs",
    "trace_log_probs": "inference.results.log_probs",
    "constraint_name": "inference.results.params",
    "load_param_store_safetensors": "inference.results.params",
    "param_store_bytes": "inference.results.params",
    "param_store_pt": "inference.results.params",
    "param_store_safetensors": "inference.results.params",
    "parse_constraint": "inference.results.params",
    "split_params": "inference.results.params",
    "draw_posterior": "inference.results.posterior",
    "predict_from_params": "inference.results.posterior",
    "summarize": "inference.results.posterior",
    "importance_diagnostics": "inference.results.psis",
    "importance_ess": "inference.results.psis",
    "khat_reading": "inference.results.psis",
    "pareto_khat": "inference.results.psis",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
