"""Trace plumbing shared by the results functions.

Runs a guide and a model the way Pyro's ELBOs do (guide traced, model replayed on the
guide's trace), optionally vectorised over draws with an outermost plate, and sorts the
sites into the roles the results report: observed, latent, deterministic, enumerated,
and the guide's auxiliary sites.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.poutine.replay_messenger import ReplayMessenger
from pyro.poutine.uncondition_messenger import UnconditionMessenger
from pyro.poutine.util import site_is_subsample

# The outermost plate that vectorises posterior draws / ELBO particles. Its name is
# private so it cannot collide with a user's plate.
DRAWS_PLATE = "_vihub_draws"
JOINT_KEY = "[guide joint]"


def vectorized(fn: Callable, num: int, max_plate_nesting: int) -> Callable:
    """``fn`` run inside an outermost plate of ``num`` draws at dim ``-(max_plate_nesting+1)``."""

    def wrapped(**kwargs):
        with pyro.plate(DRAWS_PLATE, num, dim=-(max_plate_nesting + 1)):
            return fn(**kwargs)

    return wrapped


class _UnconditionObserved(UnconditionMessenger):
    """``poutine.uncondition`` that leaves ``pyro.deterministic`` sites alone.

    Pyro's uncondition would resample a deterministic site from its Delta, which inside a
    plate broadcasts the value to the wrong shape.
    """

    def _pyro_sample(self, msg):
        if msg["infer"] and msg["infer"].get("_deterministic"):
            return None
        return super()._pyro_sample(msg)


def uncondition_observed(fn: Callable) -> Callable:
    """``fn`` with its observed sites sampled instead of conditioned (posterior predictive)."""
    return _UnconditionObserved()(fn)


def is_sample_site(name: str, site: Mapping) -> bool:
    """A real sample site: not a plate's subsample site, not the draws plate."""
    return site["type"] == "sample" and not site_is_subsample(site) and name != DRAWS_PLATE


def is_deterministic(site: Mapping) -> bool:
    return bool(site.get("infer", {}).get("_deterministic"))


def is_enumerated(site: Mapping) -> bool:
    return site.get("infer", {}).get("enumerate") in ("parallel", "sequential")


def is_auxiliary(site: Mapping) -> bool:
    return bool(site.get("infer", {}).get("is_auxiliary"))


@dataclass
class SiteRoles:
    """Names of the sites of one model/guide pair, by role, in trace order."""

    observed: list[str] = field(default_factory=list)
    latent: list[str] = field(default_factory=list)  # model latents drawn by the guide
    deterministic: list[str] = field(default_factory=list)
    enumerated: list[str] = field(default_factory=list)  # model latents the guide leaves to enumeration
    unguided: list[str] = field(default_factory=list)  # other model latents not in the guide (sampled from the prior)
    guide_only: list[str] = field(default_factory=list)  # guide sample sites not in the model (auxiliary)
    folded: dict[str, str] = field(default_factory=dict)  # auxiliary guide site -> the latent it belongs to

    @property
    def has_enumeration(self) -> bool:
        return bool(self.enumerated)

    @property
    def joint_aux(self) -> list[str]:
        return [name for name in self.guide_only if name not in self.folded]


def site_roles(model_trace: poutine.Trace, guide_trace: poutine.Trace | None) -> SiteRoles:
    roles = SiteRoles()
    guide_samples = set()
    if guide_trace is not None:
        guide_samples = {n for n, s in guide_trace.nodes.items() if is_sample_site(n, s)}
    model_samples = set()
    for name, site in model_trace.nodes.items():
        if not is_sample_site(name, site):
            continue
        model_samples.add(name)
        if is_deterministic(site):
            roles.deterministic.append(name)
        elif site["is_observed"]:
            roles.observed.append(name)
        elif name in guide_samples:
            roles.latent.append(name)
        elif is_enumerated(site):
            roles.enumerated.append(name)
        else:
            roles.unguided.append(name)
    if guide_trace is not None:
        for name, site in guide_trace.nodes.items():
            if not is_sample_site(name, site) or name in model_samples:
                continue
            roles.guide_only.append(name)
            # AutoNormal / AutoNormalMessenger style: one auxiliary site per latent,
            # named "<latent>_unconstrained"; its log q belongs to that latent.
            if name.endswith("_unconstrained"):
                target = name[: -len("_unconstrained")]
                if target in roles.latent:
                    roles.folded[name] = target
    return roles


def traced_pair(
    model: Callable,
    guide: Callable,
    kwargs: Mapping,
    *,
    num: int | None = None,
    max_plate_nesting: int = 0,
) -> tuple[poutine.Trace, poutine.Trace]:
    """(guide_trace, model_trace): the guide traced, the model replayed on it — the one
    "trace the guide, replay the model" helper of the inference package (the engine's
    ``infer_max_plate_nesting`` and the fit's notes use it too). Callers block the traces
    (``poutine.block``) and turn off grad as they need.

    With ``num`` set, both run inside the draws plate so every site gets a leading
    draws dim at ``-(max_plate_nesting+1)``.
    """
    unwrapped = poutine.unwrap(guide)
    if num is not None:
        guide = vectorized(guide, num, max_plate_nesting)
        model = vectorized(model, num, max_plate_nesting)
    if isinstance(unwrapped, poutine.messenger.Messenger):
        # GuideMessenger (AutoNormalMessenger, ...): the guide runs the model itself and
        # hands back both traces; its outer trace would mix model and guide sites.
        guide(**kwargs)
        model_trace, guide_trace = unwrapped.get_traces()
        return guide_trace, model_trace
    guide_trace = poutine.trace(guide).get_trace(**kwargs)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(**kwargs)
    return guide_trace, model_trace


def per_draw(tensor: Any, num: int, max_plate_nesting: int) -> torch.Tensor:
    """Sum a vectorised log-prob tensor over every dim but the draws dim -> shape ``[num]``."""
    if not torch.is_tensor(tensor):
        return torch.full((num,), float(tensor))
    # Results are gathered on the CPU whatever device the model ran on.
    tensor = tensor.detach().cpu()
    draws_dim = -(max_plate_nesting + 1)
    if tensor.dim() < -draws_dim:
        # The site does not vary with the draw (e.g. no plate broadcast reached it).
        return tensor.sum().expand(num).clone()
    pos = tensor.dim() + draws_dim
    if pos + 1 < tensor.dim():
        tensor = tensor.sum(dim=tuple(range(pos + 1, tensor.dim())))
    # Dims left of the draws dim are size 1 (nothing is vectorised outside the draws plate).
    out = tensor.reshape(-1)
    return out.expand(num).clone() if out.numel() == 1 and num != 1 else out


def draws_first(value: torch.Tensor, num: int, natural_shape: tuple[int, ...]) -> torch.Tensor:
    """A vectorised site value reshaped to ``(num, *natural_shape)``.

    ``natural_shape`` is the value's shape in an unvectorised run of the model.
    """
    natural_shape = tuple(natural_shape)
    target_numel = num
    for s in natural_shape:
        target_numel *= s
    value = value.detach().cpu()
    if value.numel() == target_numel:
        return value.reshape((num,) + natural_shape)
    extra = max(0, value.dim() - 1 - len(natural_shape))
    full = torch.broadcast_shapes(value.shape, (num,) + (1,) * extra + natural_shape)
    return value.expand(full).reshape((num,) + natural_shape)


def check_vectorised_draw(
    model: Callable,
    vectorised_trace: poutine.Trace,
    kwargs: Mapping,
    *,
    num: int,
    max_plate_nesting: int,
    natural: Mapping[str, tuple],
    index: int = 0,
) -> str | None:
    """Rerun draw ``index`` of a vectorised model trace without the draws plate and compare.

    A model that is not written for batching (e.g. ``x @ beta`` or ``alpha[group]`` on a
    latent that gains a leading draws dim) can run under the draws plate and still give
    wrong numbers. Conditioning the plain model on one draw's values and comparing every
    site's log-density (and every deterministic value) catches that. Returns ``None``
    when they agree, else a short description of the first disagreement.
    """
    values, deterministic = {}, {}
    for name, site in vectorised_trace.nodes.items():
        if not is_sample_site(name, site) or name not in natural:
            continue
        value = draws_first(site["value"], num, natural[name])[index].to(site["value"].device)
        (deterministic if is_deterministic(site) else values)[name] = value
    with poutine.block():
        plain = poutine.trace(poutine.condition(model, data=values)).get_trace(**kwargs)
    plain.compute_log_prob()
    vectorised_trace.compute_log_prob()
    for name in values:
        if name not in plain.nodes:
            return f"site {name!r} missing from the plain run"
        expected = plain.nodes[name]["log_prob"]
        expected = float(expected.sum()) if torch.is_tensor(expected) else float(expected)
        got = float(per_draw(vectorised_trace.nodes[name]["log_prob"], num, max_plate_nesting)[index])
        if not _close(got, expected):
            return f"log p of site {name!r}: {got} vectorised vs {expected} plain"
    for name, value in deterministic.items():
        plain_value = plain.nodes[name]["value"].detach().to(value.device)
        if tuple(plain_value.shape) != tuple(value.shape) or not torch.allclose(
            plain_value.to(value.dtype), value, rtol=1e-4, atol=1e-5, equal_nan=True
        ):
            return f"deterministic site {name!r} differs"
    return None


def _close(a: float, b: float) -> bool:
    if a == b:  # equal infinities included
        return True
    return abs(a - b) <= 1e-3 + 1e-4 * max(abs(a), abs(b))


class ScopedReplay(ReplayMessenger):
    """Replay that leaves the site to the enumeration below it: ``infer_discrete``'s enum
    must see replayed sites to track the markov context of a ``pyro.markov`` loop (Pyro's
    replay marks them done, and enum then raises KeyError for the capture-recapture models)."""

    def _pyro_sample(self, msg):
        infer = msg["infer"] or {}
        markov = {k: infer[k] for k in ("_markov_scope", "_markov_depth") if k in infer}
        super()._pyro_sample(msg)
        if msg["done"] and msg["value"] is not None and not msg["is_observed"]:
            msg["done"] = False  # the value stays: default processing keeps a set value
            msg["infer"] = {**(msg["infer"] or {}), **markov}
