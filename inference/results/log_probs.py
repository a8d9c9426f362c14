"""Per-draw trace log-probabilities and the per-site ELBO decomposition.

Both functions look at the same object: draws z ~ q from the guide, the model replayed
on each draw (as ``Trace_ELBO`` does), and every site's log-density at that draw.

Conventions (documented for API users in the result's ``notes``):

* ``model_sites[s]``: log p of model site s (latent and observed), summed over its
  plates, with the site's scale (subsampling) and mask applied, i.e. what
  ``Trace.log_prob_sum`` adds up. ``pyro.deterministic`` sites are left out (their
  log-density is masked to 0 by Pyro).
* ``guide_sites[s]``: log q of latent s. Autoguide auxiliary sites are folded into
  their latent: AutoNormal's ``s_unconstrained`` log q is added to the log-Jacobian
  carried by the Delta site ``s``. Joint auxiliary sites (AutoDiagonalNormal's
  ``_AutoDiagonalNormal_latent``, AutoMultivariateNormal, AutoIAFNormal, ...) cannot be
  split by latent: their log q goes under the single key ``"[guide joint]"``, and each
  latent keeps only its own log-Jacobian. ``sum(guide_sites) == log_q`` always.
* ``log_joint`` = log p(x, z), ``log_q`` = log q(z), ``log_weight`` = their difference
  (the importance log-ratio whose Pareto k-hat is the "did it work?" diagnostic).
* ``pointwise[o]``: the unscaled log-likelihood of observed site o per draw and per data
  point (shape ``[draws, *batch_shape]``), for ArviZ's ``log_likelihood`` group / LOO.

Enumerated models (discrete latents the guide leaves to ``TraceEnum_ELBO``): ``log_joint``
is the *marginal* log p(x, z_guide) (discrete sites summed out by the same tensor
contraction ``TraceEnum_ELBO`` uses), so ``log_weight`` is a valid importance
ratio for q. ``model_sites`` (with ``sample_discrete=True``) come from a trace whose discrete sites were drawn
from their exact conditional posterior with ``infer_discrete``; their sum is
log p(x, z_guide, z_discrete), which differs from ``log_joint`` by
log p(z_discrete | x, z_guide) (reported as ``log_p_discrete_given_rest``) — with
``sample_discrete=True``; by default the dependent sites are reported together,
marginalised, under one key (see ``trace_log_probs``).
``pointwise`` are per-point marginals (discrete sites summed out) when every enumerated
site feeds a single observed site (mixtures); otherwise pointwise is left empty and a
note says why. Enumerated models are evaluated one draw at a time.
"""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from collections.abc import Callable, Mapping
from typing import Any

import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions.kl import kl_divergence
from pyro.distributions.util import scale_and_mask
from pyro.infer import infer_discrete
from pyro.ops import packed
from pyro.ops.contract import contract_to_tensor
from pyro.ops.rings import LogRing

from inference.engine.elbos import infer_max_plate_nesting

from .formats import to_numpy
from ._traces import (
    ScopedReplay,
    JOINT_KEY,
    SiteRoles,
    check_vectorised_draw,
    draws_first,
    is_sample_site,
    per_draw,
    site_roles,
    traced_pair,
)

# ---------------------------------------------------------------- the shared core


class _Draws:
    """Per-draw, per-site log-densities of ``num`` draws (torch tensors of shape [num])."""

    def __init__(self) -> None:
        self.model_sites: dict[str, list[torch.Tensor]] = {}
        self.guide_sites: dict[str, list[torch.Tensor]] = {}
        self.pointwise: dict[str, list[torch.Tensor]] = {}
        self.log_joint: list[torch.Tensor] = []
        self.log_q: list[torch.Tensor] = []
        self.analytic_kl: dict[str, list[torch.Tensor]] = {}
        self.marginal_groups: dict[str, list[torch.Tensor]] = {}  # enumerated: obs group -> marginal term
        self.group_members: dict[str, list[str]] = {}
        self.log_p_discrete: list[torch.Tensor] = []
        self.guide_values: dict[str, list[torch.Tensor]] = {}
        self.point_mass = False
        self.notes: list[str] = []

    @staticmethod
    def _add(target: dict, name: str, value: torch.Tensor) -> None:
        target.setdefault(name, []).append(value)

    def repeat(self, num: int) -> None:
        """Tile a single evaluated draw ``num`` times (for a deterministic guide)."""
        for parts in (self.model_sites, self.guide_sites, self.pointwise, self.analytic_kl,
                      self.marginal_groups, self.guide_values):
            for name, values in parts.items():
                single = torch.cat(values)
                parts[name] = [single.expand(num, *single.shape[1:]).clone()]
        self.log_joint = [torch.cat(self.log_joint).expand(num).clone()]
        self.log_q = [torch.cat(self.log_q).expand(num).clone()]

    def cat(self, parts: dict[str, list[torch.Tensor]]) -> dict[str, torch.Tensor]:
        return {n: torch.cat(v) for n, v in parts.items()}


def _guide_site_terms(guide_trace, roles: SiteRoles, num: int, mpn: int) -> dict[str, torch.Tensor]:
    terms: dict[str, torch.Tensor] = {}
    for name, site in guide_trace.nodes.items():
        if not is_sample_site(name, site):
            continue
        key = name
        if name in roles.guide_only:
            key = roles.folded.get(name, JOINT_KEY)
        value = per_draw(site["log_prob"], num, mpn)
        terms[key] = terms[key] + value if key in terms else value
    return terms


def _pointwise(site: Mapping, num: int, mpn: int, batch_shape: tuple[int, ...]) -> torch.Tensor:
    """Unscaled log-likelihood of an observed site as ``[num, *batch_shape]``."""
    lp = site["unscaled_log_prob"].detach().cpu()
    mask = site["mask"]
    if mask is False:
        lp = torch.zeros_like(lp)
    elif torch.is_tensor(mask):
        # Masked-out points contribute nothing, as in the ELBO.
        lp = lp.masked_fill(~mask.detach().cpu().bool(), 0.0)
    draws_dim = -(mpn + 1)
    if lp.dim() < -draws_dim:
        lp = lp.reshape((1,) * (-draws_dim - lp.dim()) + tuple(lp.shape))
    lp = lp.reshape(lp.shape[lp.dim() + draws_dim :])  # dims left of the draws dim are size 1
    full = (num,) + tuple(batch_shape)
    rest = (lp.shape[0],) + tuple(lp.shape[1:])
    target = torch.broadcast_shapes(rest, (num,) + (1,) * (len(rest) - 1))
    lp = lp.expand(target)
    return lp.reshape(full)


def _guide_values(guide_trace, num: int, natural: Mapping[str, tuple]) -> dict[str, torch.Tensor]:
    return {
        name: draws_first(site["value"], num, natural[name])
        for name, site in guide_trace.nodes.items()
        if is_sample_site(name, site) and name in natural
    }


def _block(model, guide, kwargs, num, mpn, roles, batch_shapes, *, analytic_kl, pointwise, natural, vectorise, check=None):
    """``num`` draws at once inside the draws plate, or (``vectorise=False``) one plain draw.

    ``check`` (model-site natural shapes) verifies draw 0 against a plain run first.
    """
    guide_trace, model_trace = traced_pair(
        model, guide, kwargs, num=num if vectorise else None, max_plate_nesting=mpn
    )
    guide_trace.compute_log_prob()
    model_trace.compute_log_prob()
    if vectorise and check is not None:
        problem = check_vectorised_draw(
            model, model_trace, kwargs, num=num, max_plate_nesting=mpn, natural=check
        )
        if problem:
            raise ValueError(f"the batched run disagrees with a plain run: {problem}")
    model_sites = {}
    for name, site in model_trace.nodes.items():
        if is_sample_site(name, site) and name not in roles.deterministic:
            model_sites[name] = per_draw(site["log_prob"], num, mpn)
    guide_sites = _guide_site_terms(guide_trace, roles, num, mpn)
    points = {}
    if pointwise:
        for name in roles.observed:
            points[name] = _pointwise(model_trace.nodes[name], num, mpn, batch_shapes[name])
    kls = {}
    if analytic_kl:
        kls = _analytic_kl(model_trace, guide_trace, roles, num, mpn)
    return model_sites, guide_sites, points, kls, _guide_values(guide_trace, num, natural)


def _is_real_support(fn) -> bool:
    support = fn.support
    while isinstance(support, torch.distributions.constraints.independent):
        support = support.base_constraint
    return support is torch.distributions.constraints.real


def _analytic_kl(model_trace, guide_trace, roles: SiteRoles, num: int, mpn: int) -> dict[str, torch.Tensor]:
    """-KL(q(z_s) || p(z_s | parents)) per draw, for latents where it is registered.

    Applies to a guide site with the latent's own name and a non-Delta distribution, or to
    an AutoNormal-style folded auxiliary site when the latent's support is the real line
    (the auxiliary Normal *is* q(z) then). Other latents keep the Monte Carlo term.
    """
    aux_for = {latent: aux for aux, latent in roles.folded.items()}
    out = {}
    for name in roles.latent:
        model_site = model_trace.nodes[name]
        guide_site = guide_trace.nodes[name]
        q_site = guide_site
        if name in aux_for:
            if not _is_real_support(model_site["fn"]):
                continue
            q_site = guide_trace.nodes[aux_for[name]]
        elif type(guide_site["fn"]).__name__ == "Delta":
            continue
        try:
            kl = kl_divergence(q_site["fn"], model_site["fn"])
        except NotImplementedError:
            continue
        if not torch.is_tensor(kl) or kl.shape != q_site["fn"].batch_shape:
            continue
        kl = scale_and_mask(kl, q_site["scale"], q_site["mask"])
        out[name] = -per_draw(kl, num, mpn)
    return out


def _guide_is_deterministic(model, guide, kwargs, first_trace) -> bool:
    """True when a second run of the guide gives the same value at every sample site."""
    with poutine.block():
        second, _ = traced_pair(model, guide, kwargs)
    for name, site in first_trace.nodes.items():
        if is_sample_site(name, site):
            other = second.nodes.get(name)
            if other is None or not torch.equal(other["value"], site["value"]):
                return False
    return True


def _is_point_mass(fn) -> bool:
    while True:
        if isinstance(fn, dist.Delta):
            return True
        base = getattr(fn, "base_dist", None)
        if base is None or isinstance(fn, dist.TransformedDistribution):
            return False
        fn = base


def _enum_dims(tensor: torch.Tensor, mpn: int) -> set[int]:
    """Negative positions of enumeration dims (left of the plates) with size > 1."""
    if not torch.is_tensor(tensor):
        return set()
    return {i - tensor.dim() for i in range(tensor.dim() - mpn) if tensor.shape[i] > 1}


def _enumerated_draw(model, guide, kwargs, mpn, roles, batch_shapes, *, pointwise, sample_discrete, draws, natural):
    """One draw of an enumerated model: marginal log joint, per-site terms, pointwise."""
    guide_trace, _ = traced_pair(model, guide, kwargs)
    for name, value in _guide_values(guide_trace, 1, natural).items():
        draws._add(draws.guide_values, name, value)
    guide_trace.compute_log_prob()
    guide_sites = _guide_site_terms(guide_trace, roles, 1, mpn)
    log_q = sum(guide_sites.values(), torch.zeros(1))
    # replay outside enum, as TraceEnum_ELBO does: enum must see every site (replayed ones
    # included) to track the markov context of sites sampled in a `pyro.markov` loop
    enum_trace = poutine.trace(
        poutine.replay(poutine.enum(model, first_available_dim=-(mpn + 1)), trace=guide_trace)
    ).get_trace(**kwargs)
    enum_trace.compute_log_prob()
    log_joint = _enumerated_log_joint(enum_trace, roles).reshape(1)
    independent = {}
    dependent = []
    for name, site in enum_trace.nodes.items():
        if not is_sample_site(name, site) or name in roles.deterministic:
            continue
        if _enum_dims(site["log_prob"], mpn):
            dependent.append(name)
        else:
            independent[name] = per_draw(site["log_prob"], 1, mpn)
    group = [n for n in dependent if n in roles.observed] or dependent
    group_key = "+".join(group)
    draws.group_members[group_key] = dependent
    marginal = log_joint - sum(independent.values(), torch.zeros(1))
    draws._add(draws.marginal_groups, group_key, marginal)

    if sample_discrete:
        sampled = poutine.trace(
            infer_discrete(ScopedReplay(trace=guide_trace)(model), first_available_dim=-(mpn + 1), temperature=1)
        ).get_trace(**kwargs)
        sampled.compute_log_prob()
        total = torch.zeros(1)
        for name, site in sampled.nodes.items():
            if is_sample_site(name, site) and name not in roles.deterministic:
                value = per_draw(site["log_prob"], 1, mpn)
                draws._add(draws.model_sites, name, value)
                total = total + value
        draws.log_p_discrete.append(total - log_joint)
    else:
        for name, value in independent.items():
            draws._add(draws.model_sites, name, value)
        if dependent:
            draws._add(draws.model_sites, group_key, marginal)

    if pointwise:
        points = _enumerated_pointwise(enum_trace, roles, mpn, batch_shapes)
        if points is None:
            if not any("pointwise" in n for n in draws.notes):
                draws.notes.append(
                    "pointwise log-likelihoods are left out: an enumerated site feeds several "
                    "observed sites or depends on another enumerated site, so the per-point "
                    "marginal does not factorise"
                )
        else:
            for name, value in points.items():
                draws._add(draws.pointwise, name, value)
    for name, value in guide_sites.items():
        draws._add(draws.guide_sites, name, value)
    draws.log_joint.append(log_joint)
    draws.log_q.append(log_q)


def _enumerated_log_joint(enum_trace, roles: SiteRoles) -> torch.Tensor:
    """log p(x, z_guide) with the enumerated sites summed out, from one enumerated trace.

    The same contraction as ``TraceEnum_ELBO``: sites untouched by enumeration add their
    (scaled) log-prob; the others are log-sum-exp'd over the enumeration dims and
    product-reduced over their plates (``pyro.ops.contract``), the common subsampling
    scale applied outside.
    """
    enum_trace.pack_tensors()
    plate_symbols = set(enum_trace.plate_to_symbol.values())
    sum_dims: set[str] = set()
    for name, site in enum_trace.nodes.items():
        if is_sample_site(name, site) and site["infer"].get("_enumerate_dim") is not None:
            sum_dims |= set(site["packed"]["unscaled_log_prob"]._pyro_dims)
    sum_dims -= plate_symbols
    total: Any = 0.0
    tree: OrderedDict = OrderedDict()
    scales = []
    for name, site in enum_trace.nodes.items():
        if not is_sample_site(name, site) or name in roles.deterministic:
            continue
        packed_site = site["packed"]
        if sum_dims.isdisjoint(packed_site["log_prob"]._pyro_dims):
            total = total + packed_site["log_prob"].sum()
            continue
        if site["infer"].get("_enumerate_dim") is not None:
            factor = packed_site["unscaled_log_prob"]
        else:
            factor = packed.scale_and_mask(packed_site["unscaled_log_prob"], mask=packed_site["mask"])
        ordinal = frozenset(
            enum_trace.plate_to_symbol[f.name] for f in site["cond_indep_stack"] if f.vectorized
        )
        tree.setdefault(ordinal, []).append(factor)
        scales.append(site["scale"])
    if tree:
        scale = scales[0]
        if any(float(s) != float(scale) for s in scales):
            raise ValueError("enumerated sites must share one subsampling scale (as in TraceEnum_ELBO)")
        marginal = contract_to_tensor(tree, sum_dims, ring=LogRing())
        total = total + float(scale) * marginal.sum()
    return torch.as_tensor(total).detach().cpu()


def _enumerated_pointwise(enum_trace, roles, mpn, batch_shapes):
    """Per-point marginal log-likelihoods when each enumerated site feeds one observed site."""
    enum_dims = {n: _enum_dims(enum_trace.nodes[n]["unscaled_log_prob"], mpn) for n in roles.enumerated}
    obs_dims = {n: _enum_dims(enum_trace.nodes[n]["unscaled_log_prob"], mpn) for n in roles.observed}
    owners: dict[str, str] = {}
    for e, dims in enum_dims.items():
        holders = [o for o, od in obs_dims.items() if dims & od]
        if len(holders) != 1 or not dims <= obs_dims[holders[0]]:
            return None
        # An enumerated site depending on another one has more dims than its own.
        own_dim = enum_trace.nodes[e]["infer"].get("_enumerate_dim")
        if own_dim is not None and dims != {own_dim}:
            return None
        owners[e] = holders[0]
    out = {}
    for o in roles.observed:
        lp = enum_trace.nodes[o]["unscaled_log_prob"]
        for e, owner in owners.items():
            if owner == o:
                lp = lp + enum_trace.nodes[e]["unscaled_log_prob"]
        dims = _enum_dims(lp, mpn)
        if dims:
            lp = torch.logsumexp(lp, dim=sorted(dims), keepdim=True)
        lp = lp.reshape(lp.shape[lp.dim() - mpn :]) if lp.dim() > mpn else lp
        full = lp.expand(torch.broadcast_shapes(lp.shape, batch_shapes[o]))
        out[o] = full.reshape((1,) + tuple(batch_shapes[o])).detach().cpu()
    return out


@dataclass
class SiteLayout:
    """What one traced run of the model against the guide says about their sites — the
    same at every step of one fit (same model, guide and data): plate nesting, site
    roles, shapes, whether the guide is a deterministic point mass, and whether a
    vectorised draw was checked against a plain run. The fit's ELBO-term function
    (``inference.fitting._elbo_terms_fn``) keeps one so the estimate made every
    ``elbo_terms_every`` steps does not trace the pair for it again each time. Filled on first use."""

    mpn: int = 0
    roles: SiteRoles | None = None
    natural: dict[str, tuple] = field(default_factory=dict)
    model_natural: dict[str, tuple] = field(default_factory=dict)
    batch_shapes: dict[str, tuple] = field(default_factory=dict)
    point_mass: bool = False
    deterministic: bool | None = None  # None: not asked yet (it costs guide runs)
    vectorised_checked: bool = False


def _collect(
    model: Callable,
    guide: Callable,
    kwargs: Mapping,
    num_draws: int,
    *,
    max_plate_nesting: int | None,
    pointwise: bool,
    analytic_kl: bool,
    sample_discrete: bool,
    batch_size: int,
    parallel: bool | None,
    layout: SiteLayout | None = None,
) -> tuple[_Draws, SiteRoles]:
    """``num_draws`` draws of every site's log-prob: traces the pair once for the site
    roles (or takes them from ``layout``, filled on its first use), then one exact draw
    (a deterministic point-mass guide), draw by draw (enumerated sites) or in vectorised
    blocks."""
    if num_draws < 1:
        raise ValueError(f"need at least one draw, got {num_draws}")
    with torch.no_grad():
        guide_trace = None
        if layout is None:
            layout = SiteLayout()
        if layout.roles is None:
            layout.mpn = (infer_max_plate_nesting(model, guide, kwargs) if max_plate_nesting is None
                          else max_plate_nesting)
            with poutine.block():
                guide_trace, model_trace = traced_pair(model, guide, kwargs)
            layout.roles = site_roles(model_trace, guide_trace)
            layout.batch_shapes = {n: tuple(model_trace.nodes[n]["fn"].batch_shape) for n in layout.roles.observed}
            layout.natural = {n: tuple(s["value"].shape) for n, s in guide_trace.nodes.items()
                              if is_sample_site(n, s)}
            layout.model_natural = {n: tuple(s["value"].shape) for n, s in model_trace.nodes.items()
                                    if is_sample_site(n, s)}
            layout.point_mass = bool(layout.natural) and all(
                _is_point_mass(guide_trace.nodes[n]["fn"]) for n in layout.natural)
        mpn, roles, batch_shapes, natural = layout.mpn, layout.roles, layout.batch_shapes, layout.natural
        draws = _Draws()
        draws.point_mass = layout.point_mass
        if num_draws > 1 and draws.point_mass and not sample_discrete and layout.deterministic is None:
            if guide_trace is None:
                with poutine.block():
                    guide_trace, _ = traced_pair(model, guide, kwargs)
            layout.deterministic = _guide_is_deterministic(model, guide, kwargs, guide_trace)
        if (
            num_draws > 1
            and draws.point_mass
            and not sample_discrete
            and layout.deterministic
        ):
            # AutoDelta / MAP: every draw is the same point, so one evaluation is exact
            # (this matters for enumerated models, which are evaluated draw by draw).
            one, roles = _collect(
                model, guide, kwargs, 1,
                max_plate_nesting=mpn, pointwise=pointwise, analytic_kl=analytic_kl,
                sample_discrete=False, batch_size=1, parallel=parallel,
            )
            one.repeat(num_draws)
            return one, roles
        if roles.enumerated:
            with poutine.block():
                for _ in range(num_draws):
                    _enumerated_draw(
                        model, guide, kwargs, mpn, roles, batch_shapes,
                        pointwise=pointwise, sample_discrete=sample_discrete, draws=draws,
                        natural=natural,
                    )
            return draws, roles

        _vectorised_draws(model, guide, kwargs, num_draws, mpn, roles, batch_shapes, natural, draws,
                          layout=layout, analytic_kl=analytic_kl, pointwise=pointwise, batch_size=batch_size,
                          parallel=parallel)
    return draws, roles


def _vectorised_draws(model: Callable, guide: Callable, kwargs: Mapping, num_draws: int, mpn: int,
                      roles: SiteRoles, batch_shapes: dict, natural: dict, draws: _Draws, *,
                      layout: SiteLayout, analytic_kl: bool, pointwise: bool, batch_size: int,
                      parallel: bool | None) -> None:
    """Draws of a model without enumerated sites, ``batch_size`` at a time in one
    vectorised trace; one at a time (with a note) when the model cannot be vectorised and
    ``parallel`` was not forced. The first vectorised block is checked against a plain run
    once per ``layout``."""
    model_natural = layout.model_natural
    vectorise = parallel is not False
    checked = layout.vectorised_checked
    done = 0
    while done < num_draws:
        num = min(batch_size, num_draws - done) if vectorise else 1
        try:
            with poutine.block():
                block = _block(
                    model, guide, kwargs, num, mpn, roles, batch_shapes,
                    analytic_kl=analytic_kl, pointwise=pointwise, natural=natural,
                    vectorise=vectorise, check=None if checked else model_natural,
                )
            checked = True
            layout.vectorised_checked = vectorise
        except Exception as exc:
            if not vectorise or parallel:
                raise
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            warnings.warn(f"trace log-probs not vectorisable ({first_line}); one draw at a time")
            draws.notes.append("draws evaluated one at a time (model not vectorisable)")
            vectorise = False
            continue
        _add_block(draws, block, num)
        done += num


def _add_block(draws: _Draws, block: tuple, num: int) -> None:
    """Append one block of ``num`` draws (as ``_block`` returns it) to ``draws``."""
    model_sites, guide_sites, points, kls, values = block
    for n, v in values.items():
        draws._add(draws.guide_values, n, v)
    for n, v in model_sites.items():
        draws._add(draws.model_sites, n, v)
    for n, v in guide_sites.items():
        draws._add(draws.guide_sites, n, v)
    for n, v in points.items():
        draws._add(draws.pointwise, n, v)
    for n, v in kls.items():
        draws._add(draws.analytic_kl, n, v)
    draws.log_joint.append(sum(model_sites.values(), torch.zeros(num)))
    draws.log_q.append(sum(guide_sites.values(), torch.zeros(num)))


# ---------------------------------------------------------------- public functions


def trace_log_probs(
    model: Callable,
    guide: Callable,
    kwargs: Mapping,
    num_draws: int,
    *,
    max_plate_nesting: int | None = None,
    pointwise: bool = True,
    batch_size: int = 1000,
    parallel: bool | None = None,
    return_draws: bool = False,
    sample_discrete: bool = False,
) -> dict[str, Any]:
    """Per-draw log-densities of ``num_draws`` guide draws replayed through the model.

    Returns a dict of numpy arrays (see the module docstring for the conventions)::

        {"model_sites": {site: [D]}, "guide_sites": {site: [D]}, "log_joint": [D],
         "log_q": [D], "log_weight": [D], "pointwise": {obs_site: [D, *batch]},
         "num_draws": D, "enumerated": bool, "notes": [str, ...]}

    Enumerated models: by default the sites that depend on the enumerated ones are
    reported together, marginalised, under one key (the dependent observed sites joined
    by ``"+"``), so ``sum(model_sites) == log_joint`` still holds. ``sample_discrete=True``
    instead draws the discrete sites from their conditional posterior (``infer_discrete``;
    about three more model runs per draw) and reports every site at that draw, plus
    ``"log_p_discrete_given_rest": [D]``.
    ``"point_mass_guide"`` is true when every guide site is a Delta (AutoDelta, MAP):
    log q is then 0 and the weights carry no information about the fit.
    ``return_draws=True`` adds ``"draws"``: the guide's own sample-site values (auxiliary
    sites included) per draw, so each row can be recomputed or conditioned on.
    """
    draws, roles = _collect(
        model, guide, kwargs, num_draws,
        max_plate_nesting=max_plate_nesting, pointwise=pointwise, analytic_kl=False,
        sample_discrete=sample_discrete, batch_size=batch_size, parallel=parallel,
    )
    log_joint = torch.cat(draws.log_joint)
    log_q = torch.cat(draws.log_q)
    out: dict[str, Any] = {
        "model_sites": {n: to_numpy(v) for n, v in draws.cat(draws.model_sites).items()},
        "guide_sites": {n: to_numpy(v) for n, v in draws.cat(draws.guide_sites).items()},
        "log_joint": to_numpy(log_joint),
        "log_q": to_numpy(log_q),
        "log_weight": to_numpy(log_joint - log_q),
        "pointwise": {n: to_numpy(v) for n, v in draws.cat(draws.pointwise).items()},
        "num_draws": int(num_draws),
        "enumerated": bool(roles.enumerated),
        "notes": list(draws.notes),
        "point_mass_guide": bool(draws.point_mass),
        "has_latents": bool(roles.latent or roles.enumerated or roles.unguided),
    }
    if return_draws:
        out["draws"] = {n: to_numpy(v) for n, v in draws.cat(draws.guide_values).items()}
    if roles.enumerated and sample_discrete:
        out["log_p_discrete_given_rest"] = to_numpy(torch.cat(draws.log_p_discrete))
        out["notes"].append(
            "enumerated model: log_joint is the marginal log p(x, z) with discrete sites "
            f"{roles.enumerated} summed out; model_sites are at a draw of those sites from "
            "their exact conditional posterior (infer_discrete)"
        )
    elif roles.enumerated:
        groups = ", ".join(repr(k) for k in draws.group_members)
        out["notes"].append(
            "enumerated model: log_joint is the marginal log p(x, z) with discrete sites "
            f"{roles.enumerated} summed out; the sites that depend on them are reported "
            f"together, marginalised, under {groups}"
        )
    if roles.joint_aux:
        out["notes"].append(
            f"guide sites {roles.joint_aux} are joint over several latents; their log q is "
            f"under {JOINT_KEY!r}, each latent keeps its own log-Jacobian"
        )
    return out


def estimate_elbo_terms(
    model: Callable,
    guide: Callable,
    kwargs: Mapping,
    *,
    num_particles: int = 64,
    max_plate_nesting: int | None = None,
    analytic_kl: bool = False,
    parallel: bool | None = None,
    layout: SiteLayout | None = None,
) -> dict[str, Any]:
    """A many-particle ELBO estimate split per site; the terms add up to ``elbo`` exactly.

    ``{"elbo": float, "reconstruction": {observed_site: E_q[log p(x_o | z)]},
    "kl": {latent_site: E_q[log p(z_s | parents) - log q(z_s)]}, "num_particles": n,
    "analytic": [sites], "notes": [...]}``.

    * Joint autoguides: ``kl[s]`` holds E[log p(z_s)] minus the site's own log-Jacobian;
      the joint auxiliary log q is the separate entry ``kl["[guide joint]"] = -E[log q]``.
    * Model latents that the guide does not cover and that are not enumerated are sampled
      from the prior by the model (as in ``Trace_ELBO``); their entry is E[log p(z_s)].
    * ``analytic_kl=True``: where ``kl_divergence(q_s, p_s)`` is registered and q_s is
      the site's own distribution (mean-field), ``kl[s] = -E[KL]`` replaces the Monte
      Carlo term (listed in ``"analytic"``); ``elbo`` is then the sum of the terms.
    * Enumerated models: the discrete sites are summed out exactly (TraceEnum_ELBO); the
      resulting log p(x | z_continuous) marginal is reported under the observed site that
      depends on them (observed sites joined by ``"+"`` when several do), and the discrete
      sites have no ``kl`` entry.

    The negated ELBO estimate agrees, within Monte Carlo error, with
    ``Trace_ELBO(num_particles=...).loss`` (``TraceEnum_ELBO`` for enumerated models).

    ``layout``: a :class:`SiteLayout` kept across the calls of one fit (the estimate made
    every ``elbo_terms_every`` steps), so the sites are traced for their roles, and a
    vectorised draw checked against a plain run, once per fit instead of at every call.
    """
    draws, roles = _collect(
        model, guide, kwargs, num_particles,
        max_plate_nesting=max_plate_nesting, pointwise=False, analytic_kl=analytic_kl,
        sample_discrete=False, batch_size=num_particles, parallel=parallel, layout=layout,
    )
    groups = draws.cat(draws.marginal_groups)
    # Marginalised groups are reported once, from ``groups``.
    model_sites = {n: v for n, v in draws.cat(draws.model_sites).items() if n not in groups}
    guide_sites = draws.cat(draws.guide_sites)
    analytic = draws.cat(draws.analytic_kl)

    def mean(x: torch.Tensor) -> float:
        return float(x.double().mean())

    reconstruction: dict[str, float] = {}
    kl: dict[str, float] = {}
    for name in roles.observed:
        if name in model_sites:
            reconstruction[name] = mean(model_sites[name])
    for name in roles.latent:
        if name in analytic:
            kl[name] = mean(analytic[name])
        elif name in model_sites:
            kl[name] = mean(model_sites[name] - guide_sites.get(name, 0.0))
        else:  # enumerated model, latent depends on a discrete site: its log p is in the marginal
            kl[name] = mean(-guide_sites.get(name, torch.zeros(1)))
    for name in roles.unguided:
        if name in model_sites:
            kl[name] = mean(model_sites[name])
    if JOINT_KEY in guide_sites:
        kl[JOINT_KEY] = mean(-guide_sites[JOINT_KEY])
    for key, values in groups.items():
        reconstruction[key] = mean(values)
    elbo = math.fsum(list(reconstruction.values()) + list(kl.values()))
    notes = list(draws.notes)
    if roles.enumerated:
        notes.append(f"discrete sites {roles.enumerated} are summed out (TraceEnum_ELBO)")
    return {
        "elbo": elbo,
        "reconstruction": reconstruction,
        "kl": kl,
        "num_particles": int(num_particles),
        "analytic": sorted(analytic),
        "notes": notes,
    }
