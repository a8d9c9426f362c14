"""``fit``, ``validate`` and ``predict``: a job spec and data in, a ``FitResult`` out.

``fit`` resolves the model (catalog or source, via the model language), binds the data
on the job's device, builds the guide, ELBO and optimizer, runs the validation pass,
trains with :func:`inference.engine.loop.run_svi`, and assembles the result with the
functions of :mod:`inference.results`.

All three run inside :func:`inference.engine.global_state.isolated`: Pyro's handler stack,
param store, settings and validation flags, torch's default dtype, grad mode and thread
count, and the RNGs (torch, CUDA, ``random``, numpy) are the caller's again when they
return or raise, and a handler left on Pyro's stack by earlier code never sees the call's
messages. Compilation (module-level code of the source) runs with the RNGs seeded from the
job seed, so a source's compile-time constants are a function of the seed alone.

Usable in a notebook::

    from inference import fit, JobSpec
    result = fit(JobSpec.model_validate({"model": {"catalog": "eight_schools_noncentered"}}), {})
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import torch
import pyro

from inference.engine.elbos import base_name, infer_max_plate_nesting
from inference.engine.global_state import isolated, seed_all, seeded
from inference.engine.errors import (
    FitCancelled,
    FitFailed,
    NonFiniteLoss,
    SpecError,
    ValidationFailed,
)
from inference.engine.guides import build_guide
from inference.engine.loop import FitCallbacks, Progress, SVIRun, device_scope, resolve_device, run_svi
from inference.engine.validation import ValidationMessage, ValidationReport, run_validation
from inference.errors import InferenceError
from inference.language import Limits
from inference.spec import CatalogModelSpec, JobSpec, SourceGuideSpec

__all__ = [
    "fit",
    "validate",
    "predict",
    "prepare",
    "PreparedJob",
    "FitCallbacks",
    "Progress",
    "SpecError",
    "ValidationFailed",
    "NonFiniteLoss",
    "FitCancelled",
    "FitFailed",
    "ValidationReport",
    "Diagnostics",
    "RunMeta",
]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class PreparedJob:
    """A spec made concrete: Pyro callables and keyword data, ready for the engine."""

    model: Callable
    guide_factory: Callable[[Callable | None], Callable]  # guide_factory(model) -> fresh guide
    kwargs: dict[str, Any]
    warnings: list[str]
    device: torch.device
    float_dtype: torch.dtype


def _as_spec(spec: JobSpec | Mapping[str, Any]) -> JobSpec:
    return spec if isinstance(spec, JobSpec) else JobSpec.model_validate(spec)


def _keyword_only(program: Any) -> Callable:
    """Call ``program`` with only the data fields it declares (a guide may take fewer)."""
    names = {name for name, _ in getattr(program, "parameters", ())}
    if not names:
        return program

    def call(**kwargs: Any) -> Any:
        return program(**{k: v for k, v in kwargs.items() if k in names})

    call.__name__ = getattr(program, "__name__", "guide")
    call.program = program  # type: ignore[attr-defined]
    return call


def prepare(spec: JobSpec | Mapping[str, Any], data: Mapping[str, Any] | None,
            *, device: torch.device | None = None, limits: Limits | None = None) -> PreparedJob:
    """Compile the model (and custom guide) and bind ``data`` (catalog example data if empty).

    Each compilation runs inside ``seeded(spec.inference.seed)``: module-level randomness of
    the source is a function of the job seed, and the caller's RNG state is left as it was.
    """
    from inference.language import bind_data, compile_source

    spec = _as_spec(spec)
    device = device if device is not None else resolve_device(spec.inference.device)
    float_dtype = _DTYPES[spec.inference.float_dtype]
    if isinstance(spec.model, CatalogModelSpec):
        from inference import catalog

        entry = catalog.get(spec.model.catalog)
        source, entry_name = entry.source, entry.entry
        if not data:
            data = entry.example_data
    else:
        source, entry_name = spec.model.source, spec.model.entry
    seed = spec.inference.seed
    # Module-level code runs here: seeded from the job, the caller's RNG state kept.
    with seeded(seed):
        program = compile_source(source, entry_name, limits=limits)
    bound = bind_data(program, dict(data or {}), float_dtype=spec.inference.float_dtype, device=str(device))
    model = program
    kwargs, warnings = dict(bound.kwargs), list(bound.warnings)

    compile_guide = None
    if isinstance(spec.guide, SourceGuideSpec):
        # A guide in the model's own source is that compilation's function: model and guide
        # share its modules (a network registered by the model and used by the guide trains),
        # as in Python. A guide in another source is compiled per guide built (validation,
        # training): the same seed, the same constants.
        shared = spec.guide.source == source

        def compile_guide(src: str, entry: str) -> Callable:
            if shared and src == source:
                return _keyword_only(program.function(entry))
            with seeded(seed):
                return _keyword_only(compile_source(src, entry, limits=limits))

        # data fields only the guide takes are bound for it too
        guide_program = program.function(spec.guide.entry) if shared else compile_guide(
            spec.guide.source, spec.guide.entry)
        guide_program = getattr(guide_program, "program", guide_program)
        guide_bound = bind_data(guide_program, dict(data or {}), float_dtype=spec.inference.float_dtype,
                                device=str(device))
        extra = {k: v for k, v in guide_bound.kwargs.items() if k not in kwargs}
        if extra:
            kwargs.update(extra)
            model = _keyword_only(program)
            warnings = [w for w in warnings if not any(f"field {k!r}" in w for k in extra)]

    def guide_factory(for_model: Callable | None = None) -> Callable:
        return build_guide(spec.guide, for_model if for_model is not None else model,
                           float_dtype=float_dtype, device=device, compile_guide=compile_guide)

    return PreparedJob(model=model, guide_factory=guide_factory, kwargs=kwargs,
                       warnings=warnings, device=device, float_dtype=float_dtype)


def validate(spec: JobSpec | Mapping[str, Any], data: Mapping[str, Any] | None,
             *, limits: Limits | None = None) -> ValidationReport:
    """The validation pass alone (no training), on CPU whatever the spec's device.

    Bad source or data raise ``ModelLanguageError``; model/guide problems are in the report.
    ``limits`` are the model language's limits (the service passes its configured ones).
    """
    spec = _as_spec(spec)
    with isolated(seed=spec.inference.seed, float_dtype=_DTYPES[spec.inference.float_dtype]):
        job = prepare(spec, data, device=torch.device("cpu"), limits=limits)
        seed_all(spec.inference.seed)
        report = run_validation(job.model, job.guide_factory, job.kwargs, spec.inference.elbo)
    for text in job.warnings:
        report.warn("data_binding", text)
    return report


def fit(
    spec: JobSpec | Mapping[str, Any],
    data: Mapping[str, Any] | None,
    *,
    callbacks: FitCallbacks | None = None,
    resume_from: bytes | None = None,
    limits: Limits | None = None,
    init_params: bytes | None = None,
):
    """Train as ``spec`` says and return a :class:`inference.results.FitResult`.

    Raises ``SpecError``, ``ModelLanguageError``, ``ValidationFailed``, ``NonFiniteLoss``,
    ``FitCancelled`` or ``FitFailed`` (any other failure of the model code), all
    ``InferenceError``. ``init_params`` (a job's ``params_safetensors`` bytes) is the warm
    start that ``inference.init_from`` names (``inference.engine.warm_start``).
    """
    t0 = time.perf_counter()
    spec = _as_spec(spec)
    init_values = _init_values(spec, init_params, resume_from)
    device = resolve_device(spec.inference.device)
    # float_dtype: model constants (``dist.Normal(0.0, 1.0)``) take torch's default dtype, so
    # float64 data alone would meet float32 latents in ``X @ beta``; isolated() sets and restores it.
    with isolated(seed=spec.inference.seed, float_dtype=_DTYPES[spec.inference.float_dtype]), \
            device_scope(device):
        job = prepare(spec, data, device=device, limits=limits)
        report = None
        if spec.inference.validate:
            seed_all(spec.inference.seed)
            report = run_validation(job.model, job.guide_factory, job.kwargs, spec.inference.elbo)
            for text in job.warnings:
                report.warn("data_binding", text)
            if not report.ok:
                raise ValidationFailed(report)
            pyro.clear_param_store()
        return _train_and_collect(spec, job, report, callbacks, resume_from, t0, init_values)


def _init_values(spec: JobSpec, init_params: bytes | None, resume_from: bytes | None):
    from inference.engine.warm_start import FIELD, read_params

    if init_params is not None:
        return read_params(init_params)
    if spec.inference.init_from is not None and resume_from is None:
        raise SpecError("inference.init_from names a job of the service; outside it, pass that job's "
                        "params_safetensors bytes as fit(..., init_params=...)", field=FIELD)
    return None


@dataclass
class Diagnostics:
    """``FitResult.diagnostics``: how far to trust the fit (``to_dict`` is the JSON form).

    A non-finite loss or gradient ends the fit with ``NonFiniteLoss`` (step, params,
    sites), so a finished fit has no NaN events to list.
    """

    k_hat: float | None
    k_hat_reading: str
    k_hat_note: str | None
    importance_ess: float | None
    warnings: list[dict[str, Any]]
    converged: bool
    stopped_early: bool
    validation: dict[str, Any] | None
    jit: dict[str, Any]
    fast_path: dict[str, Any] | None  # inference.engine.fastpath.FastPathReport
    stop: dict[str, Any] | None  # inference.engine.stopping.Stopper.report

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RunMeta:
    """``FitResult.meta``: enough to reproduce the fit (``to_dict`` is the JSON form)."""

    versions: dict[str, str]
    device: str
    seed: int
    settings: dict[str, Any]
    effective: dict[str, Any]
    steps_requested: int
    steps_done: int
    resumed_from_step: int | None
    train_s: float
    wall_s: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Collected:
    """What is read off the trained guide: params, ELBO terms, draws, log-probs, k-hat."""

    guide_params: dict[str, dict]
    model_params: dict[str, dict]
    elbo_terms: list[dict[str, Any]]
    samples: dict[str, np.ndarray]
    predictive: dict[str, np.ndarray]
    summary: dict[str, dict]
    log_probs: dict[str, Any]
    importance: dict[str, Any]
    param_store_state: bytes


def _max_plate_nesting(spec: JobSpec, job: PreparedJob, report: ValidationReport | None) -> int:
    inf = spec.inference
    if inf.elbo.max_plate_nesting is not None:
        return inf.elbo.max_plate_nesting
    if report is not None:
        return int(report.info["max_plate_nesting"])
    seed_all(inf.seed)
    return infer_max_plate_nesting(job.model, None, job.kwargs)


def _elbo_terms_fn(spec: JobSpec, job: PreparedJob, guide: Callable, mpn: int) -> Callable[[], dict]:
    """The fit's per-site ELBO estimate, made every ``elbo_terms_every`` steps and at the
    end: one site layout for all its calls (the sites do not change during a fit)."""
    from inference import results
    from inference.results.log_probs import SiteLayout

    analytic_kl = base_name(spec.inference.elbo.name) == "TraceMeanField_ELBO"
    layout = SiteLayout()

    def elbo_terms() -> dict[str, Any]:
        return _plain(results.estimate_elbo_terms(
            job.model, guide, job.kwargs, num_particles=spec.outputs.elbo_terms_particles,
            max_plate_nesting=mpn, analytic_kl=analytic_kl, layout=layout))

    return elbo_terms


def _train(spec: JobSpec, job: PreparedJob, guide: Callable, mpn: int, callbacks: FitCallbacks | None,
           resume_from: bytes | None, init_values: Mapping[str, torch.Tensor] | None,
           elbo_terms: Callable[[], dict]) -> SVIRun:
    inf, out = spec.inference, spec.outputs
    hooks = {}
    if out.elbo_terms_every > 0:
        hooks["elbo_terms"] = (out.elbo_terms_every, lambda step: elbo_terms())
    fingerprint = {"seed": inf.seed, "guide": spec.guide.model_dump(mode="json"), "elbo": inf.elbo.name}
    run = run_svi(
        job.model, guide, job.kwargs, inf, callbacks=callbacks, resume_from=resume_from,
        grad_norms_every=out.grad_norms_every, hooks=hooks, max_plate_nesting=mpn,
        fingerprint=fingerprint, init_params=init_values,
    )
    if callbacks is not None and callbacks.on_final_checkpoint is not None:
        from inference.engine.warm_start import final_checkpoint

        callbacks.on_final_checkpoint(final_checkpoint(run, fingerprint), run.steps_done)
    return run


def _collect(spec: JobSpec, job: PreparedJob, guide: Callable, mpn: int, run: SVIRun,
             elbo_terms_fn: Callable[[], dict]) -> Collected:
    from inference import results

    out = spec.outputs
    model, kwargs = job.model, job.kwargs
    with torch.no_grad():
        guide_params, model_params = results.split_params(model, guide, kwargs)
    elbo_terms = [{"step": step, **terms} for step, terms in run.history.get("elbo_terms", [])]
    if not elbo_terms or elbo_terms[-1]["step"] != run.steps_done:
        elbo_terms.append({"step": run.steps_done, **elbo_terms_fn()})
    samples, predictive = results.draw_posterior(model, guide, kwargs, out.num_samples,
                                                 predictive=out.predictive, max_plate_nesting=mpn)
    # k-hat needs the importance weights even when the user did not ask for log-probs.
    log_prob_draws = out.log_prob_draws if out.log_prob_draws is not None else out.num_samples
    log_probs = results.trace_log_probs(model, guide, kwargs, log_prob_draws if out.log_probs
                                        else min(log_prob_draws, 1000),
                                        max_plate_nesting=mpn, pointwise=out.log_probs)
    importance = results.importance_diagnostics(
        np.asarray(log_probs["log_weight"]),
        point_mass_guide=bool(log_probs.get("point_mass_guide", False)),
        has_latents=bool(log_probs.get("has_latents", True)))
    return Collected(
        guide_params=guide_params, model_params=model_params, elbo_terms=elbo_terms, samples=samples,
        predictive=predictive, summary=results.summarize(samples), log_probs=log_probs, importance=importance,
        param_store_state=results.param_store_safetensors(guide_params=guide_params, model_params=model_params),
    )


def _diagnostics(spec: JobSpec, job: PreparedJob, guide: Callable, report: ValidationReport | None,
                 run: SVIRun, importance: Mapping[str, Any]) -> Diagnostics:
    warnings_out = [_msg(m) for m in (report.warnings if report else [])]
    warnings_out += [{"code": d["code"], "message": d["message"], "site": None} for d in run.diagnostics]
    if report is None:
        warnings_out += _mean_field_note(spec, job.model, guide, job.kwargs)
        warnings_out += [{"code": "data_binding", "message": w, "site": None} for w in job.warnings]
        warnings_out.append({"code": "validation_skipped",
                             "message": "the validation pass was skipped (inference.validate: false)", "site": None})
    k_hat = float(importance["k_hat"])
    ess = importance.get("importance_ess", float("nan"))
    return Diagnostics(
        k_hat=k_hat if np.isfinite(k_hat) else None,
        k_hat_reading=importance["k_hat_reading"],
        k_hat_note=importance.get("k_hat_note"),
        importance_ess=float(ess) if np.isfinite(ess) else None,
        warnings=warnings_out,
        converged=bool(run.converged),
        stopped_early=run.stopped_early,
        validation=report.to_dict() if report is not None else None,
        jit={"requested": spec.inference.jit, "used": run.jit_used, "elbo": run.elbo_name},
        fast_path=run.fast_path,
        stop=run.stop,
    )


def _meta(spec: JobSpec, job: PreparedJob, run: SVIRun, train_s: float, wall_s: float) -> RunMeta:
    inf = spec.inference
    return RunMeta(
        versions=_versions(), device=str(job.device), seed=inf.seed, settings=spec.model_dump(mode="json"),
        effective={
            "elbo": run.elbo_name,
            "jit": run.jit_used,
            "max_plate_nesting": run.max_plate_nesting,
            "float_dtype": inf.float_dtype,
            "torch_num_threads": run.num_threads,
            "fast_path": bool(run.fast_path and run.fast_path["taken"]),
            "num_particles": (run.fast_path or {}).get("particles") or spec.inference.elbo.num_particles or 1,
        },
        steps_requested=inf.steps, steps_done=run.steps_done, resumed_from_step=run.resumed_from_step,
        train_s=train_s, wall_s=wall_s,
    )


def _train_and_collect(spec: JobSpec, job: PreparedJob, report: ValidationReport | None,
                       callbacks: FitCallbacks | None, resume_from: bytes | None, t0: float,
                       init_values: Mapping[str, torch.Tensor] | None = None):
    from inference import results

    try:
        mpn = _max_plate_nesting(spec, job, report)
        guide = job.guide_factory(job.model)
        elbo_terms = _elbo_terms_fn(spec, job, guide, mpn)
        run = _train(spec, job, guide, mpn, callbacks, resume_from, init_values, elbo_terms)
        train_s = time.perf_counter() - t0
        collected = _collect(spec, job, guide, mpn, run, elbo_terms)
    except InferenceError:
        raise
    except Exception as e:  # noqa: BLE001 - user model code failing mid-run is the user's error
        raise FitFailed(f"the fit failed: {type(e).__name__}: {e}", cause=type(e).__name__) from e

    diagnostics = _diagnostics(spec, job, guide, report, run, collected.importance)
    meta = _meta(spec, job, run, train_s, time.perf_counter() - t0)
    return results.FitResult(
        guide_params=collected.guide_params, model_params=collected.model_params, loss=list(run.losses),
        elbo_terms=collected.elbo_terms, grad_norms=run.grad_norms, samples=collected.samples,
        predictive=collected.predictive, summary=collected.summary, log_probs=collected.log_probs,
        diagnostics=diagnostics.to_dict(), param_store_state=collected.param_store_state, meta=meta.to_dict(),
    )


def predict(result, spec: JobSpec | Mapping[str, Any], new_data: Mapping[str, Any],
            num_samples: int = 1000) -> dict[str, np.ndarray]:
    """Posterior predictive draws on ``new_data`` from a stored ``FitResult`` (on CPU)."""
    from inference import results

    spec = _as_spec(spec)
    with isolated(seed=spec.inference.seed, float_dtype=_DTYPES[spec.inference.float_dtype]):
        job = prepare(spec, new_data, device=torch.device("cpu"))
        seed_all(spec.inference.seed)
        try:
            return results.predict_from_params(job.model, job.guide_factory, result.param_store_state,
                                               job.kwargs, num_samples)
        except InferenceError:
            raise
        except Exception as e:  # noqa: BLE001
            raise FitFailed(f"prediction failed: {type(e).__name__}: {e}", cause=type(e).__name__) from e


def _mean_field_note(spec, model, guide, kwargs) -> list[dict[str, Any]]:
    """The pitfall warning when the validation pass (which normally reports it) was skipped."""
    from pyro import poutine

    from inference.engine.guides import uses_delta_reparam
    from inference.engine.validation import mean_field_jacobian_sites
    from inference.results._traces import traced_pair

    if base_name(spec.inference.elbo.name) != "TraceMeanField_ELBO" or not uses_delta_reparam(guide):
        return []
    try:
        with torch.no_grad(), poutine.block():
            guide_trace, model_trace = traced_pair(model, guide, kwargs)
        sites = mean_field_jacobian_sites(model_trace, guide_trace)
    except Exception:  # noqa: BLE001 - a note, not a check
        sites = []
    if not sites:
        return []
    return [{"code": "mean_field_jacobian", "site": None,
             "message": f"TraceMeanField_ELBO with {type(guide).__name__}: Pyro drops the log-Jacobian of the "
                        f"constrained latents {sites}; vihub added the term back (Monte Carlo ELBO for "
                        "those sites), so the fit matches Trace_ELBO's"}]


def _msg(m: ValidationMessage) -> dict[str, Any]:
    return {"code": m.code, "message": m.message, "site": m.site}


def _plain(x: Any) -> Any:
    """JSON-friendly copy (tensors / numpy to floats and lists)."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if torch.is_tensor(x):
        x = x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


def _versions() -> dict[str, str]:
    import inference

    return {"torch": torch.__version__, "pyro": pyro.__version__, "vihub": inference.__version__,
            "numpy": np.__version__, "python": platform.python_version()}
