"""ELBOs from an ``ElboSpec``, ``max_plate_nesting`` inference, and the mean-field fix.

``TraceMeanField_ELBO`` takes ``-KL(q || p)`` analytically where it can. For the Delta
sites that reparametrised autoguides (AutoNormal, AutoDiagonalNormal, ...) emit,
Pyro's ``kl_divergence(Delta, p)`` is ``-p.log_prob(v)`` and ignores the Delta's
``log_density`` (the log-Jacobian of the transform to the constrained support). On a
constrained latent (HalfCauchy, LogNormal, Beta, ...) the objective is then not the
ELBO and the fit is biased. :class:`MeanFieldJacobianMixin` adds that term back (the
Delta's ``log_prob`` at its own value is exactly ``log_density``), which makes the
estimator the Monte Carlo ELBO for those sites; every other site is unchanged.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

import torch
import pyro.distributions as dist
from pyro import poutine
from pyro.infer import (
    JitTrace_ELBO,
    JitTraceEnum_ELBO,
    JitTraceGraph_ELBO,
    JitTraceMeanField_ELBO,
    RenyiELBO,
    Trace_ELBO,
    TraceEnum_ELBO,
    TraceGraph_ELBO,
    TraceMeanField_ELBO,
    TraceTailAdaptive_ELBO,
)
from pyro.infer.util import is_identically_zero
from pyro.poutine.util import prune_subsample_sites

from inference.engine.errors import SpecError
from inference.results._traces import traced_pair
from inference.spec import ElboSpec

__all__ = [
    "build_elbo",
    "allowed_elbo_options",
    "base_name",
    "jit_name",
    "infer_max_plate_nesting",
    "has_enumeration",
    "MeanFieldJacobianMixin",
    "TraceMeanFieldJacobian_ELBO",
    "JitTraceMeanFieldJacobian_ELBO",
    "JIT_VARIANTS",
]


class MeanFieldJacobianMixin:
    """Adds the Delta ``log_density`` term that TraceMeanField's analytic KL drops."""

    def _differentiable_loss_particle(self, model_trace, guide_trace):
        loss, surrogate_loss = super()._differentiable_loss_particle(model_trace, guide_trace)
        correction = 0.0
        for name, model_site in model_trace.nodes.items():
            if model_site["type"] != "sample" or model_site["is_observed"]:
                continue
            guide_site = guide_trace.nodes.get(name)
            if guide_site is None or not isinstance(guide_site["fn"], dist.Delta):
                continue
            if is_identically_zero(guide_site["fn"].log_density):
                continue
            # log_prob_sum of a Delta at its own value = sum of log_density (scaled/masked).
            correction = correction + guide_site["log_prob_sum"]
        if is_identically_zero(correction):
            return loss, surrogate_loss
        # loss is -ELBO; the ELBO lacks -log q's Jacobian part, so -ELBO lacks +correction.
        if torch.is_tensor(loss):
            loss = loss + correction.detach()
        else:
            loss = loss + float(correction.detach())
        return loss, surrogate_loss + correction


class TraceMeanFieldJacobian_ELBO(MeanFieldJacobianMixin, TraceMeanField_ELBO):
    """TraceMeanField_ELBO that keeps the Jacobian of reparametrised autoguide latents."""


class JitTraceMeanFieldJacobian_ELBO(MeanFieldJacobianMixin, JitTraceMeanField_ELBO):
    """JIT-compiled :class:`TraceMeanFieldJacobian_ELBO`."""

    def differentiable_loss(self, model, guide, *args, **kwargs):
        result = super().differentiable_loss(model, guide, *args, **kwargs)
        # Pyro 1.9's JitTraceMeanField_ELBO caches the compiled loss as
        # ``_differentiable_loss`` but tests ``_loss_and_surrogate_loss``, so it re-traces
        # on every call; setting the tested name makes it reuse the compiled one.
        self._loss_and_surrogate_loss = self._differentiable_loss
        return result


class TraceTailAdaptiveLoss_ELBO(TraceTailAdaptive_ELBO):
    """Pyro's TraceTailAdaptive_ELBO reports its loss as ``inf`` (it only builds the
    surrogate). This also returns the plain Monte Carlo ``-ELBO`` of the same particles,
    so the loss curve, NaN detection and the stop rule work."""

    def _differentiable_loss_particle(self, model_trace, guide_trace):
        _, surrogate_loss = super()._differentiable_loss_particle(model_trace, guide_trace)
        log_pq = 0.0
        for trace, sign in ((model_trace, 1.0), (guide_trace, -1.0)):
            for site in trace.nodes.values():
                if site["type"] == "sample":
                    log_pq = log_pq + sign * site["log_prob"].reshape(self.num_particles, -1).sum(-1)
        return -float(log_pq.detach().mean()), surrogate_loss


_CLASSES: dict[str, type] = {
    "Trace_ELBO": Trace_ELBO,
    "TraceMeanField_ELBO": TraceMeanFieldJacobian_ELBO,
    "TraceEnum_ELBO": TraceEnum_ELBO,
    "TraceGraph_ELBO": TraceGraph_ELBO,
    "RenyiELBO": RenyiELBO,
    "TraceTailAdaptive_ELBO": TraceTailAdaptiveLoss_ELBO,
    "JitTrace_ELBO": JitTrace_ELBO,
    "JitTraceMeanField_ELBO": JitTraceMeanFieldJacobian_ELBO,
    "JitTraceEnum_ELBO": JitTraceEnum_ELBO,
    "JitTraceGraph_ELBO": JitTraceGraph_ELBO,
}
# The uncorrected Pyro class, for users who ask for it knowingly (tests, comparisons).
PYRO_TRACE_MEAN_FIELD = {"TraceMeanField_ELBO": TraceMeanField_ELBO,
                         "JitTraceMeanField_ELBO": JitTraceMeanField_ELBO}

JIT_VARIANTS = {
    "Trace_ELBO": "JitTrace_ELBO",
    "TraceMeanField_ELBO": "JitTraceMeanField_ELBO",
    "TraceEnum_ELBO": "JitTraceEnum_ELBO",
    "TraceGraph_ELBO": "JitTraceGraph_ELBO",
}


# ElboSpec options that Pyro's base ELBO takes for every class but that act in one class
# only (build_elbo passes them there alone).
_ONE_CLASS_OPTIONS = {"alpha": ("RenyiELBO",), "tail_adaptive_beta": ("TraceTailAdaptive_ELBO",),
                      "ignore_jit_warnings": tuple(n for n in _CLASSES if n.startswith("Jit"))}


def allowed_elbo_options(name: str) -> list[str]:
    """``ElboSpec`` options the ELBO ``name`` takes: those its Pyro class's constructor
    accepts, less those that act in another class only."""
    params = inspect.signature(_CLASSES[name].__init__).parameters
    return [
        field for field in ElboSpec.model_fields
        if field in params and name in _ONE_CLASS_OPTIONS.get(field, (name,))
    ]


def base_name(name: str) -> str:
    """``JitTrace_ELBO`` -> ``Trace_ELBO``; non-JIT names unchanged."""
    return name[3:] if name.startswith("Jit") else name


def jit_name(name: str) -> str | None:
    """The JIT variant of ``name`` (itself if already JIT), or None if Pyro has none."""
    return name if name.startswith("Jit") else JIT_VARIANTS.get(name)


def build_elbo(
    spec: ElboSpec,
    *,
    max_plate_nesting: int | None,
    jit: bool = False,
    jacobian_fix: bool = True,
) -> Any:
    """An ELBO instance for ``spec``; ``jit`` selects the JIT variant of the named ELBO."""
    name = spec.name
    if jit:
        variant = jit_name(name)
        if variant is None:
            raise SpecError(f"{name} has no JIT variant in Pyro; set inference.jit to false or 'auto'",
                            field="inference.jit")
        name = variant
    cls = _CLASSES[name]
    if not jacobian_fix and name in PYRO_TRACE_MEAN_FIELD:
        cls = PYRO_TRACE_MEAN_FIELD[name]
    kwargs: dict[str, Any] = {
        "num_particles": spec.num_particles,
        "vectorize_particles": spec.vectorize_particles,
        "max_plate_nesting": float("inf") if max_plate_nesting is None else max_plate_nesting,
        "strict_enumeration_warning": spec.strict_enumeration_warning,
    }
    allowed = allowed_elbo_options(name)
    if spec.retain_graph is not None:
        if "retain_graph" not in allowed:
            raise SpecError(f"{name} has no retain_graph option", field="inference.elbo.retain_graph")
        kwargs["retain_graph"] = spec.retain_graph
    if spec.alpha != 0.0 and "alpha" not in allowed:
        raise SpecError(f"alpha applies to RenyiELBO only, not {spec.name}", field="inference.elbo.alpha")
    kwargs.update({option: getattr(spec, option) for option in _ONE_CLASS_OPTIONS if option in allowed})
    return cls(**kwargs)


def _max_dim(trace) -> int:
    nesting = 0
    for site in trace.nodes.values():
        if site["type"] != "sample":
            continue
        for frame in site["cond_indep_stack"]:
            if frame.vectorized and frame.dim is not None:
                nesting = max(nesting, -frame.dim)
    return nesting


def infer_max_plate_nesting(
    model: Callable, guide: Callable | None, kwargs: Mapping[str, Any]
) -> int:
    """Trace the model (replayed against the guide when given) once, without enumeration,
    and return the deepest plate dim seen (as Pyro's ``_guess_max_plate_nesting``)."""
    with poutine.block():
        if guide is not None:
            traces = [prune_subsample_sites(t) for t in traced_pair(model, guide, kwargs)]
        else:
            traces = [prune_subsample_sites(poutine.trace(model).get_trace(**kwargs))]
    return max(_max_dim(t) for t in traces)


def has_enumeration(trace) -> list[str]:
    """Names of sample sites in ``trace`` marked for enumeration."""
    return [
        name
        for name, site in trace.nodes.items()
        if site["type"] == "sample"
        and not site.get("is_observed", False)
        and site["infer"].get("enumerate") in ("parallel", "sequential")
    ]
