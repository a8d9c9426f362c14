"""Response models of ``/v1/compare`` (and a sweep's ``/comparison``) and ``/v1/jobs/{id}/ppc``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from api.compare.table import SORT_KEYS

SortKey = Literal[SORT_KEYS]  # type: ignore[valid-type]


class ComparisonRow(BaseModel):
    job_id: str
    point: dict[str, Any] | None = Field(None, description="The sweep point (spec overrides) of a sweep member")
    model: dict[str, Any]
    guide: str
    elbo_name: str
    optimizer: str
    lr: float | None = None
    elbo: float | None = Field(None, description="Mean of log p(x,z) - log q(z) over the stored draws z ~ q")
    elbo_se: float | None = Field(None, description="Monte Carlo standard error of elbo")
    elbo_draws: int = 0
    k_hat: float | None = None
    k_hat_reading: str
    trusted: bool = Field(description="False when k-hat > 0.7: the fit is not to be trusted")
    elpd_loo: float | None = None
    elpd_loo_se: float | None = None
    p_loo: float | None = None
    elpd_diff: float | None = Field(None, description="elpd_loo of the best row minus this row's (arviz.compare)")
    elpd_diff_se: float | None = None
    loo_weight: float | None = Field(None, description="Stacking weight (arviz.compare)")
    loo_warning: bool | None = None
    loo_max_pareto_k: float | None = None
    n_observations: int | None = None
    steps: int
    wall_s: float | None = None
    converged: bool | None = None
    created_at: str | None = None
    labels: dict[str, Any] = Field(default_factory=dict)
    recommended: bool


class RecommendationRule(BaseModel):
    job_id: str | None
    criterion: Literal["elpd_loo", "elbo"]
    models_differ: bool
    reason: str


class Comparison(BaseModel):
    rows: list[ComparisonRow]
    recommended: str | None = Field(None, description="job_id of the recommended row")
    rule: RecommendationRule
    sort: str
    order: Literal["asc", "desc"]
    notes: list[str] = Field(default_factory=list)


class PpcOut(BaseModel):
    job_id: str
    sites: dict[str, Any] = Field(description="Observed site -> {num_observations, num_draws, statistics: "
                                              "{name: {observed, replicated, p_value}}, histogram}")
    quantiles: list[float]
    notes: list[str] = Field(default_factory=list)
