"""Guides from a ``GuideSpec``: autoguides with their options, hide/expose, lists, custom.

Every function here builds a *fresh* guide object. Autoguides keep state (their
prototype trace and their parameters live on the module), so the validation pass and
the training run each build their own.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

import torch
import pyro.infer.autoguide as autoguide
import pyro.infer.autoguide.initialization as init_strategies
from pyro import poutine
from pyro.infer.autoguide import (
    AutoContinuous,
    AutoGaussian,
    AutoGuide,
    AutoGuideList,
    AutoNormal,
    AutoStructured,
)

from inference.engine.errors import SpecError
from inference.spec import AUTOGUIDE_NAMES, AutoGuideSpec, GuideListSpec, SourceGuideSpec

__all__ = [
    "build_guide",
    "build_autoguide",
    "make_init_loc_fn",
    "allowed_options",
    "uses_delta_reparam",
    "INIT_LOC_FNS",
]

INIT_LOC_FNS = (
    "init_to_median",
    "init_to_mean",
    "init_to_sample",
    "init_to_feasible",
    "init_to_uniform",
    "init_to_value",
)
# Keyword options of each strategy besides ``fallback`` (which takes a strategy name).
# (``init_to_mean`` is wrapped so that a non-finite prior mean falls back too.)
_INIT_OPTIONS = {
    "init_to_median": ("num_samples",),
    "init_to_mean": (),
    "init_to_sample": (),
    "init_to_feasible": (),
    "init_to_uniform": ("radius",),
    "init_to_value": ("values",),
}
_HAS_FALLBACK = ("init_to_median", "init_to_mean", "init_to_value")

# Options that take a Python callable in Pyro and have no JSON form here.
_CALLABLE_ONLY = ("create_plates",)
# AutoIAFNormal forwards **kwargs to the transform; only these are supported.
_IAF_OPTIONS = ("hidden_dim", "num_transforms", "init_loc_fn")


def allowed_options(name: str) -> list[str]:
    """Constructor options of autoguide ``name`` that a spec may set (from its signature)."""
    if name == "AutoIAFNormal":
        return list(_IAF_OPTIONS)
    cls = getattr(autoguide, name)
    params = inspect.signature(cls.__init__).parameters
    return [
        p
        for p, v in params.items()
        if p not in ("self", "model")
        and p not in _CALLABLE_ONLY
        and v.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    ]


def make_init_loc_fn(
    value: Any, *, field: str, float_dtype: torch.dtype = torch.float32, device: Any = "cpu"
) -> Callable:
    """``"init_to_median"`` or ``{"name": "init_to_value", "values": {...}, "fallback": ...}``."""
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, Mapping) or "name" not in value:
        raise SpecError(
            f"{field} must be a strategy name or an object with 'name'; one of {list(INIT_LOC_FNS)}",
            field=field,
        )
    name = value["name"]
    if name not in INIT_LOC_FNS:
        raise SpecError(
            f"{field}: unknown init strategy {name!r}; use one of {list(INIT_LOC_FNS)}",
            field=f"{field}.name",
        )
    allowed = set(_INIT_OPTIONS[name]) | ({"fallback"} if name in _HAS_FALLBACK else set())
    kwargs: dict[str, Any] = {}
    for key, option in value.items():
        if key == "name":
            continue
        if key not in allowed:
            raise SpecError(
                f"{field}: {name} has no option {key!r}; allowed: {sorted(allowed) or 'none'}",
                field=f"{field}.{key}",
            )
        if key == "fallback":
            kwargs["fallback"] = (
                None
                if option is None
                else make_init_loc_fn(
                    option, field=f"{field}.fallback", float_dtype=float_dtype, device=device
                )
            )
        elif key == "values":
            if not isinstance(option, Mapping):
                raise SpecError(f"{field}.values must map site names to numbers or arrays",
                                field=f"{field}.values")
            try:
                kwargs["values"] = {
                    site: torch.as_tensor(v, dtype=float_dtype, device=device)
                    for site, v in option.items()
                }
            except (TypeError, ValueError, RuntimeError) as e:
                raise SpecError(f"{field}.values: {e}", field=f"{field}.values") from e
        else:
            kwargs[key] = option
    if name == "init_to_mean":
        return _finite_mean(kwargs.get("fallback"))
    return getattr(init_strategies, name)(**kwargs) if kwargs else getattr(init_strategies, name)


def _finite_mean(fallback: Callable | None = None) -> Callable:
    """``init_to_mean`` that falls back when the prior mean is not finite (HalfCauchy,
    StudentT(1), ...): Pyro's own fallback only covers a missing ``.mean``, and an
    infinite init makes the first loss nan."""
    fallback = fallback or init_strategies.init_to_median

    def init(site=None):
        if site is None:
            return init
        value = init_strategies.init_to_mean(site, fallback=fallback)
        if torch.is_tensor(value) and not bool(torch.isfinite(value).all()):
            return fallback(site)
        return value

    return init


# The messenger guides default to init_to_mean; keep that, with the finite fallback.
_DEFAULT_INIT = {"AutoNormalMessenger", "AutoHierarchicalNormalMessenger"}


def _block(model: Callable, hide: list[str], expose: list[str] | None) -> Callable:
    if expose is not None:
        return poutine.block(model, expose=list(expose))
    if hide:
        return poutine.block(model, hide=list(hide))
    return model


def build_autoguide(
    spec: AutoGuideSpec,
    model: Callable,
    *,
    field: str = "guide",
    float_dtype: torch.dtype = torch.float32,
    device: Any = "cpu",
) -> AutoGuide:
    """One autoguide over ``model`` (blocked by ``hide``/``expose``)."""
    name = spec.auto
    if name not in AUTOGUIDE_NAMES:  # the spec's Literal already enforces this
        raise SpecError(f"unknown guide {name!r}", field=f"{field}.auto")
    allowed = allowed_options(name)
    kwargs: dict[str, Any] = {}
    for key, value in spec.options.items():
        if key not in allowed:
            raise SpecError(
                f"{name} has no option {key!r}; allowed options: {allowed}",
                field=f"{field}.options.{key}",
            )
        if key == "init_loc_fn":
            if value is None:
                continue
            value = make_init_loc_fn(
                value, field=f"{field}.options.init_loc_fn", float_dtype=float_dtype, device=device
            )
        elif key == "amortized_plates":
            value = tuple(value)
        elif key == "backend" and value not in (None, "dense"):
            raise SpecError("AutoGaussian: only backend 'dense' is available",
                            field=f"{field}.options.backend")
        kwargs[key] = value
    if name in _DEFAULT_INIT and "init_loc_fn" not in kwargs:
        kwargs["init_loc_fn"] = _finite_mean(init_strategies.init_to_feasible)
    cls = getattr(autoguide, name)
    try:
        return cls(_block(model, spec.hide, spec.expose), **kwargs)
    except (TypeError, ValueError) as e:
        raise SpecError(f"{name}: {e}", field=f"{field}.options") from e


def build_guide(
    spec: AutoGuideSpec | SourceGuideSpec | GuideListSpec,
    model: Callable,
    *,
    float_dtype: torch.dtype = torch.float32,
    device: Any = "cpu",
    compile_guide: Callable[[str, str], Callable] | None = None,
) -> Callable:
    """A fresh guide for ``model`` from its spec.

    ``compile_guide(source, entry)`` turns model-language source into a callable; it
    defaults to ``inference.language.compile_source``.
    """
    if isinstance(spec, AutoGuideSpec):
        return build_autoguide(spec, model, float_dtype=float_dtype, device=device)
    if isinstance(spec, GuideListSpec):
        guide = AutoGuideList(model)
        for i, part in enumerate(spec.list):
            guide.append(
                build_autoguide(
                    part, model, field=f"guide.list.{i}", float_dtype=float_dtype, device=device
                )
            )
        return guide
    if isinstance(spec, SourceGuideSpec):
        if compile_guide is None:
            from inference.language import compile_source

            compile_guide = lambda source, entry: compile_source(source, entry)  # noqa: E731
        return compile_guide(spec.source, spec.entry)
    raise SpecError(f"unsupported guide spec {type(spec).__name__}", field="guide")


def uses_delta_reparam(guide: Any) -> bool:
    """Whether ``guide`` emits latents as ``Delta(value, log_density=log|J|)`` sites.

    These are the autoguides whose Jacobian term TraceMeanField_ELBO drops (its analytic
    KL of a Delta ignores ``log_density``).
    """
    if isinstance(guide, AutoGuideList):
        return any(uses_delta_reparam(part) for part in guide)
    return isinstance(guide, (AutoNormal, AutoContinuous, AutoStructured, AutoGaussian))
