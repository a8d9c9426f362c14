"""The validation pass: model/guide alignment checked with Pyro validation on.

Run once before training (and by ``POST /v1/validate``). It traces the model from its
prior, traces a fresh guide a few times and replays the model against each guide
trace, then runs the ELBO once. Every finding names its site and has a stable
``code``; errors stop the job (``ValidationFailed``), warnings go into the result.

Codes (errors unless noted):
``model_error``, ``guide_error``, ``elbo_error`` (the code raised; message reworded),
``missing_in_guide``, ``not_in_model``, ``shape_mismatch``, ``event_dim_mismatch``
(warning), ``support_mismatch``, ``support_differs`` (warning), ``value_outside_support``,
``discrete_latent_in_continuous_guide``, ``enumeration_needs_trace_enum``,
``max_plate_nesting_too_small``, ``non_finite_initial_loss`` (warning), ``pyro_warning``
(warning), ``mean_field_jacobian`` (warning: the TraceMeanField pitfall was corrected).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping

import torch
import pyro
from pyro import poutine
from pyro.distributions import Delta
from pyro.infer.autoguide import AutoDelta, AutoGuide, AutoGuideList
from pyro.poutine.util import prune_subsample_sites
from torch.distributions import biject_to
from torch.distributions.transforms import ComposeTransform, IndependentTransform

from inference.engine.elbos import _max_dim, base_name, build_elbo, has_enumeration
from inference.engine.guides import uses_delta_reparam
from inference.errors import InferenceError
from inference.language.errors import ModelLanguageError
from inference.spec import ElboSpec

__all__ = [
    "ValidationMessage",
    "ValidationReport",
    "run_validation",
    "constrained_sites",
    "mean_field_jacobian_sites",
]


@dataclass
class ValidationMessage:
    code: str
    message: str
    site: str | None = None


@dataclass
class ValidationReport:
    ok: bool = True
    errors: list[ValidationMessage] = field(default_factory=list)
    warnings: list[ValidationMessage] = field(default_factory=list)
    # What the pass learned about the model (used by fit; informative in the API).
    info: dict[str, Any] = field(default_factory=dict)

    def error(self, code: str, message: str, site: str | None = None) -> None:
        if not any(m.code == code and m.site == site for m in self.errors):
            self.errors.append(ValidationMessage(code, message, site))
        self.ok = False

    def warn(self, code: str, message: str, site: str | None = None) -> None:
        if not any(m.code == code and m.site == site and m.message == message for m in self.warnings):
            self.warnings.append(ValidationMessage(code, message, site))

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "errors": [asdict(m) for m in self.errors],
            "warnings": [asdict(m) for m in self.warnings],
            "info": self.info,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ValidationReport":
        return cls(
            ok=d["ok"],
            errors=[ValidationMessage(**m) for m in d.get("errors", [])],
            warnings=[ValidationMessage(**m) for m in d.get("warnings", [])],
            info=dict(d.get("info", {})),
        )


def _is_unconstrained(support) -> bool:
    try:
        t = biject_to(support)
    except NotImplementedError:
        return False
    if isinstance(t, IndependentTransform):
        t = t.base_transform
    # torch's identity_transform is an empty ComposeTransform.
    return isinstance(t, ComposeTransform) and not t.parts


def _latent_sites(trace) -> dict[str, dict]:
    return {
        name: site
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site["is_observed"]
    }


def constrained_sites(model_trace) -> list[str]:
    """Continuous latent sites whose support is not the whole real line."""
    out = []
    for name, site in _latent_sites(prune_subsample_sites(model_trace)).items():
        support = site["fn"].support
        if not support.is_discrete and not _is_unconstrained(support):
            out.append(name)
    return out


def mean_field_jacobian_sites(model_trace, guide_trace) -> list[str]:
    """Sites where Pyro's TraceMeanField_ELBO would drop a non-zero Delta log-Jacobian."""
    out = []
    for name in constrained_sites(model_trace):
        g = guide_trace.nodes.get(name)
        if g is not None and g["type"] == "sample" and isinstance(g["fn"], Delta):
            out.append(name)
    return out


_SITE_RE = re.compile(r"site '([^']+)'")
_NOISE_RE = re.compile(r"\s*Trace Shapes:.*", re.S)


def _reword(e: BaseException) -> tuple[str, str | None]:
    text = str(e).strip() or type(e).__name__
    match = _SITE_RE.search(text)
    text = _NOISE_RE.sub("", text)
    # Pyro chains the original error message after the site line; keep the gist.
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    gist = " ".join(lines[:3])
    return f"{type(e).__name__}: {gist}", (match.group(1) if match else None)


def _guide_name(guide: Any) -> str:
    return type(guide).__name__


def _share_outside(guide_fn: Any, support: Any, draws: int = 256) -> float | None:
    """Share of the guide's draws outside ``support`` (None if it cannot be estimated);
    drawn with a forked RNG so the job's random stream is unchanged."""
    try:
        per_draw = max(int(torch.Size(guide_fn.batch_shape + guide_fn.event_shape).numel()), 1)
        n = max(1, min(draws, 1_000_000 // per_draw))
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            inside = support.check(guide_fn.sample((n,)))
        return 1.0 - float(inside.float().mean())
    except Exception:  # noqa: BLE001 - any failure: keep the strict answer
        return None


def _support_text(support) -> str:
    return str(support).replace("()", "")


def run_validation(
    model: Callable,
    guide_factory: Callable[[], Callable],
    kwargs: Mapping[str, Any],
    elbo_spec: ElboSpec,
    *,
    num_traces: int = 3,
) -> ValidationReport:
    """Check ``model`` against a fresh guide from ``guide_factory`` under Pyro validation.

    ``info`` of the report carries ``max_plate_nesting`` (inferred), ``enumerated_sites``,
    ``latent_sites``, ``observed_sites``, ``constrained_sites`` and
    ``mean_field_jacobian_sites``.
    """
    report = ValidationReport()
    elbo_base = base_name(elbo_spec.name)
    with pyro.validation_enabled(True), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _validate(model, guide_factory, kwargs, elbo_spec, elbo_base, num_traces, report)
    seen = set()
    for w in caught:
        if not issubclass(w.category, (UserWarning, RuntimeWarning)):
            continue
        text = str(w.message).strip().splitlines()[0] if str(w.message).strip() else ""
        if not text or text in seen:
            continue
        seen.add(text)
        m = _SITE_RE.search(text)
        report.warn("pyro_warning", f"Pyro warned: {text}", m.group(1) if m else None)
    return report


@dataclass
class _PriorFacts:
    """What step 1 (the model from its prior) hands to the later steps."""

    trace: Any
    latents: dict[str, dict]
    enumerated: set[str]
    nesting: int


# ``_build_guide``'s answer when the guide could not be used (a guide may itself be None).
_NO_GUIDE = object()


def _validate(model, guide_factory, kwargs, elbo_spec, elbo_base, num_traces, report) -> None:
    # 1. The model alone, from its prior.
    prior = _check_prior(model, kwargs, elbo_spec, elbo_base, report)
    if prior is None:
        return
    # 2. Fresh guide, a few traces, the model replayed against each.
    guide = _build_guide(guide_factory, prior, report)
    if guide is _NO_GUIDE:
        return
    guide_traces = _trace_guide(guide, kwargs, num_traces, report)
    if guide_traces is None:
        return
    # Structure and shapes against the model's own (prior) trace: static models only,
    # which is what SVI assumes anyway; the replay below would only crash on these.
    _compare(prior.trace, guide_traces[0], prior.enumerated, elbo_base, report)
    if not report.ok:
        return
    model_traces = _replay_model(model, guide_traces, kwargs, report)
    if model_traces is None:
        return
    _check_values_in_support(model_traces, guide_traces[0], report)
    if not report.ok:
        return
    # 3. The mean-field pitfall (corrected by the engine; reported so nobody is surprised).
    _check_mean_field(elbo_spec, guide, model_traces[0], guide_traces[0], report)
    # 4. The ELBO once, as training will run it (no JIT here).
    _check_initial_loss(model, guide, kwargs, elbo_spec, prior, report)


def _check_prior(model, kwargs, elbo_spec, elbo_base, report) -> _PriorFacts | None:
    """Trace the model from its prior, record what it learned in ``report.info`` and check
    enumeration and max_plate_nesting; None when the model cannot run (reported)."""
    try:
        with poutine.block():
            prior_trace = prune_subsample_sites(poutine.trace(model).get_trace(**kwargs))
    except ModelLanguageError:
        # Already precise (kind, line, column): a report message would lose the position.
        raise
    except Exception as e:  # noqa: BLE001 - any failure of user code is reported
        message, site = _reword(e)
        report.error("model_error", f"the model raised while running on the data: {message}", site)
        return None
    try:
        prior_trace.compute_log_prob()
    except Exception as e:  # noqa: BLE001
        message, site = _reword(e)
        report.error("model_error", f"the model's log-density cannot be computed on the data: {message}", site)
        return None
    latents = _latent_sites(prior_trace)
    enumerated = set(has_enumeration(prior_trace))
    nesting = _max_dim(prior_trace)
    report.info.update(
        max_plate_nesting=nesting,
        enumerated_sites=sorted(enumerated),
        latent_sites=list(latents),
        observed_sites=[
            n for n, s in prior_trace.nodes.items()
            if s["type"] == "sample" and s["is_observed"] and not s["infer"].get("_deterministic")
        ],
        constrained_sites=constrained_sites(prior_trace),
    )
    if enumerated and elbo_base != "TraceEnum_ELBO":
        for name in sorted(enumerated):
            report.error(
                "enumeration_needs_trace_enum",
                f"site '{name}' is marked for enumeration, which only TraceEnum_ELBO performs; "
                f"use TraceEnum_ELBO or remove the enumerate annotation ({elbo_spec.name} was chosen)",
                name,
            )
    explicit = elbo_spec.max_plate_nesting
    if explicit is not None and explicit < nesting:
        report.error(
            "max_plate_nesting_too_small",
            f"max_plate_nesting is {explicit} but the model nests plates {nesting} deep "
            f"(plate dims down to {-nesting}); set it to at least {nesting} or leave it out",
        )
    return _PriorFacts(prior_trace, latents, enumerated, nesting)


def _build_guide(guide_factory, prior: _PriorFacts, report) -> Any:
    """A fresh guide, or ``_NO_GUIDE`` when it cannot be built or an autoguide would have
    to fit discrete latents (reported)."""
    try:
        guide = guide_factory()
    except InferenceError:
        raise  # a SpecError (bad option) or ModelLanguageError is the caller's to report
    except Exception as e:  # noqa: BLE001
        message, site = _reword(e)
        report.error("guide_error", f"the guide could not be built: {message}", site)
        return _NO_GUIDE
    is_auto = isinstance(guide, (AutoGuide, AutoGuideList))
    all_delta = isinstance(guide, AutoDelta)
    latents = prior.latents
    discrete = [
        n for n, s in latents.items() if s["fn"].support.is_discrete and n not in prior.enumerated
    ]
    if is_auto and not all_delta:
        for name in discrete:
            report.error(
                "discrete_latent_in_continuous_guide",
                f"site '{name}' is a discrete latent ({type(latents[name]['fn']).__name__}) and "
                f"{_guide_name(guide)} only fits continuous latents; mark it "
                "infer={'enumerate': 'parallel'} and use TraceEnum_ELBO, or hide it from the "
                "autoguide and cover it with a custom guide",
                name,
            )
        if discrete:
            return _NO_GUIDE
    return guide


def _trace_guide(guide, kwargs, num_traces, report) -> list | None:
    """``num_traces`` traces of the guide; None when it raises (reported)."""
    guide_traces = []
    for _ in range(num_traces):
        try:
            with poutine.block():
                guide_traces.append(prune_subsample_sites(poutine.trace(guide).get_trace(**kwargs)))
        except Exception as e:  # noqa: BLE001
            message, site = _reword(e)
            report.error("guide_error", f"the guide raised while running on the data: {message}", site)
            return None
    return guide_traces


def _replay_model(model, guide_traces, kwargs, report) -> list | None:
    """The model replayed against each guide trace; None when it raises (reported)."""
    model_traces = []
    for guide_trace in guide_traces:
        try:
            with poutine.block():
                model_traces.append(prune_subsample_sites(
                    poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(**kwargs)))
        except Exception as e:  # noqa: BLE001
            message, site = _reword(e)
            report.error(
                "model_error", f"the model raised when replayed against the guide's draws: {message}", site
            )
            return None
    return model_traces


def _check_values_in_support(model_traces, guide_trace, report) -> None:
    """Every latent value the guide drew lies in the model's support."""
    guide_samples = {n: s for n, s in guide_trace.nodes.items() if s["type"] == "sample"}
    for mtrace in model_traces:
        for name, msite in _latent_sites(mtrace).items():
            if name not in guide_samples:
                continue
            value = msite["value"]
            try:
                inside = bool(msite["fn"].support.check(value).all())
            except Exception:  # noqa: BLE001 - odd shapes are reported above
                continue
            if not inside:
                report.error(
                    "value_outside_support",
                    f"site '{name}': the guide drew a value outside the model's support "
                    f"({_support_text(msite['fn'].support)})",
                    name,
                )


def _check_mean_field(elbo_spec, guide, model_trace, guide_trace, report) -> None:
    if base_name(elbo_spec.name) == "TraceMeanField_ELBO" and uses_delta_reparam(guide):
        sites = mean_field_jacobian_sites(model_trace, guide_trace)
        report.info["mean_field_jacobian_sites"] = sites
        if sites:
            report.warn(
                "mean_field_jacobian",
                f"TraceMeanField_ELBO with {_guide_name(guide)} drops the log-Jacobian of the "
                f"constrained latents {sites} in Pyro (the analytic KL of the guide's Delta ignores "
                "its log_density), which biases the fit; vihub adds the term back, i.e. uses the "
                "Monte Carlo ELBO for those sites, so the fit matches Trace_ELBO's",
            )


def _check_initial_loss(model, guide, kwargs, elbo_spec, prior: _PriorFacts, report) -> None:
    try:
        explicit = elbo_spec.max_plate_nesting
        mpn = explicit if explicit is not None else prior.nesting
        if prior.enumerated:
            mpn = max(mpn, prior.nesting)
        elbo = build_elbo(elbo_spec.model_copy(update={"name": base_name(elbo_spec.name)}),
                          max_plate_nesting=mpn)
        loss = elbo.loss(model, guide, **kwargs)
    except Exception as e:  # noqa: BLE001
        message, site = _reword(e)
        hint = ""
        if "max_plate_nesting" in message or "plate" in message.lower():
            hint = " (check max_plate_nesting and the plates' dims)"
        report.error("elbo_error", f"{elbo_spec.name} failed on this model and guide: {message}{hint}", site)
        return
    if not (loss == loss) or abs(float(loss)) == float("inf"):
        report.warn(
            "non_finite_initial_loss",
            f"the initial loss is {float(loss)}; check the priors, the data and init_loc_fn",
        )


def _compare(model_trace, guide_trace, enumerated, elbo_base, report) -> None:
    guide_samples = {n: s for n, s in guide_trace.nodes.items() if s["type"] == "sample"}
    _check_missing_in_guide(model_trace, guide_samples, enumerated, elbo_base, report)
    _check_not_in_model(model_trace, guide_samples, report)
    for name, gsite in guide_samples.items():
        msite = model_trace.nodes.get(name)
        if msite is None or msite["type"] != "sample":
            continue
        if msite["is_observed"]:
            report.error(
                "not_in_model",
                f"the guide samples site '{name}' but it is observed in the model",
                name,
            )
            continue
        _check_shapes(name, msite, gsite, report)
        if not isinstance(gsite["fn"], Delta):
            _check_support(name, msite["fn"], gsite["fn"], report)


def _check_missing_in_guide(model_trace, guide_samples, enumerated, elbo_base, report) -> None:
    for name, site in _latent_sites(model_trace).items():
        if name in enumerated and elbo_base == "TraceEnum_ELBO":
            continue
        if name not in guide_samples:
            report.error(
                "missing_in_guide",
                f"latent site '{name}' of the model is not in the guide, so it would be drawn "
                "from its prior and the ELBO would be wrong; add it to the guide (or stop hiding "
                "it), or mark it for enumeration with TraceEnum_ELBO",
                name,
            )


def _check_not_in_model(model_trace, guide_samples, report) -> None:
    model_samples = {n for n, s in model_trace.nodes.items() if s["type"] == "sample"}
    for name, gsite in guide_samples.items():
        if name in model_samples or gsite["infer"].get("is_auxiliary"):
            continue
        report.error(
            "not_in_model",
            f"the guide samples site '{name}' but the model has no site of that name; "
            "rename it to match a latent site of the model",
            name,
        )


def _check_shapes(name, msite, gsite, report) -> None:
    model_fn, guide_fn = msite["fn"], gsite["fn"]
    value = gsite["value"]
    expected = tuple(model_fn.batch_shape + model_fn.event_shape)
    if torch.is_tensor(value) and tuple(value.shape) != expected:
        report.error(
            "shape_mismatch",
            f"site '{name}': the guide draws shape {tuple(value.shape)} but the model expects "
            f"{expected} (batch {tuple(model_fn.batch_shape)}, event {tuple(model_fn.event_shape)})",
            name,
        )
    if guide_fn.event_dim != model_fn.event_dim:
        report.warn(
            "event_dim_mismatch",
            f"site '{name}': the guide's distribution has event_dim {guide_fn.event_dim} but the "
            f"model's has {model_fn.event_dim}; use .to_event(...) so both agree",
            name,
        )


def _check_support(name, model_fn, guide_fn, report) -> None:
    g_sup, m_sup = guide_fn.support, model_fn.support
    if g_sup.is_discrete != m_sup.is_discrete:
        report.error(
            "support_mismatch",
            f"site '{name}': the guide's support ({_support_text(g_sup)}) is "
            f"{'discrete' if g_sup.is_discrete else 'continuous'} but the model's "
            f"({_support_text(m_sup)}) is not",
            name,
        )
    elif not _is_unconstrained(m_sup) and _is_unconstrained(g_sup):
        # Pyro trains through a guide that (almost) never leaves the support (Bayesian
        # regression II's Normal(1, 0.05) for a Uniform(0, 10) scale): a warning then;
        # an error when a visible share of its draws fall outside (NaN losses).
        outside = _share_outside(guide_fn, m_sup)
        text = (f"site '{name}': the guide's {type(guide_fn).__name__} ranges over all reals but "
                f"the model's support is {_support_text(m_sup)}; use a guide distribution on "
                f"{_support_text(m_sup)} (e.g. LogNormal for positive, Beta for unit interval)")
        if outside is not None and outside < 0.01:
            report.warn("support_mismatch", text + f" ({outside:.1%} of its draws now fall "
                        "outside; the loss becomes NaN if training moves it out)", name)
        else:
            report.error("support_mismatch", text, name)
    elif _support_text(g_sup) != _support_text(m_sup) and not _is_unconstrained(m_sup):
        report.warn(
            "support_differs",
            f"site '{name}': guide support {_support_text(g_sup)} differs from model "
            f"support {_support_text(m_sup)}",
            name,
        )
