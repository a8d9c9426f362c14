"""The job spec: what a user asks the engine to do, as pydantic v2 models.

This is the same schema the REST API accepts in ``POST /v1/jobs`` (the API adds
``data``, ``webhook`` and ``labels`` in its own subclass). Defaults are those a Pyro
user expects: ``AutoNormal``, ``Trace_ELBO``, ``Adam(lr=0.01)``, 1000 steps.

Validation here is structural (types, bounds, one-of shapes). Whether an option
exists for the chosen guide / optimizer is checked by the engine against the Pyro
class itself, and reported as ``SpecError`` naming the option.
"""

from __future__ import annotations

import warnings
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = [
    "JobSpec",
    "ModelSpec",
    "SourceModelSpec",
    "CatalogModelSpec",
    "GuideSpec",
    "AutoGuideSpec",
    "SourceGuideSpec",
    "GuideListSpec",
    "InferenceSpec",
    "ElboSpec",
    "OptimizerSpec",
    "SchedulerSpec",
    "StopSpec",
    "OutputsSpec",
    "InitFromSpec",
    "ValidationError",
    "ELBO_NAMES",
    "AUTOGUIDE_NAMES",
    "OPTIMIZER_NAMES",
    "MAX_STEPS",
    "MAX_PARTICLES",
    "AUTO_STOP",
]

# Bounds. Generous for a library call; the API applies tenant quotas on top.
MAX_STEPS = 10_000_000
MAX_PARTICLES = 1024
MAX_SAMPLES = 100_000
MAX_SOURCE_CHARS = 200_000

ELBO_NAMES = (
    "Trace_ELBO",
    "TraceMeanField_ELBO",
    "TraceEnum_ELBO",
    "TraceGraph_ELBO",
    "RenyiELBO",
    "TraceTailAdaptive_ELBO",
    "JitTrace_ELBO",
    "JitTraceMeanField_ELBO",
    "JitTraceEnum_ELBO",
    "JitTraceGraph_ELBO",
)

AUTOGUIDE_NAMES = (
    "AutoNormal",
    "AutoDelta",
    "AutoDiagonalNormal",
    "AutoMultivariateNormal",
    "AutoLowRankMultivariateNormal",
    "AutoLaplaceApproximation",
    "AutoIAFNormal",
    "AutoStructured",
    "AutoNormalMessenger",
    "AutoHierarchicalNormalMessenger",
    "AutoGaussian",
)

OPTIMIZER_NAMES = (
    "Adam",
    "ClippedAdam",
    "AdamW",
    "SGD",
    "RMSprop",
    "Adagrad",
    "Adadelta",
    "Adamax",
    "NAdam",
    "RAdam",
)

FLOAT_DTYPES = ("float32", "float64")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


# ----------------------------------------------------------------------------- model
class SourceModelSpec(_Strict):
    """A model written in the model language."""

    source: Annotated[str, Field(min_length=1, max_length=MAX_SOURCE_CHARS)]
    entry: Annotated[str, Field(min_length=1, max_length=200)] = "model"


class CatalogModelSpec(_Strict):
    """A built-in model from the catalog, by name."""

    catalog: Annotated[str, Field(min_length=1, max_length=200)]


def _model_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return "catalog" if isinstance(value, CatalogModelSpec) else "source"
    if isinstance(value, dict):
        has_source, has_catalog = "source" in value, "catalog" in value
        if has_source and has_catalog:
            return None
        if has_catalog:
            return "catalog"
        if has_source:
            return "source"
    return None


ModelSpec = Annotated[
    Union[
        Annotated[SourceModelSpec, Tag("source")],
        Annotated[CatalogModelSpec, Tag("catalog")],
    ],
    Discriminator(
        _model_kind,
        custom_error_type="model_kind",
        custom_error_message=(
            'model must be {"source": ..., "entry": ...} or {"catalog": name}, '
            "exactly one of the two"
        ),
    ),
]


# ----------------------------------------------------------------------------- guide
class AutoGuideSpec(_Strict):
    """A ``pyro.infer.autoguide`` class by name.

    ``options`` are the constructor's keyword arguments (JSON values; ``init_loc_fn``
    by name, see docs/engine.md). ``hide``/``expose`` select the model sites the guide
    sees, as ``poutine.block`` does; give at most one of them.
    """

    auto: Literal[AUTOGUIDE_NAMES]  # type: ignore[valid-type]
    options: dict[str, Any] = Field(default_factory=dict)
    hide: list[str] = Field(default_factory=list)
    expose: list[str] | None = None

    @model_validator(mode="after")
    def _hide_or_expose(self) -> "AutoGuideSpec":
        if self.hide and self.expose is not None:
            raise ValueError("give either hide or expose, not both")
        return self


class SourceGuideSpec(_Strict):
    """A custom guide written in the model language (called with the model's data)."""

    source: Annotated[str, Field(min_length=1, max_length=MAX_SOURCE_CHARS)]
    entry: Annotated[str, Field(min_length=1, max_length=200)] = "guide"


class GuideListSpec(_Strict):
    """An ``AutoGuideList``: each part is an autoguide, usually with its own ``expose``."""

    list: Annotated[list[AutoGuideSpec], Field(min_length=1, max_length=32)]


def _guide_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return {AutoGuideSpec: "auto", SourceGuideSpec: "source", GuideListSpec: "list"}.get(
            type(value)
        )
    if isinstance(value, dict):
        kinds = [k for k in ("auto", "source", "list") if k in value]
        if len(kinds) == 1:
            return kinds[0]
    return None


GuideSpec = Annotated[
    Union[
        Annotated[AutoGuideSpec, Tag("auto")],
        Annotated[SourceGuideSpec, Tag("source")],
        Annotated[GuideListSpec, Tag("list")],
    ],
    Discriminator(
        _guide_kind,
        custom_error_type="guide_kind",
        custom_error_message=(
            'guide must be {"auto": name, "options": {...}, "hide": [...]}, '
            '{"source": ..., "entry": ...} or {"list": [autoguide, ...]}, exactly one of them'
        ),
    ),
]


# ------------------------------------------------------------------------- inference
class ElboSpec(_Strict):
    """The ELBO and its options (names as in ``pyro.infer``)."""

    name: Literal[ELBO_NAMES] = "Trace_ELBO"  # type: ignore[valid-type]
    # None: 1 on Pyro's path; on the fast path chosen from the model size (docs/engine.md).
    num_particles: Annotated[int, Field(ge=1, le=MAX_PARTICLES)] | None = None
    vectorize_particles: bool = False
    max_plate_nesting: Annotated[int, Field(ge=0, le=32)] | None = None
    alpha: float = 0.0  # RenyiELBO only
    strict_enumeration_warning: bool = True
    ignore_jit_warnings: bool = False
    retain_graph: bool | None = None
    tail_adaptive_beta: Annotated[float, Field(lt=0.0)] = -1.0  # TraceTailAdaptive_ELBO only

    @field_validator("alpha")
    @classmethod
    def _alpha_not_one(cls, v: float) -> float:
        if v == 1.0:
            raise ValueError("alpha must not be 1 (RenyiELBO is undefined there); use Trace_ELBO")
        return v

    @model_validator(mode="after")
    def _tail_adaptive_needs_particles(self) -> "ElboSpec":
        if self.name == "TraceTailAdaptive_ELBO" and (
            (self.num_particles or 1) < 2 or not self.vectorize_particles
        ):
            raise ValueError(
                "TraceTailAdaptive_ELBO needs num_particles >= 2 and vectorize_particles: true"
            )
        return self


class OptimizerSpec(_Strict):
    """A ``pyro.optim`` wrapper of a torch optimizer (or ClippedAdam).

    Fields left ``None`` take the torch default. Setting a field the chosen optimizer
    does not accept is a ``SpecError`` from the engine, naming the accepted ones.
    ``options`` passes further constructor arguments by their torch name.
    """

    name: Literal[OPTIMIZER_NAMES] = "Adam"  # type: ignore[valid-type]
    lr: Annotated[float, Field(gt=0.0, le=100.0)] = 0.01
    betas: tuple[Annotated[float, Field(ge=0.0, lt=1.0)], Annotated[float, Field(ge=0.0, lt=1.0)]] | None = None
    eps: Annotated[float, Field(gt=0.0)] | None = None
    weight_decay: Annotated[float, Field(ge=0.0)] | None = None
    momentum: Annotated[float, Field(ge=0.0)] | None = None
    clip_norm: Annotated[float, Field(gt=0.0)] | None = None  # ClippedAdam only
    lrd: Annotated[float, Field(gt=0.0, le=1.0)] | None = None  # ClippedAdam only
    options: dict[str, Any] = Field(default_factory=dict)


class SchedulerSpec(_Strict):
    """A learning-rate scheduler stepped by the run loop every ``every_steps`` steps.

    ``exponential``: ``gamma``. ``step``: ``step_size`` (in scheduler steps), ``gamma``.
    ``cosine``: ``t_max`` (defaults to the number of scheduler steps), ``eta_min``.
    ``reduce_on_plateau``: ``factor``, ``patience``, ``threshold``, ``min_lr``, fed the
    mean loss since the previous scheduler step.
    """

    name: Literal["exponential", "step", "cosine", "reduce_on_plateau"]
    every_steps: Annotated[int, Field(ge=1)] = 1
    gamma: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    step_size: Annotated[int, Field(ge=1)] | None = None
    t_max: Annotated[int, Field(ge=1)] | None = None
    eta_min: Annotated[float, Field(ge=0.0)] = 0.0
    factor: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.1
    patience: Annotated[int, Field(ge=0)] = 10
    threshold: Annotated[float, Field(ge=0.0)] = 1e-4
    min_lr: Annotated[float, Field(ge=0.0)] = 0.0

    @model_validator(mode="after")
    def _required(self) -> "SchedulerSpec":
        if self.name == "exponential" and self.gamma is None:
            raise ValueError("scheduler 'exponential' needs gamma")
        if self.name == "step" and self.step_size is None:
            raise ValueError("scheduler 'step' needs step_size")
        return self


AUTO_STOP = {
    # The "auto" rule's constants (docs/engine.md, "Stopping"); see inference.engine.stopping.
    "window": 100,  # steps per window; first tested after two windows
    "loss_z": 2.0,  # |mean(last window) - mean(window before)| <= loss_z * its standard error
    "loss_rel": 1e-4,  # ... or <= loss_rel * (1 + |mean|) (noise-free losses)
    "loc_drift": 0.2,  # posterior means moved <= 0.2 posterior sd over the window
    "scale_drift": 0.1,  # posterior sds changed <= 10% over the window
    "param_drift": 0.01,  # other guides: |change| <= 0.01 * (1 + |value|) per unconstrained param
    "checks": 2,  # the rule holds at this many consecutive cadence checks
    "drift_horizons": (1, 2, 4),  # drift measured against snapshots this many windows back
    "lr_halvings": 10,  # loss flat, params still moving: halve the learning rate (at most 10 times)
    "trend_moves": 4,  # trend: over the last 4 moves between checks a posterior mean went > trend_sd sds ...
    "trend_sd": 0.2,
    "trend_straightness": 0.75,  # ... in one direction: net move >= 0.75 of its path (a jitter's cancel)
}


class StopSpec(_Strict):
    """Stop early when the smoothed loss changes by less than ``rel_tol`` (relative)
    over the last ``window`` steps, but never before ``min_steps``."""

    rel_tol: Annotated[float, Field(gt=0.0, lt=1.0)] = 1e-4
    window: Annotated[int, Field(ge=2, le=1_000_000)] = 100
    min_steps: Annotated[int, Field(ge=0)] = 200


class InitFromSpec(_Strict):
    """Warm start from a finished job of the service (which resolves ``job`` to its params).

    The guide and model params start at that job's fitted values (same names and shapes,
    checked). ``optimizer: true`` also resumes its optimizer state, RNG and loss curve from
    its final checkpoint (what ``POST /v1/jobs/{id}/continue`` sets).
    """

    job: Annotated[str, Field(min_length=1, max_length=64)]
    optimizer: bool = False


# ``validate`` is the field name the API contract uses; it shadows pydantic's
# deprecated ``BaseModel.validate`` classmethod, which nobody calls on a spec.
warnings.filterwarnings("ignore", message='Field name "validate"', category=UserWarning)


class InferenceSpec(_Strict):
    elbo: ElboSpec = Field(default_factory=ElboSpec)
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    scheduler: SchedulerSpec | None = None
    clip_grad_norm: Annotated[float, Field(gt=0.0)] | None = None
    steps: Annotated[int, Field(ge=1, le=MAX_STEPS)] = 1000
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    jit: bool | Literal["auto"] = False
    # The compiled fast path (docs/engine.md, "Fast path"): "auto" takes it when the model,
    # guide, ELBO and optimizer qualify; false always runs Pyro's SVI; true is "auto" that
    # the caller wants (the reason is in diagnostics["fast_path"] either way).
    fast_path: bool | Literal["auto"] = "auto"
    # How the fast path's loss-and-gradient graph runs: "trace" (TorchScript; compiles in
    # well under a second), "inductor" (C++ via torch.compile: much faster steps, ~15 s to
    # compile on a small CPU), "eager". "auto" = "trace".
    fast_path_compiler: Literal["auto", "trace", "inductor", "eager"] = "auto"
    # Start a Gaussian autoguide on the fast path at the Laplace approximation around the
    # MAP (L-BFGS + Hessian; skipped with a reason when there is none, e.g. a funnel, or
    # beyond 200 latent dimensions). See docs/engine.md, "Fast path".
    map_init: bool = False
    float_dtype: Literal[FLOAT_DTYPES] = "float32"  # type: ignore[valid-type]
    # When to stop (docs/engine.md, "Stopping"): "auto" = the convergence rule on the
    # smoothed loss and the guide's parameter drift, capped by ``steps``; "steps" (or null)
    # = exactly ``steps`` steps; a StopSpec = the relative-tolerance rule, capped by ``steps``.
    stop: StopSpec | Literal["auto", "steps"] | None = "auto"
    progress_every_steps: Annotated[int, Field(ge=1)] = 100
    progress_every_s: Annotated[float, Field(gt=0.0)] = 2.0
    checkpoint_every_s: Annotated[float, Field(gt=0.0)] | None = 60.0
    validate: bool = True
    # torch intra-op threads during the fit; None = 1 for small data on CPU (SVI steps on
    # small tensors lose more to thread hand-offs than they gain), torch's default otherwise.
    num_threads: Annotated[int, Field(ge=1, le=256)] | None = None
    init_from: InitFromSpec | None = None  # warm start (inference.engine.warm_start)


class OutputsSpec(_Strict):
    num_samples: Annotated[int, Field(ge=1, le=MAX_SAMPLES)] = 1000
    predictive: bool = False
    log_probs: bool = True
    elbo_terms_every: Annotated[int, Field(ge=0)] = 100  # 0 = only at the end
    elbo_terms_particles: Annotated[int, Field(ge=1, le=MAX_PARTICLES)] = 64
    grad_norms_every: Annotated[int, Field(ge=0)] = 100  # 0 = never
    # Draws for the trace log-probs and k-hat; None = as many as num_samples, so the
    # log_likelihood and posterior groups of an InferenceData line up.
    log_prob_draws: Annotated[int | None, Field(ge=1, le=MAX_SAMPLES)] = None


class JobSpec(_Strict):
    """What to fit and how. ``JobSpec.model_validate(body)`` on the JSON job body."""

    version: Literal[1] = 1
    model: ModelSpec
    guide: GuideSpec = Field(default_factory=lambda: AutoGuideSpec(auto="AutoNormal"))
    inference: InferenceSpec = Field(default_factory=InferenceSpec)
    outputs: OutputsSpec = Field(default_factory=OutputsSpec)
