"""The fast path: the ELBO as one tensor function of the guide's flat parameters.

For the common case — every latent continuous, a Gaussian-family autoguide (AutoNormal,
AutoDiagonalNormal, AutoMultivariateNormal, AutoLowRankMultivariateNormal, AutoDelta,
AutoLaplaceApproximation) and a reparameterised ELBO (Trace, TraceMeanField, TraceGraph,
Renyi) — the per-step work of Pyro (tracing guide and model, one optimizer per parameter)
is replaced by:

- ``phi``: one flat tensor holding the guide's unconstrained parameters, in the param
  store's own parameterisation (so Adam's trajectory is the one Pyro's would be);
- the guide's math written out: ``u = loc + L eps`` for ``K`` particles at once (one
  ``randn(K, D)``), ``log q(u)`` and, for the Trace-family ELBOs, the analytic entropy
  in the gradient (the reported loss keeps the Monte Carlo ``log q`` so it is exactly
  the value Pyro reports for the same draws);
- the model's log joint in unconstrained space, ``log p(x, T(u)) + log|dT/du|``, from the
  model run under ``poutine.condition`` (vectorised over particles by a plate at
  ``-max_plate_nesting - 1`` when the model broadcasts, checked on a trial point) and
  differentiated, and the forward and backward recorded once (``make_fx``) as one graph of
  aten ops without Python, Pyro or the autograd engine in it, shrunk
  (:mod:`inference.engine.graph_passes`: on a small model the step time is the op count),
  replayed by TorchScript (or compiled by Inductor on request), checked against the eager
  function on fresh points (eager when it does not agree or cannot be recorded faithfully);
- one torch optimizer over ``phi``; with Adam/AdamW up to 64 steps run inside one
  TorchScript call (:class:`_AdamSteps`, torch's fused kernel), else several steps per
  Python call.

After training (and before every hook, checkpoint or error report) ``phi`` is written
back into the param store under the autoguide's own names and shapes, so everything
downstream (draws, log-probs, ELBO terms, checkpoints) is the general path's code.
:func:`plan` says whether a job qualifies and, when not, why.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, List, Mapping, Tuple

import torch
import pyro
from pyro import poutine
from pyro.distributions import constraints
from pyro.distributions.util import scale_and_mask
from pyro.poutine.util import prune_subsample_sites
from pyro.distributions.transforms import biject_to
from torch.distributions import transform_to
from pyro.infer.autoguide import (
    AutoDelta,
    AutoDiagonalNormal,
    AutoLaplaceApproximation,
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
    AutoNormal,
)

from inference.engine.elbos import base_name
from inference.engine.graph_passes import record, simplify, value_dependent_shapes
from inference.engine.optim import TORCH_OPTIMIZERS, optim_args

__all__ = ["FastPathReport", "FastProblem", "FastTrainer", "plan", "choose_particles", "FAST_ELBOS",
           "FAST_GUIDES"]

FAST_ELBOS = ("Trace_ELBO", "TraceMeanField_ELBO", "TraceGraph_ELBO", "RenyiELBO")
FAST_GUIDES = (AutoNormal, AutoDiagonalNormal, AutoMultivariateNormal, AutoLowRankMultivariateNormal,
               AutoDelta, AutoLaplaceApproximation)
# Elementwise optimizers only: on one flat tensor they do what Pyro's per-parameter ones do.
# (ClippedAdam clips the norm of the whole tensor it is given, so it stays on Pyro's path.)
FAST_OPTIMIZERS = tuple(name for name in TORCH_OPTIMIZERS if name != "ClippedAdam")
# Auto particle count: K particles cost ~K times one in the log joint, which is nearly
# free while the model's tensors are small (Python/dispatch overhead dominates).
PARTICLE_BUDGET = 4096  # particles x (data + latent elements)
MAX_AUTO_PARTICLES = 8


@dataclass
class FastPathReport:
    """``diagnostics["fast_path"]``: whether the fast path ran, and why (not)."""

    requested: Any
    taken: bool
    reason: str
    particles: int | None = None
    particles_auto: bool = False
    vectorized: bool | None = None
    compiled: str | None = None  # "fx+jit.trace", "inductor" or "eager"
    compile_note: str | None = None  # why the step runs eager, when it does
    map_init: dict[str, Any] | None = None  # map_init()'s report when it was asked for

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Site:
    name: str
    unconstrained_shape: torch.Size
    batch_shape: torch.Size  # of the model's distribution at the site
    transform: Any
    size: int


@dataclass
class _Param:
    name: str  # param-store name
    shape: torch.Size
    transform: Any  # unconstrained -> constrained
    offset: int
    size: int
    constraint: Any


def _declines(inference, guide, model_trace, guide_trace, mpn) -> str | None:
    """Why the job cannot take the fast path, or None."""
    if inference.fast_path is False:
        return "inference.fast_path is false"
    name = inference.elbo.name
    if name.startswith("Jit") or inference.jit is True:
        return "a JIT ELBO was requested (inference.jit / a Jit* ELBO runs Pyro's JIT)"
    if base_name(name) not in FAST_ELBOS:
        return f"{name} is not a reparameterised ELBO the fast path implements ({', '.join(FAST_ELBOS)})"
    if type(guide) not in FAST_GUIDES:
        return f"guide {type(guide).__name__} is not a Gaussian-family autoguide"
    if inference.optimizer.name not in FAST_OPTIMIZERS:
        return f"optimizer {inference.optimizer.name} clips the whole tensor; it runs on Pyro's path"
    if inference.scheduler is not None:
        return "a learning-rate scheduler is set"
    model_trace, guide_trace = prune_subsample_sites(model_trace), prune_subsample_sites(guide_trace)
    for trace, who in ((model_trace, "model"), (guide_trace, "guide")):
        for site in trace.nodes.values():
            if site["type"] == "param" and who == "model":
                return f"the model has its own parameters ({site['name']!r})"
            if site["type"] != "sample":
                continue
            for frame in site["cond_indep_stack"]:
                if frame.vectorized and frame.full_size is not None and frame.full_size != frame.size:
                    return f"plate {frame.name!r} subsamples"
            if who == "model" and not site["is_observed"]:
                if site["name"] not in guide_trace.nodes:
                    return f"latent site {site['name']!r} is not in the guide (hidden)"
                fn = site["fn"]
                if site["infer"].get("enumerate") or fn.support.is_discrete:
                    return f"latent site {site['name']!r} is discrete"
    if not any(s["type"] == "sample" and not s["is_observed"] for s in model_trace.nodes.values()):
        return "the model has no latent sites"
    return None


def choose_particles(inference, kwargs: Mapping[str, Any], latent_dim: int, point: bool) -> tuple[int, bool]:
    """(K, chosen automatically?) — the user's ``num_particles`` when given (not None)."""
    if inference.elbo.num_particles is not None or point or base_name(inference.elbo.name) == "RenyiELBO":
        return (1 if point else inference.elbo.num_particles or 1), False
    elements = latent_dim + sum(int(v.numel()) for v in kwargs.values() if torch.is_tensor(v))
    k = max(1, min(MAX_AUTO_PARTICLES, PARTICLE_BUDGET // max(1, elements)))
    return 1 << (k.bit_length() - 1), True  # a power of two


class FastProblem:
    """``elbo(phi)`` for one model/autoguide pair (params already created in the store)."""

    def __init__(self, model: Callable, guide: Any, args: tuple, static: dict, mpn: int,
                 elbo_name: str, alpha: float = 0.0):
        self.model, self.guide, self.args, self.static = model, guide, args, static
        self.mpn = mpn
        self.elbo = base_name(elbo_name)
        self.alpha = alpha
        self.kind = type(guide).__name__
        self.point = isinstance(guide, (AutoDelta, AutoLaplaceApproximation))
        self.jacobian = not isinstance(guide, AutoDelta)
        self.sites = self._sites()
        self.latent_dim = sum(s.size for s in self.sites)
        self.params = self._params()
        self.num_params = sum(p.size for p in self.params)
        self._block_scale = self._block_transform()

    # ------------------------------------------------------------ layout
    def _sites(self) -> list[_Site]:
        proto = self.guide.prototype_trace
        out = []
        for name, site in proto.iter_stochastic_nodes():
            transform = biject_to(site["fn"].support)
            if isinstance(self.guide, (AutoNormal, AutoDelta)):
                ushape = transform.inv(site["value"].detach()).shape
            else:
                ushape = torch.Size(self.guide._unconstrained_shapes[name])
            out.append(_Site(name, torch.Size(ushape), site["fn"].batch_shape, transform,
                             int(math.prod(ushape))))
        return out

    def _param_names(self) -> list[str]:
        prefix = self.guide._pyro_name
        if isinstance(self.guide, AutoNormal):
            return ([f"{prefix}.locs.{s.name}" for s in self.sites]
                    + [f"{prefix}.scales.{s.name}" for s in self.sites])
        if isinstance(self.guide, AutoDelta):
            return [f"{prefix}.{s.name}" for s in self.sites]
        extra = {AutoDiagonalNormal: ["scale"], AutoMultivariateNormal: ["scale", "scale_tril"],
                 AutoLowRankMultivariateNormal: ["cov_factor", "scale"], AutoLaplaceApproximation: []}
        return [f"{prefix}.loc"] + [f"{prefix}.{n}" for n in extra[type(self.guide)]]

    def _params(self) -> list[_Param]:
        store = pyro.get_param_store()
        names = self._param_names()
        if sorted(names) != sorted(store.keys()):
            raise ValueError(f"unexpected params {sorted(set(store.keys()) ^ set(names))}")
        out, offset = [], 0
        for name in names:
            unconstrained = store._params[name]
            constraint = store._constraints.get(name, constraints.real)
            size = unconstrained.numel()
            out.append(_Param(name, unconstrained.shape, transform_to(constraint), offset, size, constraint))
            offset += size
        return out

    def read_store(self) -> torch.Tensor:
        store = pyro.get_param_store()._params
        with torch.no_grad():
            return torch.cat([store[p.name].detach().reshape(-1) for p in self.params])

    def write_store(self, phi: torch.Tensor) -> None:
        store = pyro.get_param_store()._params
        with torch.no_grad():
            for p in self.params:
                store[p.name].copy_(phi[p.offset:p.offset + p.size].view(p.shape))

    def unpack(self, phi: torch.Tensor) -> dict[str, torch.Tensor]:
        """Constrained guide params by short role name (``loc``, ``scale``, ``locs.<site>`` ...).

        AutoNormal's per-site locs and scales lie in ``phi`` as two consecutive blocks
        (``_param_names``' order) under one scale constraint: they are read as one flat
        ``loc`` and one flat ``scale`` (two slices and one transform instead of one per
        site; in the compiled step every op counts)."""
        if self._block_scale is not None:
            d = self.latent_dim
            return {"loc": phi[:d], "scale": self._block_scale(phi[d:2 * d])}
        prefix = self.guide._pyro_name + "."
        return {p.name[len(prefix):]: p.transform(phi[p.offset:p.offset + p.size].view(p.shape))
                for p in self.params}

    def _block_transform(self) -> Any:
        """AutoNormal's common scale transform when the layout is the two-block one, else None."""
        if not isinstance(self.guide, AutoNormal):
            return None
        n = len(self.sites)
        locs, scales = self.params[:n], self.params[n:]
        constraint = scales[0].constraint
        if any(p.constraint is not constraint for p in scales) \
                or any(p.constraint is not constraints.real for p in locs) \
                or scales[0].offset != self.latent_dim or self.num_params != 2 * self.latent_dim:
            return None
        return transform_to(constraint)

    # ------------------------------------------------------------ guide math
    def _loc_scale_flat(self, q) -> tuple[torch.Tensor, torch.Tensor]:
        if "loc" in q:
            return q["loc"], q["scale"]
        if isinstance(self.guide, AutoNormal):
            loc = torch.cat([q[f"locs.{s.name}"].reshape(-1) for s in self.sites])
            scale = torch.cat([q[f"scales.{s.name}"].reshape(-1) for s in self.sites])
            return loc, scale
        return q["loc"], q["scale"]

    def sample(self, q, eps: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
        """``u`` (K, D) from standard normal ``eps`` (K, D) (or (K, D + rank) for low rank)."""
        if isinstance(self.guide, AutoDelta):
            # AutoDelta's params are the latents, stored unconstrained by the sites' own
            # bijections: the flat params are u in the latent layout.
            return phi.expand(eps.shape[0], -1)
        if self.point:
            return q["loc"].expand(eps.shape[0], -1)
        if isinstance(self.guide, AutoMultivariateNormal):
            tril = q["scale"][..., None] * q["scale_tril"]
            return q["loc"] + eps @ tril.T
        if isinstance(self.guide, AutoLowRankMultivariateNormal):
            d = self.latent_dim
            w = q["cov_factor"] * q["scale"].unsqueeze(-1)
            return q["loc"] + eps[:, d:] @ w.T + q["scale"] * eps[:, :d]
        loc, scale = self._loc_scale_flat(q)
        return loc + scale * eps

    def noise_dim(self) -> int:
        if isinstance(self.guide, AutoLowRankMultivariateNormal):
            return self.latent_dim + self.guide.rank
        return self.latent_dim

    def log_q(self, q, u: torch.Tensor) -> torch.Tensor:
        """log q(u), (K,), as Pyro's guide scores its auxiliary site."""
        if self.point:
            return u.new_zeros(u.shape[0])
        if isinstance(self.guide, AutoMultivariateNormal):
            tril = q["scale"][..., None] * q["scale_tril"]
            z = torch.linalg.solve_triangular(tril, (u - q["loc"]).T, upper=False).T
            return (-0.5 * z.pow(2).sum(-1) - tril.diagonal().log().sum()
                    - 0.5 * self.latent_dim * math.log(2 * math.pi))
        if isinstance(self.guide, AutoLowRankMultivariateNormal):
            scale = q["scale"]
            d = torch.distributions.LowRankMultivariateNormal(
                q["loc"], q["cov_factor"] * scale.unsqueeze(-1), scale * scale, validate_args=False)
            return d.log_prob(u)
        loc, scale = self._loc_scale_flat(q)
        z = (u - loc) / scale
        return (-0.5 * z.pow(2) - scale.log() - 0.5 * math.log(2 * math.pi)).sum(-1)

    def entropy(self, q) -> torch.Tensor:
        if isinstance(self.guide, AutoMultivariateNormal):
            log_det = (q["scale"][..., None] * q["scale_tril"]).diagonal().log().sum()
        elif isinstance(self.guide, AutoLowRankMultivariateNormal):
            scale = q["scale"]
            d = torch.distributions.LowRankMultivariateNormal(
                q["loc"], q["cov_factor"] * scale.unsqueeze(-1), scale * scale, validate_args=False)
            return d.entropy()
        else:
            log_det = self._loc_scale_flat(q)[1].log().sum()
        return log_det + 0.5 * self.latent_dim * (1.0 + math.log(2 * math.pi))

    # ------------------------------------------------------------ model math
    def log_p(self, u: torch.Tensor, vectorized: bool) -> torch.Tensor:
        """log p(x, T(u)) + log|dT/du| (no Jacobian for AutoDelta), (K,)."""
        if not vectorized:
            return torch.stack([self._log_p_one(u[k]) for k in range(u.shape[0])])
        k = u.shape[0]
        values, log_jac, pos = {}, u.new_zeros(k), 0
        for s in self.sites:
            lead = (k,) + (1,) * (self.mpn - len(s.batch_shape))
            us = u[:, pos:pos + s.size].reshape(lead + tuple(s.unconstrained_shape))
            pos += s.size
            z = s.transform(us)
            values[s.name] = z
            if self.jacobian:
                log_jac = log_jac + s.transform.log_abs_det_jacobian(us, z).reshape(k, -1).sum(-1)
        with poutine.block(), pyro.plate("_fast_particles", k, dim=-self.mpn - 1):
            trace = poutine.trace(poutine.condition(self.model, data=values)).get_trace(
                *self.args, **self.static)
        trace = prune_subsample_sites(trace)
        total = log_jac
        for site in trace.nodes.values():
            if site["type"] != "sample" or site["infer"].get("_deterministic"):
                continue
            lp = _scaled_log_prob(site)
            if lp.dim() > self.mpn:
                lp = lp.reshape(lp.shape[:lp.dim() - self.mpn] + (-1,)).sum(-1).reshape(-1)
            else:
                lp = lp.sum()
            total = total + lp
        return total

    def _log_p_one(self, u: torch.Tensor) -> torch.Tensor:
        values, log_jac, pos = {}, u.new_zeros(()), 0
        for s in self.sites:
            us = u[pos:pos + s.size].reshape(s.unconstrained_shape)
            pos += s.size
            z = s.transform(us)
            values[s.name] = z
            if self.jacobian:
                log_jac = log_jac + s.transform.log_abs_det_jacobian(us, z).sum()
        with poutine.block():
            trace = poutine.trace(poutine.condition(self.model, data=values)).get_trace(
                *self.args, **self.static)
        trace = prune_subsample_sites(trace)
        total = log_jac
        for site in trace.nodes.values():
            if site["type"] == "sample" and not site["infer"].get("_deterministic"):
                total = total + _scaled_log_prob(site).sum()
        return total

    # ------------------------------------------------------------ the ELBO
    def log_weights(self, phi: torch.Tensor, u: torch.Tensor, vectorized: bool = True) -> torch.Tensor:
        """log p(x, z) - log q(z) per particle at latent draws ``u`` (K, D)."""
        q = self.unpack(phi)
        return self.log_p(u, vectorized) - self.log_q(q, u)

    def loss(self, phi: torch.Tensor, eps: torch.Tensor, vectorized: bool,
             analytic_entropy: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(-ELBO estimate as Pyro reports it, surrogate to differentiate)."""
        q = self.unpack(phi)
        u = self.sample(q, eps, phi)
        log_p = self.log_p(u, vectorized)
        log_q = self.log_q(q, u)
        k = u.shape[0]
        if self.elbo == "RenyiELBO":
            w = (1.0 - self.alpha) * (log_p - log_q)
            elbo = (torch.logsumexp(w, 0) - math.log(k)) / (1.0 - self.alpha)
            return -elbo.detach(), -elbo
        loss = -(log_p - log_q).mean()
        if analytic_entropy and not self.point:
            return loss.detach(), -(log_p.mean() + self.entropy(q))
        return loss.detach(), loss

    def latent_from_guide_trace(self, guide_trace) -> torch.Tensor:
        """The flat ``u`` (1, D) a Pyro guide trace drew (for comparing with Pyro's ELBO)."""
        prefix = self.guide._pyro_name
        if isinstance(self.guide, (AutoNormal, AutoDelta)):
            parts = []
            for s in self.sites:
                if isinstance(self.guide, AutoNormal):
                    parts.append(guide_trace.nodes[s.name + "_unconstrained"]["value"].reshape(-1))
                else:
                    parts.append(s.transform.inv(guide_trace.nodes[s.name]["value"]).reshape(-1))
            return torch.cat(parts)[None]
        return guide_trace.nodes[f"_{prefix}_latent"]["value"].reshape(1, -1)


def _scaled_log_prob(site) -> torch.Tensor:
    return scale_and_mask(site["fn"].log_prob(site["value"]), site["scale"], site["mask"])


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(torch.allclose(a, b, rtol=1e-4, atol=1e-3 * (1.0 + float(b.abs().max()))))


def _check_vectorized(problem: FastProblem, k: int) -> bool:
    """Whether the model broadcasts over a particle plate: the vectorised log joint equals
    the one computed particle by particle at a random point."""
    try:
        with torch.no_grad():
            phi = problem.read_store()
            q = problem.unpack(phi)
            u = problem.sample(q, torch.randn(max(k, 2), problem.noise_dim()), phi)
            u = u + 0.1 * torch.randn_like(u)
            return _close(problem.log_p(u, True), problem.log_p(u, False))
    except Exception:  # noqa: BLE001 - a model that does not broadcast
        return False


def plan(inference, guide, model, args, static, kwargs, mpn: int,
         model_trace, guide_trace) -> tuple[FastProblem | None, FastPathReport]:
    """The problem to train on the fast path, or None with the reason in the report."""
    report = FastPathReport(requested=inference.fast_path, taken=False, reason="")
    reason = _declines(inference, guide, model_trace, guide_trace, mpn)
    if reason is None:
        try:
            problem = FastProblem(model, guide, args, static, mpn, inference.elbo.name, inference.elbo.alpha)
        except Exception as e:  # noqa: BLE001 - an unexpected guide layout: use Pyro's path
            reason = f"the guide's layout was not recognised ({type(e).__name__}: {e})"
    if reason is not None:
        report.reason = reason
        return None, report
    k, auto = choose_particles(inference, kwargs, problem.latent_dim, problem.point)
    rng = torch.get_rng_state()
    try:
        vectorized = _check_vectorized(problem, k)
    finally:
        torch.set_rng_state(rng)
    if not vectorized and auto:
        k = 1
    report.taken, report.particles, report.particles_auto, report.vectorized = True, k, auto, vectorized
    report.reason = (f"{type(guide).__name__} with {inference.elbo.name}: the ELBO is one tensor function of "
                     f"{problem.num_params} guide parameters")
    return problem, report


def _replay() -> Any:
    """TorchScript without its profiling executor's optimisation passes: the graph is
    already simplified (graph_passes), so they gain nothing per step (measured: 2.36 vs
    2.49 ms per GARCH step) and cost their run on the first calls (0.35 s on GARCH's
    2,700-op graph, ~0.03 s on eight schools) — time every job would pay."""
    return torch.jit.optimized_execution(False)


class _AdamSteps(torch.nn.Module):
    """``n`` Adam (or AdamW) steps in one TorchScript call: draw the noise, run the compiled
    loss-and-gradient graph, record the loss, update ``phi`` and the moments in place.

    Per step this saves what a Python loop costs around a ~0.1 ms graph: the call, the
    noise, ``float(loss)`` and torch's optimizer step (~25 us for one 20-element tensor).
    The update is the kernel torch's own ``Adam(fused=True)`` calls (``_fused_adam_`` /
    ``_fused_adamw_``, after the same step-count increment), on the optimizer's state
    tensors, so it is the Python loop's update exactly, and checkpoints and a later
    ``optimizer.step()`` continue it. The tensors come in one-element lists because the
    kernel takes lists (lists made inside the script would be seen as fresh values and the
    in-place call dropped). The noise comes from the default generator in the order of
    ``FastTrainer._eps``, so a seeded fit draws what the Python loop draws. It stops after
    the first non-finite loss without applying that step (as the Python loop does).
    """

    def __init__(self, grad_fn: torch.nn.Module, particles: int, noise_dim: int):
        super().__init__()
        self.grad_fn = grad_fn
        self.particles = particles
        self.noise_dim = noise_dim

    def forward(self, params: List[torch.Tensor], exp_avgs: List[torch.Tensor], exp_avg_sqs: List[torch.Tensor],
                steps: List[torch.Tensor], losses: torch.Tensor, n: int, lr: float, beta1: float,
                beta2: float, eps: float, weight_decay: float, decoupled: bool) -> Tuple[int, torch.Tensor]:
        phi = params[0]
        grad = torch.zeros_like(phi)
        empty: List[torch.Tensor] = []
        for i in range(n):
            noise = torch.randn([self.particles, self.noise_dim], dtype=phi.dtype, device=phi.device)
            loss, grad = self.grad_fn(phi, noise)
            losses[i] = loss
            if not bool(torch.isfinite(loss)):
                return i + 1, grad
            steps[0].add_(1.0)
            if decoupled:
                torch._fused_adamw_(params, [grad], exp_avgs, exp_avg_sqs, empty, steps, lr=lr, beta1=beta1,
                                    beta2=beta2, weight_decay=weight_decay, eps=eps, amsgrad=False, maximize=False)
            else:
                torch._fused_adam_(params, [grad], exp_avgs, exp_avg_sqs, empty, steps, lr=lr, beta1=beta1,
                                   beta2=beta2, weight_decay=weight_decay, eps=eps, amsgrad=False, maximize=False)
        return n, grad


class _FlatOptimState:
    """``get_state``/``set_state`` like a ``PyroOptim``, for checkpoints."""

    def __init__(self, trainer: "FastTrainer") -> None:
        self.trainer = trainer

    def get_state(self) -> dict[str, Any]:
        return {"fast_path": self.trainer.optimizer.state_dict()}

    def set_state(self, state: Mapping[str, Any]) -> None:
        self.trainer.load_state(state)


class FastTrainer:
    """The loop's trainer on the fast path (see :class:`inference.engine.loop.PyroTrainer`)."""

    max_block = 64  # steps per Python call between two cadence checks

    def __init__(self, problem: FastProblem, inference, particles: int, vectorized: bool,
                 report: FastPathReport, compile_mode: str | None = None):
        self.problem, self.k, self.vectorized = problem, particles, vectorized
        self.phi = problem.read_store().requires_grad_(True)
        opt_cls = TORCH_OPTIMIZERS[inference.optimizer.name]
        kwargs = optim_args(inference.optimizer)
        kwargs.update(_fast_flags(opt_cls))
        self.optimizer = opt_cls([self.phi], **kwargs)
        self.clip = inference.clip_grad_norm
        self.analytic = problem.elbo != "RenyiELBO"
        self.optim = _FlatOptimState(self)
        self.restored_other = False
        self.last_grad: torch.Tensor | None = None
        self.value_shaped = False
        self.fn = self._compile(compile_mode or inference.fast_path_compiler, report)
        if self.value_shaped and self.vectorized:
            # A particle plate cannot hold a value-dependent shape either: ``z[z > 2]`` of a
            # (K, ...) draw gathers across particles (the vectorisation check can pass at a
            # point where the mask is empty). Particles one by one, one when automatic.
            self.vectorized = report.vectorized = False
            if report.particles_auto:
                self.k = report.particles = 1
        self.steps_loop = self._script_steps()

    def _loss_and_grad(self, phi: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(reported loss, gradient of the surrogate) at ``phi`` for draws ``eps``: the
        function every compiler below starts from."""
        with torch.enable_grad():
            phi = phi.detach().requires_grad_(True)
            loss, surrogate = self.problem.loss(phi, eps, self.vectorized, self.analytic)
            (grad,) = torch.autograd.grad(surrogate, phi)
        return loss.detach(), grad

    def _eps(self) -> torch.Tensor:
        return torch.randn(self.k, self.problem.noise_dim(), dtype=self.phi.dtype, device=self.phi.device)

    def _compile(self, mode: str, report: FastPathReport) -> Callable:
        """The loss-and-gradient function: forward and backward recorded as one graph of
        aten ops (``make_fx``: no Pyro, no Python, no autograd engine at run time), then
        replayed by TorchScript (``"trace"``) or compiled to C++ by Inductor
        (``"inductor"``: ~15 s to compile on a 2-core CPU, so opt-in). Any failure, or a
        graph that disagrees with the eager function at two points, a graph whose shapes
        depend on drawn values (``z[z > 2]``) or one beyond ``MAX_GRAPH_NODES`` ops leaves
        the eager function, with the reason in ``report.compile_note``."""
        report.compiled = "eager"
        rng = torch.get_rng_state()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                phi, eps = self.phi.detach(), self._eps()
                def loss_and_grad(phi, eps):  # make_fx wants a plain function
                    return self._loss_and_grad(phi, eps)

                graph = record(loss_and_grad, phi, eps)
                if len(graph.graph.nodes) > MAX_GRAPH_NODES:
                    report.compile_note = (f"the recorded step has {len(graph.graph.nodes)} ops "
                                           f"(> {MAX_GRAPH_NODES}): replaying it would not pay for compiling it")
                    return self._loss_and_grad
                shaped = value_dependent_shapes(graph)
                if shaped:
                    self.value_shaped = True
                    report.compile_note = (f"shapes depend on drawn values ({', '.join(sorted(set(shaped)))}): "
                                           "a recording would freeze them")
                    return self._loss_and_grad
                if mode == "eager":  # recorded only to look for value-dependent shapes
                    report.compile_note = "inference.fast_path_compiler is 'eager'"
                    return self._loss_and_grad
                graph = simplify(graph, phi, eps)
                if mode == "inductor":
                    compiled = torch.compile(graph, backend="inductor", dynamic=False, fullgraph=True)
                else:
                    with torch.no_grad():
                        compiled = torch.jit.trace(graph, (phi, eps), check_trace=False)
                for scale in (0.0, 0.5):
                    at = phi + scale * torch.randn_like(phi)
                    eps = self._eps()
                    with _replay():
                        a = compiled(at, eps)
                    b = self._loss_and_grad(at, eps)
                    if not (_close(a[0], b[0]) and _close(a[1], b[1])):
                        report.compile_note = ("the recorded step disagreed with the model at a check point "
                                               "(e.g. randomness or Python state inside the model)")
                        return self._loss_and_grad
        except Exception as e:  # noqa: BLE001 - not traceable: eager vectorised math
            report.compile_note = f"the step could not be recorded ({type(e).__name__}: {str(e)[:200]})"
            return self._loss_and_grad
        finally:
            torch.set_rng_state(rng)
        report.compiled = "inductor" if mode == "inductor" else "fx+jit.trace"
        return compiled

    def _script_steps(self) -> torch.jit.ScriptModule | None:
        """The whole step loop in TorchScript (:class:`_AdamSteps`) when the gradient is a
        TorchScript graph and the optimizer is plain Adam/AdamW (no AMSGrad, no maximize,
        no per-param clipping); else None and :meth:`run` steps from Python."""
        group = self.optimizer.param_groups[0]
        plain = (isinstance(self.optimizer, (torch.optim.Adam, torch.optim.AdamW)) and self.clip is None
                 and group.get("fused") and not group.get("amsgrad") and not group.get("maximize")
                 and not group.get("differentiable") and not torch.is_tensor(group["lr"]))
        if not plain or not isinstance(self.fn, torch.jit.ScriptModule):
            return None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.jit's deprecation notice
                return torch.jit.script(_AdamSteps(self.fn, self.k, self.problem.noise_dim()))
        except Exception:  # noqa: BLE001 - TorchScript refused: the Python loop does the same
            return None

    def _adam_state(self) -> dict[str, torch.Tensor]:
        """The optimizer's state for ``phi`` in torch's own layout, created as its first
        step would create it."""
        state = self.optimizer.state[self.phi]
        if not state:  # fused: a float32 step count on the param's device
            state["step"] = torch.zeros((), dtype=torch.float32, device=self.phi.device)
            state["exp_avg"] = torch.zeros_like(self.phi, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(self.phi, memory_format=torch.preserve_format)
        return state

    def _run_scripted(self, n: int) -> list[float]:
        group, state = self.optimizer.param_groups[0], self._adam_state()
        beta1, beta2 = group["betas"]
        decoupled = bool(group.get("decoupled_weight_decay"))  # AdamW's group says True
        losses = torch.empty(n, dtype=self.phi.dtype, device=self.phi.device)
        with _replay():
            done, grad = self.steps_loop([self.phi.detach()], [state["exp_avg"]], [state["exp_avg_sq"]],
                                         [state["step"]], losses, n, float(group["lr"]), float(beta1), float(beta2),
                                         float(group["eps"]), float(group["weight_decay"]), decoupled)
        self.last_grad = grad
        return losses[:done].tolist()

    # ------------------------------------------------------------ the trainer protocol
    def _grad(self) -> tuple[float, torch.Tensor]:
        with _replay():
            loss, grad = self.fn(self.phi.detach(), self._eps())
        return float(loss), grad

    def _apply(self, grad: torch.Tensor) -> None:
        if self.clip is not None:  # per param, as Pyro's clip_args
            for p in self.problem.params:
                g = grad[p.offset:p.offset + p.size]
                norm = float(g.norm())
                if norm > self.clip:
                    g.mul_(self.clip / (norm + 1e-6))
        self.phi.grad = grad
        with torch.no_grad():
            self.optimizer.step()

    def run(self, n: int) -> list[float]:
        if self.steps_loop is not None:
            return self._run_scripted(n)
        losses = []
        for _ in range(n):
            loss, grad = self._grad()
            losses.append(loss)
            self.last_grad = grad
            if not (loss - loss == 0.0):
                break
            self._apply(grad)
        return losses

    def step_with_grads(self) -> tuple[float, dict[str, float], list[str]]:
        loss, grad = self._grad()
        self.last_grad = grad
        bad = self.bad_params()
        norms = {p.name: float(grad[p.offset:p.offset + p.size].norm()) for p in self.problem.params}
        if not bad and loss - loss == 0.0:
            self._apply(grad)
        return loss, norms, bad

    def bad_params(self) -> list[str]:
        g = self.last_grad
        if g is None or bool(torch.isfinite(g).all()):
            return []
        return [p.name for p in self.problem.params
                if not bool(torch.isfinite(g[p.offset:p.offset + p.size]).all())]

    def sync(self) -> None:
        self.problem.write_store(self.phi.detach())

    def load_state(self, state: Mapping[str, Any]) -> None:
        """After a restore: params from the store; optimizer moments from the checkpoint
        when it was written by the fast path (a general-path checkpoint restarts them)."""
        with torch.no_grad():
            self.phi.copy_(self.problem.read_store())
        if "fast_path" in state:
            self.optimizer.load_state_dict(state["fast_path"])
        else:
            self.restored_other = True

    def scale_lr(self, factor: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] *= factor

    def step_scheduler(self, spec, mean_loss: float) -> None:  # plan() declines schedulers
        raise AssertionError("the fast path does not run schedulers")


def _fast_flags(opt_cls: type) -> dict[str, Any]:
    import inspect

    params = inspect.signature(opt_cls.__init__).parameters
    if "fused" in params and opt_cls in (torch.optim.Adam, torch.optim.AdamW):
        return {"fused": True}
    if "foreach" in params:
        return {"foreach": True}
    return {}


# A recorded step beyond this many ops (a model looping over hundreds of sites) takes
# longer to shrink and trace than replaying it saves over a fit's steps: eager instead.
MAX_GRAPH_NODES = 20_000
MAP_MAX_LATENT_DIM = 200  # the Hessian is D gradient evaluations; beyond this MAP init is skipped
MAP_MAX_ITERS = 100


def _laplace_values(problem: FastProblem, u_map: torch.Tensor, cov: torch.Tensor,
                    dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The guide's Laplace params by role (unconstrained): loc ``u_map`` and the scales
    (or scale_tril) of the covariance ``cov``, for ``map_init``."""
    guide = problem.guide
    sd = cov.diagonal().sqrt().to(dtype)
    values: dict[str, torch.Tensor] = {}
    if isinstance(guide, AutoNormal):
        pos = 0
        for s in problem.sites:
            values[f"locs.{s.name}"] = u_map[pos:pos + s.size].reshape(s.unconstrained_shape)
            values[f"scales.{s.name}"] = sd[pos:pos + s.size].reshape(s.unconstrained_shape)
            pos += s.size
    elif isinstance(guide, AutoMultivariateNormal):
        tril = torch.linalg.cholesky(cov).to(dtype)
        diag = tril.diagonal()
        values.update({"loc": u_map, "scale": diag, "scale_tril": tril / diag[:, None]})
    else:  # AutoDiagonalNormal; AutoLowRankMultivariateNormal keeps its cov_factor
        values.update({"loc": u_map, "scale": sd})
    return values


def map_init(problem: FastProblem) -> dict[str, Any]:
    """Move a Gaussian guide to a Laplace approximation at the MAP (in unconstrained space).

    L-BFGS on ``-(log p(x, T(u)) + log|dT/du|)`` from the guide's current loc, then the
    Hessian there: loc = the MAP; sds (AutoNormal, AutoDiagonalNormal, low rank's diagonal)
    = 1/sqrt(diag H); AutoMultivariateNormal's scale_tril = cholesky(H^-1). Skipped (the
    guide unchanged, with the reason) when the optimum is not finite or H not positive
    definite (e.g. a funnel, whose density is unbounded), or when D > MAP_MAX_LATENT_DIM.
    Returns ``{"applied": bool, "reason": str, ...}``.
    """
    guide = problem.guide
    if problem.point:
        return {"applied": False, "reason": "a point-mass guide is its own MAP"}
    d = problem.latent_dim
    if d > MAP_MAX_LATENT_DIM:
        return {"applied": False, "reason": f"{d} latent dimensions > {MAP_MAX_LATENT_DIM}"}
    t0 = time.perf_counter()
    with torch.no_grad():
        phi = problem.read_store()
        q = problem.unpack(phi)
        u0 = problem.sample(q, torch.zeros(1, problem.noise_dim(), dtype=phi.dtype), phi)[0].clone()

    def neg_log_p(v: torch.Tensor) -> torch.Tensor:
        return -problem.log_p(v[None], False)[0]

    def search(start: torch.Tensor, warmup: int) -> torch.Tensor:
        u = start.clone().requires_grad_(True)
        if warmup:  # Adam first when L-BFGS's first long step leaves the support's numerics
            adam = torch.optim.Adam([u], lr=0.05)
            for _ in range(warmup):
                adam.zero_grad()
                neg_log_p(u).backward()
                adam.step()
        opt = torch.optim.LBFGS([u], max_iter=MAP_MAX_ITERS, line_search_fn="strong_wolfe",
                                tolerance_grad=1e-6, tolerance_change=1e-9)

        def closure():
            opt.zero_grad()
            loss = neg_log_p(u)
            loss.backward()
            return loss

        opt.step(closure)
        return u.detach()

    try:
        for warmup in (0, 300):
            u_map = search(u0, warmup)
            value = float(neg_log_p(u_map))
            if math.isfinite(value) and bool(torch.isfinite(u_map).all()):
                break
        else:
            return {"applied": False, "reason": "the MAP search did not end at finite values"}
        hess = torch.autograd.functional.hessian(neg_log_p, u_map)
        hess = 0.5 * (hess + hess.T)
        chol = torch.linalg.cholesky(hess.double())  # fails unless positive definite
    except Exception as e:  # noqa: BLE001 - no usable MAP: keep the guide's own init
        return {"applied": False, "reason": f"no usable MAP/Hessian ({type(e).__name__})"}
    values = _laplace_values(problem, u_map, torch.cholesky_inverse(chol), phi.dtype)
    prefix = guide._pyro_name + "."
    with torch.no_grad():
        for p in problem.params:
            role = p.name[len(prefix):]
            if role in values:
                phi[p.offset:p.offset + p.size] = p.transform.inv(values[role].reshape(p.shape)).reshape(-1)
        if not bool(torch.isfinite(phi).all()):
            return {"applied": False, "reason": "the Laplace params are not finite"}
        problem.write_store(phi)
    return {"applied": True, "reason": "Laplace approximation at the MAP", "iterations": MAP_MAX_ITERS,
            "neg_log_joint": value, "seconds": round(time.perf_counter() - t0, 3)}
