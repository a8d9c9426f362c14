"""The SVI run loop: seeded steps, batched progress, cancellation, NaN checks, checkpoints.

``run_svi(model, guide, kwargs, inference)`` trains a Pyro model/guide pair (plain
callables taking the data as keyword arguments) and returns an :class:`SVIRun`.
``inference.fit`` builds the model and guide from a job spec and calls it.

Per step the loop does what ``SVI.step`` does (trace the params, ``loss_and_grads``,
optimizer, zero grads), appends the loss and checks it is finite with one float
comparison. Everything else — progress, cancellation, gradient checks, convergence,
checkpoints — happens at the cadence (every ``progress_every_steps`` steps or
``progress_every_s`` seconds) or at fixed step multiples (gradient norms, periodic
hooks such as ELBO terms). Hooks run with the RNG state saved and restored, so the
loss curve does not depend on which outputs were requested or on timing.

Data tensors are passed to the ELBO positionally (non-tensors as keywords) so that the
JIT ELBOs can trace them as inputs; :class:`ArgsAdapter` turns them back into keyword
arguments for the model and guide.
"""

from __future__ import annotations

import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
import pyro
from pyro import poutine
from pyro.infer.util import is_validation_enabled

from inference.engine.checkpoint import dump_checkpoint, load_checkpoint, restore_rng
from inference.engine.elbos import build_elbo, infer_max_plate_nesting, jit_name
from inference.engine.errors import FitCancelled, NonFiniteLoss, SpecError
from inference.engine.global_state import seed_all
from inference.engine.optim import build_optimizer, step_scheduler
from inference.engine.warm_start import apply_init_params
from inference.spec import InferenceSpec

__all__ = ["run_svi", "SVIRun", "Progress", "FitCallbacks", "ArgsAdapter", "resolve_device",
           "device_scope"]


@dataclass
class Progress:
    """What ``on_progress`` receives (at most every N steps or T seconds, and once at the end)."""

    step: int
    steps: int
    loss: float
    smoothed_loss: float
    steps_per_s: float
    eta_s: float
    new_losses: list[tuple[int, float]]


@dataclass
class FitCallbacks:
    """Plain callables; any of them may be None."""

    on_progress: Callable[[Progress], None] | None = None
    should_cancel: Callable[[], bool] | None = None
    on_checkpoint: Callable[[bytes, int], None] | None = None
    # Once, after the last step: the run's final checkpoint (for warm starts, see
    # inference.engine.warm_start); not called on failure or cancel.
    on_final_checkpoint: Callable[[bytes, int], None] | None = None


@dataclass
class SVIRun:
    losses: list[float]
    steps_done: int
    stopped_early: bool
    converged: bool
    grad_norms: list[dict[str, Any]]  # [{"step": s, "norms": {param: float}}]
    history: dict[str, list]  # hook name -> [[step, value], ...]
    elbo_name: str  # the class actually used
    jit_used: bool
    max_plate_nesting: int
    num_threads: int
    wall_s: float
    diagnostics: list[dict[str, Any]]  # {"code", "message"}
    model: Callable  # keyword-calling model and guide, as trained
    guide: Callable
    elbo: Any
    optim: Any
    resumed_from_step: int | None = None


class ArgsAdapter:
    """Calls ``fn(**kwargs)`` from positional tensors (in ``names`` order) plus keywords."""

    def __init__(self, fn: Callable, names: tuple[str, ...]) -> None:
        self.fn = fn
        self.names = names

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args:
            kwargs = {**dict(zip(self.names, args)), **kwargs}
        return self.fn(**kwargs)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SpecError("device 'cuda' was requested but CUDA is not available here",
                        field="inference.device")
    return torch.device(device)


def device_scope(device: torch.device):
    """Tensors created by model/guide code (priors' constants, init values) go on ``device``.

    Scoped to the fit (a ``torch.device`` context), never a global default; a no-op on CPU.
    """
    return torch.device(device) if device.type != "cpu" else nullcontext()


def _get_rng() -> tuple:
    """The torch RNG states that model code draws from (CPU, and CUDA once initialised)."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    return torch.get_rng_state(), cuda


def _set_rng(state: tuple) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state_all(state[1])


def _split(kwargs: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[torch.Tensor, ...], dict]:
    names = tuple(k for k, v in kwargs.items() if torch.is_tensor(v))
    return names, tuple(kwargs[k] for k in names), {k: v for k, v in kwargs.items() if k not in names}


def _window_mean(losses: list[float], end: int, window: int) -> float:
    chunk = losses[max(0, end - window) : end]
    return sum(chunk) / max(1, len(chunk))


def converged_by(losses: list[float], rel_tol: float, window: int) -> bool:
    """The last window's mean loss differs from the previous window's by < rel_tol (relative)."""
    n = len(losses)
    if n < 2 * window:
        return False
    m1 = _window_mean(losses, n, window)
    m0 = _window_mean(losses, n - window, window)
    return abs(m1 - m0) <= rel_tol * max(abs(m0), 1e-12)


def _nonfinite_sites(model, guide, args, static) -> list[str]:
    """Sites whose log-prob is not finite when the guide is replayed through the model."""
    sites = []
    try:
        with torch.no_grad(), poutine.block(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            guide_trace = poutine.trace(guide).get_trace(*args, **static)
            model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **static)
            for trace, who in ((model_trace, "model"), (guide_trace, "guide")):
                for name, site in trace.nodes.items():
                    if site["type"] != "sample":
                        continue
                    value = site["value"]
                    if torch.is_tensor(value) and not bool(torch.isfinite(value).all()):
                        sites.append(f"{name} ({who}: non-finite value)")
                        continue
                    try:
                        lp = site["fn"].log_prob(value)
                    except Exception:  # noqa: BLE001
                        continue
                    if torch.is_tensor(lp) and not bool(torch.isfinite(lp).all()):
                        sites.append(f"{name} ({who}: non-finite log_prob)")
    except Exception as e:  # noqa: BLE001 - the trace itself may be what fails
        sites.append(f"(tracing failed: {type(e).__name__}: {e})")
    return sites


class _Trainer:
    def __init__(self, model, guide, args, static, elbo, optim):
        self.model, self.guide, self.args, self.static = model, guide, args, static
        self.elbo, self.optim = elbo, optim

    def grads_step(self, apply: bool = True) -> tuple[float, dict[str, torch.Tensor]]:
        """A step that also returns the unconstrained params by name (grads still attached)."""
        with poutine.trace(param_only=True) as capture:
            loss = self.elbo.loss_and_grads(self.model, self.guide, *self.args, **self.static)
        named = {name: site["value"].unconstrained() for name, site in capture.trace.nodes.items()}
        return float(loss), named

    def apply(self, params) -> None:
        self.optim(params)
        pyro.infer.util.zero_grads(params)

    def step(self) -> float:
        # SVI.step, inlined; a non-finite loss skips the update so the culprits can be named.
        with poutine.trace(param_only=True) as capture:
            loss = self.elbo.loss_and_grads(self.model, self.guide, *self.args, **self.static)
        loss = float(loss)
        if not (loss - loss == 0.0):
            self.last_named = {n: s["value"].unconstrained() for n, s in capture.trace.nodes.items()}
            return loss
        params = set(site["value"].unconstrained() for site in capture.trace.nodes.values())
        self.optim(params)
        pyro.infer.util.zero_grads(params)
        return loss


def _grad_norms(named: dict[str, torch.Tensor]) -> dict[str, float]:
    out = {}
    for name, p in named.items():
        out[name] = float(p.grad.norm()) if p.grad is not None else 0.0
    return out


def _try_jit(inference: InferenceSpec, model, guide, args, static, mpn, diagnostics):
    """The JIT ELBO if it traces and agrees with the plain one on a test evaluation, else None."""
    name = jit_name(inference.elbo.name)
    if name is None:
        diagnostics.append({"code": "jit_unavailable",
                            "message": f"jit 'auto': {inference.elbo.name} has no JIT variant; ran without JIT"})
        return None
    jit_elbo = build_elbo(inference.elbo, max_plate_nesting=mpn, jit=True)
    plain = build_elbo(inference.elbo, max_plate_nesting=mpn, jit=False)
    rng = _get_rng()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            jit_elbo.loss_and_grads(model, guide, *args, **static)  # traces and compiles
            # The compiled graph must agree with the plain ELBO on fresh draws (a trace
            # silently freezes data-dependent Python branches).
            for _ in range(3):
                state = _get_rng()
                jit_loss = float(jit_elbo.loss_and_grads(model, guide, *args, **static))
                _set_rng(state)
                plain_loss = float(plain.loss(model, guide, *args, **static))
                if not (abs(jit_loss - plain_loss) <= 1e-3 * (1.0 + abs(plain_loss))):
                    raise RuntimeError(
                        f"the traced loss {jit_loss:.6g} differs from the plain loss {plain_loss:.6g}")
    except Exception as e:  # noqa: BLE001 - any tracing failure means: run without JIT
        diagnostics.append({
            "code": "jit_fallback",
            "message": f"jit 'auto': the model could not be traced for {name} "
                       f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); ran without JIT",
        })
        return None
    finally:
        _set_rng(rng)
        for _, p in pyro.get_param_store().named_parameters():
            p.grad = None
    return jit_elbo


def _compile_jit(elbo, model, guide, args, static) -> None:
    """Trace the JIT ELBO once before training, RNG state restored, so that step 1 draws
    the same numbers as without JIT (tracing runs the function an extra time)."""
    rng = _get_rng()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            elbo.loss_and_grads(model, guide, *args, **static)
    except Exception as e:  # noqa: BLE001
        raise SpecError(
            f"inference.jit is true but {type(elbo).__name__} could not trace this model "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); use jit 'auto' or false",
            field="inference.jit") from e
    finally:
        _set_rng(rng)
        for _, p in pyro.get_param_store().named_parameters():
            p.grad = None


def run_svi(
    model: Callable,
    guide: Callable,
    kwargs: Mapping[str, Any],
    inference: InferenceSpec,
    *,
    callbacks: FitCallbacks | None = None,
    resume_from: bytes | None = None,
    grad_norms_every: int = 0,
    hooks: Mapping[str, tuple[int, Callable[[int], Any]]] | None = None,
    max_plate_nesting: int | None = None,
    fingerprint: Mapping[str, Any] | None = None,
    init_params: Mapping[str, torch.Tensor] | None = None,
) -> SVIRun:
    """Train ``guide`` for ``model`` on ``kwargs`` as ``inference`` says.

    ``guide`` must be freshly built (no params yet). ``hooks`` maps a name to
    ``(every, fn(step) -> JSON value)``, called after steps that are multiples of ``every``
    with the RNG state restored afterwards. ``max_plate_nesting`` overrides inference when
    the spec leaves it out. ``init_params`` (constrained values by name) replace the fresh
    params before training (a warm start; ``resume_from`` still wins where given).
    The caller owns the device scope and the data's device.
    The trained params stay in the param store (the caller reads them, then clears it).
    """
    t0 = time.perf_counter()
    callbacks = callbacks or FitCallbacks()
    hooks = dict(hooks or {})
    fingerprint = dict(fingerprint or {})
    diagnostics: list[dict[str, Any]] = []
    names, args, static = _split(kwargs)
    model_call, guide_call = ArgsAdapter(model, names), ArgsAdapter(guide, names)

    was_validating = is_validation_enabled()
    threads_before = torch.get_num_threads()
    threads = choose_num_threads(inference.num_threads, kwargs)
    if threads != threads_before:
        torch.set_num_threads(threads)
    pyro.enable_validation(False)
    pyro.clear_param_store()
    seed_all(inference.seed)
    try:
        # Params are created here, before any step, identically on a fresh run and a resume.
        mpn = inference.elbo.max_plate_nesting
        if mpn is None:
            mpn = max_plate_nesting if max_plate_nesting is not None else infer_max_plate_nesting(
                model, guide, kwargs)
        with poutine.block():
            guide_trace = poutine.trace(guide_call).get_trace(*args, **static)
            poutine.trace(poutine.replay(model_call, trace=guide_trace)).get_trace(*args, **static)
        if init_params is not None:
            apply_init_params(init_params)

        optim = build_optimizer(inference.optimizer, clip_grad_norm=inference.clip_grad_norm,
                                scheduler=inference.scheduler, total_steps=inference.steps)
        want_jit = inference.jit is True or inference.elbo.name.startswith("Jit")
        elbo = None
        if inference.jit == "auto" and not inference.elbo.name.startswith("Jit"):
            elbo = _try_jit(inference, model_call, guide_call, args, static, mpn, diagnostics)
        if elbo is None:
            elbo = build_elbo(inference.elbo, max_plate_nesting=mpn, jit=want_jit)
            if want_jit:
                _compile_jit(elbo, model_call, guide_call, args, static)
        jit_used = type(elbo).__name__.startswith("Jit")

        losses: list[float] = []
        history: dict[str, list] = {name: [] for name in hooks}
        grad_norms: list[dict[str, Any]] = []
        start = 0
        resumed_from = None
        if resume_from is not None:
            ckpt = load_checkpoint(resume_from)
            if ckpt.fingerprint and fingerprint and ckpt.fingerprint != fingerprint:
                raise SpecError("the checkpoint was written by a job with another seed, guide or ELBO",
                                field="resume_from")
            store = dict(pyro.get_param_store().named_parameters())
            missing = sorted(set(ckpt.params) ^ set(store))
            if missing:
                raise SpecError(f"the checkpoint does not match this model and guide (params {missing})",
                                field="resume_from")
            with torch.no_grad():
                for name, value in ckpt.params.items():
                    if store[name].shape != value.shape:
                        raise SpecError(f"the checkpoint's param {name!r} has shape {tuple(value.shape)}, "
                                        f"expected {tuple(store[name].shape)}", field="resume_from")
                    store[name].copy_(value.to(store[name].device, store[name].dtype))
            optim.set_state(ckpt.optim_state)
            restore_rng(ckpt.rng, ckpt.rng_tensors)
            losses = list(ckpt.losses)
            start = resumed_from = ckpt.step
            history.update({k: v for k, v in ckpt.history.get("hooks", {}).items() if k in history})
            grad_norms = ckpt.history.get("grad_norms", grad_norms)

        trainer = _Trainer(model_call, guide_call, args, static, elbo, optim)
        steps = inference.steps
        every_steps, every_s = inference.progress_every_steps, inference.progress_every_s
        sched = inference.scheduler
        stop = inference.stop
        ema_alpha = 2.0 / (min(every_steps, 100) + 1.0)
        ema = None
        for value in losses:
            ema = value if ema is None else ema + ema_alpha * (value - ema)
        reported = len(losses)
        last_check_step, last_check_t = start, time.perf_counter()
        rate_step, rate_t = start, last_check_t
        last_ckpt_t = last_check_t
        stopped_early = False
        step = start

        def checkpoint_bytes(at_step: int) -> bytes:
            return dump_checkpoint(step=at_step, losses=losses, optim=optim,
                                   history={"hooks": history, "grad_norms": grad_norms},
                                   fingerprint=fingerprint)

        for step in range(start + 1, steps + 1):
            due = (step - last_check_step >= every_steps) or (time.perf_counter() - last_check_t >= every_s)
            norms_due = grad_norms_every > 0 and step % grad_norms_every == 0
            if due or norms_due:
                loss, named = trainer.grads_step()
                bad = [n for n, p in named.items() if p.grad is not None and not bool(torch.isfinite(p.grad).all())]
                if bad or not (loss - loss == 0.0):
                    _raise_nonfinite(step, loss, bad, model_call, guide_call, args, static)
                if norms_due:
                    grad_norms.append({"step": step, "norms": _grad_norms(named)})
                trainer.apply(set(named.values()))
            else:
                loss = trainer.step()
                if not (loss - loss == 0.0):
                    bad = [n for n, p in trainer.last_named.items()
                           if p.grad is not None and not bool(torch.isfinite(p.grad).all())]
                    _raise_nonfinite(step, loss, bad, model_call, guide_call, args, static)
            losses.append(loss)

            if sched is not None and step % sched.every_steps == 0:
                step_scheduler(optim, sched, _window_mean(losses, len(losses), sched.every_steps))
            for name, (every, fn) in hooks.items():
                if every > 0 and step % every == 0:
                    rng = _get_rng()
                    try:
                        history[name].append([step, fn(step)])
                    finally:
                        _set_rng(rng)

            if due or step == steps:
                now = time.perf_counter()
                for value in losses[reported:]:
                    ema = value if ema is None else ema + ema_alpha * (value - ema)
                rate = (step - rate_step) / max(now - rate_t, 1e-9)
                if callbacks.on_progress is not None:
                    callbacks.on_progress(Progress(
                        step=step, steps=steps, loss=loss, smoothed_loss=float(ema),
                        steps_per_s=rate, eta_s=(steps - step) / rate if rate > 0 else float("inf"),
                        new_losses=[(i + 1, losses[i]) for i in range(reported, len(losses))],
                    ))
                reported = len(losses)
                rate_step, rate_t = step, now
                if callbacks.should_cancel is not None and callbacks.should_cancel():
                    raise FitCancelled(step)
                if stop is not None and step >= stop.min_steps and converged_by(losses, stop.rel_tol, stop.window):
                    stopped_early = step < steps
                    break
                if (callbacks.on_checkpoint is not None and inference.checkpoint_every_s is not None
                        and now - last_ckpt_t >= inference.checkpoint_every_s and step < steps):
                    callbacks.on_checkpoint(checkpoint_bytes(step), step)
                    last_ckpt_t = time.perf_counter()
                last_check_step, last_check_t = step, time.perf_counter()

        rel_tol, window = (stop.rel_tol, stop.window) if stop else _default_rule(len(losses))
        converged = converged_by(losses, rel_tol, window)
        return SVIRun(
            losses=losses, steps_done=len(losses), stopped_early=stopped_early, converged=converged,
            grad_norms=grad_norms, history=history, elbo_name=type(elbo).__name__, jit_used=jit_used,
            max_plate_nesting=int(mpn), num_threads=threads, wall_s=time.perf_counter() - t0, diagnostics=diagnostics,
            model=model, guide=guide, elbo=elbo, optim=optim, resumed_from_step=resumed_from,
        )
    finally:
        pyro.enable_validation(was_validating)
        if torch.get_num_threads() != threads_before:
            torch.set_num_threads(threads_before)


SMALL_DATA_ELEMENTS = 1_000_000


def choose_num_threads(requested: int | None, kwargs: Mapping[str, Any]) -> int:
    """``requested``, else 1 when every data tensor is on CPU with < 1e6 elements, else
    torch's current setting."""
    if requested is not None:
        return requested
    tensors = [v for v in kwargs.values() if torch.is_tensor(v)]
    if all(t.device.type == "cpu" and t.numel() < SMALL_DATA_ELEMENTS for t in tensors):
        return 1
    return torch.get_num_threads()


def _default_rule(n: int) -> tuple[float, int]:
    """Used for ``converged`` when no stop rule was given: 1% over a quarter of the run."""
    return 1e-2, max(2, min(200, n // 4))


def _raise_nonfinite(step, loss, params, model, guide, args, static):
    sites = _nonfinite_sites(model, guide, args, static)
    what = "loss" if not (loss - loss == 0.0) else "gradient"
    parts = [f"the {what} became {loss if what == 'loss' else 'non-finite'} at step {step}"]
    if params:
        parts.append(f"params with non-finite gradients or values: {sorted(params)}")
    if sites:
        parts.append(f"sites: {sites}")
    parts.append("try a smaller learning rate, clip_grad_norm, tighter priors or a different init_loc_fn")
    raise NonFiniteLoss("; ".join(parts), step=step, params=sorted(params), sites=sites)
