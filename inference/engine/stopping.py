"""When a fit stops: ``inference.stop`` as a rule tested at the run loop's cadence.

- ``"steps"`` / ``None``: exactly ``inference.steps`` steps.
- a :class:`~inference.spec.StopSpec`: the windowed mean loss changed by less than
  ``rel_tol`` (relative) between the last two windows, not before ``min_steps``.
- ``"auto"`` (the default): both of, at ``AUTO_STOP["checks"]`` consecutive checks, once
  two windows of ``AUTO_STOP["window"]`` steps have run:

  1. *smoothed ELBO flat*: the mean loss of the last window differs from the window
     before by at most ``loss_z`` standard errors (the loss is a Monte Carlo estimate:
     a change inside its noise is no evidence of progress), or by at most
     ``loss_rel * (1 + |mean|)`` when the loss is nearly noise-free;
  2. *parameters settled*: for guides with a Gaussian posterior (AutoNormal, the
     AutoContinuous family) the posterior means moved by at most ``loc_drift`` posterior
     sds and the sds changed by at most ``scale_drift`` (relative) since the check one
     window earlier — the accuracy a user reads off a summary; for other guides every
     unconstrained param moved by at most ``param_drift * (1 + |value|)``.

  3. *no trend*: no param travelled more than ``trend_sd`` sds (``param_drift``) in one
     direction over the last ``trend_moves`` moves between checks — its net move, counted
     when it is at least ``trend_straightness`` of the path it took (a jitter's moves
     cancel, a steady approach's add up).

  When (1) holds but (2) does not and there is no trend, the learning rate is halved (at
  most ``lr_halvings`` times, at most once per window; not when a scheduler is set): at a
  constant rate Adam's steady-state jitter can exceed the posterior's own spread, and no
  number of steps would settle the params. While they trend the rate is kept: they are
  still on their way, and a smaller rate would only slow them. Either way ``steps`` caps
  the run. With a learning-rate scheduler, ``auto`` runs as ``steps`` (the schedule is
  planned over ``steps``). The result's ``diagnostics["stop"]`` says which rule ran, why
  the fit stopped (``converged`` or ``steps``), at which step, and the last measured loss
  change, drift and trend against their tolerances.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
import pyro
from pyro.infer.autoguide import AutoContinuous, AutoLaplaceApproximation, AutoNormal

from inference.spec import AUTO_STOP, StopSpec

__all__ = ["Stopper", "converged_by", "window_mean"]


def window_mean(losses: list[float], end: int, window: int) -> float:
    chunk = losses[max(0, end - window) : end]
    return sum(chunk) / max(1, len(chunk))


def converged_by(losses: list[float], rel_tol: float, window: int) -> bool:
    """The last window's mean loss differs from the previous window's by < rel_tol (relative)."""
    n = len(losses)
    if n < 2 * window:
        return False
    m1 = window_mean(losses, n, window)
    m0 = window_mean(losses, n - window, window)
    return abs(m1 - m0) <= rel_tol * max(abs(m0), 1e-12)


def _mean_sd(chunk: list[float]) -> tuple[float, float]:
    m = sum(chunk) / len(chunk)
    var = sum((x - m) ** 2 for x in chunk) / max(1, len(chunk) - 1)
    return m, math.sqrt(var)


def _trend(snapshots: list[tuple[int, Any]], now: Any) -> float | None:
    """How far (in posterior sds for Gaussian guides, else in ``1 + |value|`` units) the
    farthest-travelled param moved *in one direction* over the last ``trend_moves``
    moves between checks: its net move, counted only when it is at least
    ``trend_straightness`` of the path it took (a jitter's moves cancel, a trend's add up).
    None until there are that many moves."""
    kind, value = now
    points = []
    for _, (k, v) in snapshots:
        if k != kind:
            return None
        points.append(v[0] if kind == "gaussian" else v)
    points = points[-(AUTO_STOP["trend_moves"] + 1):]
    if len(points) < AUTO_STOP["trend_moves"] + 1 or points[0].numel() == 0 \
            or any(p.shape != points[0].shape for p in points):
        return None
    scale = value[1].clamp_min(1e-12) if kind == "gaussian" else 1.0 + value.abs()
    stacked = torch.stack([p.double().reshape(-1) for p in points]) / scale.double().reshape(-1)
    net = (stacked[-1] - stacked[0]).abs()
    path = (stacked[1:] - stacked[:-1]).abs().sum(0)
    straight = net >= AUTO_STOP["trend_straightness"] * path
    return float((net * straight).max())


def _gaussian_moments(guide: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The guide's posterior (loc, sd) in unconstrained space, flat; None for other guides."""
    with torch.no_grad():
        if isinstance(guide, AutoNormal) and guide.prototype_trace is not None:
            names = [name for name, _ in guide.prototype_trace.iter_stochastic_nodes()]
            locs, scales = zip(*(guide._get_loc_and_scale(n) for n in names)) if names else ((), ())
            if not names:
                return None
            return (torch.cat([x.detach().reshape(-1) for x in locs]),
                    torch.cat([x.detach().reshape(-1) for x in scales]))
        if isinstance(guide, AutoContinuous) and not isinstance(guide, AutoLaplaceApproximation):
            try:
                loc, scale = guide._loc_scale()
            except (NotImplementedError, AttributeError, RuntimeError):
                return None
            return loc.detach().reshape(-1).clone(), scale.detach().reshape(-1).clone()
    return None


def _all_params() -> torch.Tensor:
    with torch.no_grad():
        values = [p.detach().reshape(-1) for _, p in pyro.get_param_store().named_parameters()]
    return torch.cat(values).clone() if values else torch.zeros(0)


class Stopper:
    """Tests ``inference.stop`` at the cadence; the param store is current when it runs."""

    def __init__(self, stop: StopSpec | str | None, guide: Any = None,
                 scale_lr: Callable[[float], None] | None = None, scheduler: bool = False) -> None:
        self.note = None
        if stop == "auto" and scheduler:
            # A schedule is planned over ``steps``: cutting it short would stop at a high rate.
            stop, self.note = "steps", "stop 'auto' ran as 'steps': a learning-rate scheduler is set"
        self.stop = stop
        self.guide = guide
        self.scale_lr = scale_lr
        self.halvings = 0
        self.last_halving = 0
        self.mode = "steps" if stop in (None, "steps") else ("auto" if stop == "auto" else "tolerance")
        self.snapshots: list[tuple[int, Any]] = []
        self.streak = 0
        self.last: dict[str, Any] = {}

    def check(self, step: int, losses: list[float]) -> str | None:
        """``"converged"`` when the rule says stop, else None."""
        if self.mode == "tolerance":
            stop = self.stop
            if step >= stop.min_steps and converged_by(losses, stop.rel_tol, stop.window):
                return "converged"
            return None
        if self.mode == "auto":
            return "converged" if self._auto(step, losses) else None
        return None

    def _auto(self, step: int, losses: list[float]) -> bool:
        w = AUTO_STOP["window"]
        snapshot = _gaussian_moments(self.guide)
        snapshot = ("gaussian", snapshot) if snapshot is not None else ("params", _all_params())
        self.snapshots.append((step, snapshot))
        horizons = AUTO_STOP["drift_horizons"]
        # Snapshots of the last few windows (one per cadence check) are enough.
        self.snapshots = [s for s in self.snapshots if s[0] >= step - (max(horizons) + 1) * w]
        olds = [max((s for s in self.snapshots if s[0] <= step - h * w), key=lambda s: s[0], default=None)
                for h in horizons]
        if len(losses) < 2 * w or olds[0] is None:
            self.streak = 0
            return False
        m1, s1 = _mean_sd(losses[-w:])
        m0, s0 = _mean_sd(losses[-2 * w:-w])
        change = abs(m1 - m0)
        tolerance = max(AUTO_STOP["loss_z"] * math.sqrt((s0 * s0 + s1 * s1) / w),
                        AUTO_STOP["loss_rel"] * (1.0 + abs(m0)))
        # Drift against snapshots 1, 2 and 4 windows back: Adam's jitter around the optimum
        # does not grow with the horizon, a slow trend does (linearly). Until the longest
        # horizon exists the rule cannot hold.
        drift, drift_ok = self._drift(olds[0][1], snapshot)
        for old in olds[1:]:
            if old is None:
                drift_ok = False
                continue
            more, ok = self._drift(old[1], snapshot)
            drift_ok = drift_ok and ok
            for key, value in more.items():
                if not key.endswith("tolerance") and key in drift:
                    drift[key] = max(drift[key], value)
        # Are the params still travelling (towards the optimum, slower than the loss's noise
        # shows) or jittering around it? A jitter's moves between checks cancel, a trend's
        # add up, param by param. A trend neither counts as settled nor is it "cured" by a
        # smaller rate: halving during a trend slows the approach until the drift test
        # passes far from the optimum (measured: gp_pois_regr "converged" 5 sd from it
        # after 10 halvings).
        trend = _trend(self.snapshots, snapshot)
        limit = AUTO_STOP["trend_sd"] if snapshot[0] == "gaussian" else AUTO_STOP["param_drift"]
        # Until the trend can be judged, it is not ruled out: no halving yet.
        trending = trend is None or trend > limit
        ok = change <= tolerance and drift_ok and not trending
        self.streak = self.streak + 1 if ok else 0
        if (change <= tolerance and not drift_ok and not trending and self.scale_lr is not None
                and self.halvings < AUTO_STOP["lr_halvings"] and step - self.last_halving >= w):
            # The loss is flat and the params wander without a direction: Adam's
            # steady-state jitter at this learning rate is larger than the posterior's own
            # spread. Halve it.
            self.scale_lr(0.5)
            self.halvings += 1
            self.last_halving = step
        self.last = {"step": step, "loss_change": change, "loss_tolerance": tolerance, **drift,
                     "trend": trend, "trending": trending, "lr_halvings": self.halvings}
        return self.streak >= AUTO_STOP["checks"]

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state for checkpoints (so a resumed fit stops where it would have)."""
        def encode(snapshot):
            kind, value = snapshot
            return [kind, [v.tolist() for v in value] if kind == "gaussian" else value.tolist()]

        return {"streak": self.streak, "halvings": self.halvings, "last_halving": self.last_halving,
                "snapshots": [[step, encode(s)] for step, s in self.snapshots], "last": self.last}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        def decode(snapshot):
            kind, value = snapshot
            if kind == "gaussian":
                return kind, tuple(torch.tensor(v) for v in value)
            return kind, torch.tensor(value)

        self.streak, self.halvings = int(state["streak"]), int(state["halvings"])
        self.last_halving, self.last = int(state["last_halving"]), dict(state.get("last") or {})
        self.snapshots = [(int(step), decode(s)) for step, s in state["snapshots"]]

    @staticmethod
    def _drift(before, now) -> tuple[dict[str, float], bool]:
        kind, value = now
        if kind == "gaussian" and before[0] == "gaussian" and before[1][0].shape == value[0].shape:
            (loc0, sd0), (loc1, sd1) = before[1], value
            loc = float(((loc1 - loc0).abs() / sd1.clamp_min(1e-12)).max()) if loc1.numel() else 0.0
            sd = float(((sd1 - sd0).abs() / sd0.clamp_min(1e-12)).max()) if sd1.numel() else 0.0
            return ({"loc_drift_sd": loc, "loc_drift_tolerance": AUTO_STOP["loc_drift"],
                     "scale_drift": sd, "scale_drift_tolerance": AUTO_STOP["scale_drift"]},
                    loc <= AUTO_STOP["loc_drift"] and sd <= AUTO_STOP["scale_drift"])
        old = before[1] if before[0] == "params" else None
        if old is None or old.shape != value.shape:
            return {"param_drift": float("nan")}, False
        d = float(((value - old).abs() / (1.0 + value.abs())).max()) if value.numel() else 0.0
        return {"param_drift": d, "param_drift_tolerance": AUTO_STOP["param_drift"]}, d <= AUTO_STOP["param_drift"]

    def report(self, reason: str | None, steps_done: int, steps: int) -> dict[str, Any]:
        """``diagnostics["stop"]``: the rule, why and when the fit stopped, the last measures."""
        return {"rule": self.mode, "reason": reason or "steps", "step": steps_done, "steps": steps,
                "last_check": self.last or None, "note": self.note}

    def converged(self, reason: str | None, losses: list[float]) -> bool:
        """``diagnostics["converged"]``: the rule held at the end (tolerance rule: its own
        window; otherwise 1% over a quarter of the run, as before ``auto`` existed)."""
        if reason == "converged":
            return True
        if self.mode == "tolerance":
            return converged_by(losses, self.stop.rel_tol, self.stop.window)
        if self.mode == "auto" and self.streak > 0:
            return True
        return converged_by(losses, 1e-2, max(2, min(200, len(losses) // 4)))
