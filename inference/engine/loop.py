"""The SVI run loop: seeded steps, batched progress, cancellation, NaN checks, checkpoints.

``run_svi(model, guide, kwargs, inference)`` trains a Pyro model/guide pair (plain
callables taking the data as keyword arguments) and returns an :class:`SVIRun`.
``inference.fit`` builds the model and guide from a job spec and calls it.

The loop (:func:`train`) drives a trainer: :class:`PyroTrainer` does per step what
``SVI.step`` does (trace the params, ``loss_and_grads``, optimizer, zero grads);
:class:`inference.engine.fastpath.FastTrainer` (chosen by :func:`_choose_trainer` when the
job qualifies) runs blocks of steps on one flat tensor. Either way the loss is appended
and checked finite with one float comparison per step, and everything else — progress,
cancellation, gradient checks, the stop rule (:mod:`inference.engine.stopping`),
checkpoints — happens at the :class:`Cadence` (every ``progress_every_steps`` steps or
``progress_every_s`` seconds) or at fixed step multiples (gradient norms, periodic hooks
such as ELBO terms), where a block ends. Hooks run with the RNG state saved and restored,
so the loss curve does not depend on which outputs were requested or on timing.

Data tensors are passed to the ELBO positionally (non-tensors as keywords) so that the
JIT ELBOs can trace them as inputs; :class:`ArgsAdapter` turns them back into keyword
arguments for the model and guide.
"""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
import pyro
from pyro import poutine
from pyro.infer.util import is_validation_enabled

from inference.engine.checkpoint import dump_checkpoint, load_checkpoint, restore_rng
from inference.engine.elbos import build_elbo, infer_max_plate_nesting, jit_name
from inference.engine.errors import FitCancelled, NonFiniteLoss, SpecError
from inference.engine.fastpath import FastTrainer, map_init, plan
from inference.engine.global_state import seed_all
from inference.engine.optim import build_optimizer, step_scheduler
from inference.engine.stopping import Stopper, window_mean
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
    fast_path: dict[str, Any] | None = None  # FastPathReport.to_dict()
    stop: dict[str, Any] | None = None  # Stopper.report(): rule, reason, step, last measures


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


class PyroTrainer:
    """The general path: Pyro's ELBO and per-parameter optimizers, one ``SVI.step`` per step.

    The loop talks to a trainer through ``run``/``step_with_grads``/``sync``/``optim``, so
    the fast path (:mod:`inference.engine.fastpath`) plugs in with the same loop.
    """

    max_block = 1  # the loop's cadence checks run between every two steps

    def __init__(self, model, guide, args, static, elbo, optim):
        self.model, self.guide, self.args, self.static = model, guide, args, static
        self.elbo, self.optim = elbo, optim
        self.last_named: dict[str, torch.Tensor] = {}

    def _loss_and_grads(self) -> tuple[float, dict[str, torch.Tensor]]:
        with poutine.trace(param_only=True) as capture:
            loss = self.elbo.loss_and_grads(self.model, self.guide, *self.args, **self.static)
        self.last_named = {name: site["value"].unconstrained() for name, site in capture.trace.nodes.items()}
        return float(loss), self.last_named

    def _apply(self, params) -> None:
        self.optim(params)
        pyro.infer.util.zero_grads(params)

    def run(self, n: int) -> list[float]:
        """``n`` steps (SVI.step, inlined); a non-finite loss skips its update and ends the block."""
        losses = []
        for _ in range(n):
            loss, named = self._loss_and_grads()
            losses.append(loss)
            if not (loss - loss == 0.0):
                break
            self._apply(set(named.values()))
        return losses

    def step_with_grads(self) -> tuple[float, dict[str, float], list[str]]:
        """One step that checks the gradients: (loss, grad norm by param, params with
        non-finite grads). Nothing is applied when the loss or a gradient is not finite."""
        loss, named = self._loss_and_grads()
        bad = self.bad_params()
        norms = {name: float(p.grad.norm()) if p.grad is not None else 0.0 for name, p in named.items()}
        if not bad and loss - loss == 0.0:
            self._apply(set(named.values()))
        return loss, norms, bad

    def bad_params(self) -> list[str]:
        return [n for n, p in self.last_named.items()
                if p.grad is not None and not bool(torch.isfinite(p.grad).all())]

    def sync(self) -> None:
        """The param store holds the current params already."""

    def step_scheduler(self, spec, mean_loss: float) -> None:
        step_scheduler(self.optim, spec, mean_loss)

    def scale_lr(self, factor: float) -> None:
        """Multiply every per-param optimizer's learning rate (the ``auto`` stop rule)."""
        for opt in getattr(self.optim, "optim_objs", {}).values():
            for group in opt.param_groups:
                group["lr"] *= factor


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


def choose_elbo(inference: InferenceSpec, model, guide, args, static, mpn: int,
                diagnostics: list[dict[str, Any]]) -> tuple[Any, bool]:
    """The ELBO instance to train with and whether it is a JIT one (``jit`` true/auto/false)."""
    want_jit = inference.jit is True or inference.elbo.name.startswith("Jit")
    elbo = None
    if inference.jit == "auto" and not inference.elbo.name.startswith("Jit"):
        elbo = _try_jit(inference, model, guide, args, static, mpn, diagnostics)
    if elbo is None:
        elbo = build_elbo(inference.elbo, max_plate_nesting=mpn, jit=want_jit)
        if want_jit:
            _compile_jit(elbo, model, guide, args, static)
    return elbo, type(elbo).__name__.startswith("Jit")


@dataclass
class LoopState:
    """What a checkpoint carries besides params, optimizer and RNGs."""

    losses: list[float]
    history: dict[str, list]
    grad_norms: list[dict[str, Any]]
    start: int = 0
    resumed_from: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the stop rule's state


def restore(blob: bytes, optim: Any, fingerprint: Mapping[str, Any], hook_names) -> LoopState:
    """Load a checkpoint into the param store, ``optim`` (``set_state``) and the RNGs."""
    ckpt = load_checkpoint(blob)
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
    if "fast_path" in ckpt.optim_state and not hasattr(optim, "trainer"):
        pass  # written by the fast path, resumed on Pyro's: params restored, moments start afresh
    else:
        optim.set_state(ckpt.optim_state)
    restore_rng(ckpt.rng, ckpt.rng_tensors)
    history = {name: [] for name in hook_names}
    history.update({k: v for k, v in ckpt.history.get("hooks", {}).items() if k in history})
    return LoopState(losses=list(ckpt.losses), history=history,
                     grad_norms=ckpt.history.get("grad_norms", []), start=ckpt.step,
                     resumed_from=ckpt.step, extra={k: v for k, v in ckpt.history.items()
                                                    if k not in ("hooks", "grad_norms")})


class Cadence:
    """When to report progress, check for a cancel, test the stop rule and checkpoint.

    Due every ``progress_every_steps`` steps or ``progress_every_s`` seconds (whichever
    comes first) and at the last step; a checkpoint is written at a due step once
    ``checkpoint_every_s`` has passed since the previous one (never at the last step).
    """

    def __init__(self, inference: InferenceSpec, callbacks: FitCallbacks, state: LoopState,
                 checkpoint: Callable[[int], bytes]):
        self.steps = inference.steps
        self.every_steps, self.every_s = inference.progress_every_steps, inference.progress_every_s
        self.checkpoint_every_s = inference.checkpoint_every_s
        self.callbacks, self.state, self.checkpoint = callbacks, state, checkpoint
        self.ema_alpha = 2.0 / (min(self.every_steps, 100) + 1.0)
        self.ema: float | None = None
        self.reported = 0
        self._smooth(state.losses)
        now = time.perf_counter()
        self.last_step, self.last_t = state.start, now
        self.rate_step, self.rate_t = state.start, now
        self.last_ckpt_t = now

    def _smooth(self, values) -> None:
        for value in values:
            self.ema = value if self.ema is None else self.ema + self.ema_alpha * (value - self.ema)
        self.reported += len(values)

    def next_count_step(self) -> int:
        return self.last_step + self.every_steps

    def due(self, step: int) -> bool:
        return (step - self.last_step >= self.every_steps) or (time.perf_counter() - self.last_t >= self.every_s)

    def report(self, step: int) -> None:
        """Progress callback and cancel check (raises ``FitCancelled``)."""
        losses = self.state.losses
        now = time.perf_counter()
        first = self.reported
        self._smooth(losses[first:])
        rate = (step - self.rate_step) / max(now - self.rate_t, 1e-9)
        if self.callbacks.on_progress is not None:
            self.callbacks.on_progress(Progress(
                step=step, steps=self.steps, loss=losses[-1], smoothed_loss=float(self.ema),
                steps_per_s=rate, eta_s=(self.steps - step) / rate if rate > 0 else float("inf"),
                new_losses=[(i + 1, losses[i]) for i in range(first, len(losses))],
            ))
        self.rate_step, self.rate_t = step, now
        if self.callbacks.should_cancel is not None and self.callbacks.should_cancel():
            raise FitCancelled(step)

    def maybe_checkpoint(self, step: int) -> None:
        if (self.callbacks.on_checkpoint is not None and self.checkpoint_every_s is not None
                and time.perf_counter() - self.last_ckpt_t >= self.checkpoint_every_s and step < self.steps):
            self.callbacks.on_checkpoint(self.checkpoint(step), step)
            self.last_ckpt_t = time.perf_counter()

    def done_check(self, step: int) -> None:
        self.last_step, self.last_t = step, time.perf_counter()


def _run_hooks(step: int, hooks: Mapping[str, tuple[int, Callable]], history: dict[str, list]) -> None:
    for name, (every, fn) in hooks.items():
        if every > 0 and step % every == 0:
            rng = _get_rng()
            try:
                history[name].append([step, fn(step)])
            finally:
                _set_rng(rng)


def _next_boundary(step: int, steps: int, cadence: Cadence, after: list[int], before: list[int]) -> int:
    """Where the block from ``step`` must end: at the last step, at a multiple of a period
    in ``after`` (hooks, scheduler: they run after that step), or just before the
    cadence's next due step or a multiple in ``before`` (grad norms: those steps run alone,
    with their gradients checked)."""
    bound = min(steps, cadence.next_count_step() - 1)
    for every in after:
        bound = min(bound, (step // every + 1) * every)
    for every in before:
        bound = min(bound, (step // every + 1) * every - 1)
    return bound


def train(trainer, state: LoopState, inference: InferenceSpec, cadence: Cadence,
          hooks: Mapping[str, tuple[int, Callable]], grad_norms_every: int,
          stopper: Stopper, raise_nonfinite: Callable) -> str | None:
    """The plain loop from ``state.start`` to ``inference.steps``; returns the stop reason
    when the stop rule ended it early, else None."""
    losses, steps, sched = state.losses, inference.steps, inference.scheduler
    after = [every for every, _ in hooks.values() if every > 0]
    after += [sched.every_steps] if sched is not None else []
    before = [grad_norms_every] if grad_norms_every > 0 else []
    step = state.start
    while step < steps:
        block = max(1, min(trainer.max_block, _next_boundary(step, steps, cadence, after, before) - step))
        due = cadence.due(step + 1)
        norms_due = grad_norms_every > 0 and (step + 1) % grad_norms_every == 0
        if due or norms_due:
            step += 1
            loss, norms, bad = trainer.step_with_grads()
            losses.append(loss)
            if bad or not (loss - loss == 0.0):
                raise_nonfinite(step, loss, bad)
            if norms_due:
                state.grad_norms.append({"step": step, "norms": norms})
        else:
            block_losses = trainer.run(block)
            losses.extend(block_losses)
            step += len(block_losses)
            if not (block_losses[-1] - block_losses[-1] == 0.0):
                raise_nonfinite(step, block_losses[-1], trainer.bad_params())
            due = cadence.due(step) if block > 1 else False
        if sched is not None and step % sched.every_steps == 0:
            trainer.step_scheduler(sched, window_mean(losses, len(losses), sched.every_steps))
        if hooks and any(every > 0 and step % every == 0 for every, _ in hooks.values()):
            trainer.sync()
            _run_hooks(step, hooks, state.history)
        if due or step == steps:
            trainer.sync()
            cadence.report(step)
            reason = stopper.check(step, losses)
            if reason is not None and step < steps:
                return reason
            cadence.maybe_checkpoint(step)
            cadence.done_check(step)
    return None


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

    with _training_flags(inference.num_threads, kwargs) as threads:
        pyro.clear_param_store()
        seed_all(inference.seed)
        mpn = inference.elbo.max_plate_nesting
        if mpn is None:
            mpn = max_plate_nesting if max_plate_nesting is not None else infer_max_plate_nesting(
                model, guide, kwargs)
        model_trace, guide_trace = _create_params(model_call, guide_call, args, static, init_params)

        trainer, elbo, jit_used, fast_report = _choose_trainer(
            inference, model_call, guide_call, guide, args, static, kwargs, mpn, model_trace, guide_trace,
            fresh=resume_from is None and init_params is None, diagnostics=diagnostics)

        state = LoopState(losses=[], history={name: [] for name in hooks}, grad_norms=[])
        if resume_from is not None:
            state = restore(resume_from, trainer.optim, fingerprint, hooks)
            if getattr(trainer, "restored_other", False):
                diagnostics.append({"code": "resume_optimizer_reset",
                                    "message": "the checkpoint was written by the other engine path; its params "
                                               "were restored and the optimizer state started afresh"})

        def checkpoint_bytes(at_step: int) -> bytes:
            return dump_checkpoint(step=at_step, losses=state.losses, optim=trainer.optim,
                                   history={"hooks": state.history, "grad_norms": state.grad_norms,
                                            "stopper": stopper.state_dict()},
                                   fingerprint=fingerprint)

        def raise_nonfinite(step: int, loss: float, params: list[str]) -> None:
            trainer.sync()
            _raise_nonfinite(step, loss, params, model_call, guide_call, args, static)

        cadence = Cadence(inference, callbacks, state, checkpoint_bytes)
        stopper = Stopper(inference.stop, guide, scale_lr=trainer.scale_lr, scheduler=inference.scheduler is not None)
        if resume_from is not None and "stopper" in state.extra:
            stopper.load_state_dict(state.extra["stopper"])
        stop_reason = train(trainer, state, inference, cadence, hooks, grad_norms_every, stopper, raise_nonfinite)
        trainer.sync()
        losses = state.losses
        return SVIRun(
            losses=losses, steps_done=len(losses), stopped_early=stop_reason is not None,
            converged=stopper.converged(stop_reason, losses),
            grad_norms=state.grad_norms, history=state.history, elbo_name=type(elbo).__name__,
            jit_used=jit_used, max_plate_nesting=int(mpn), num_threads=threads,
            wall_s=time.perf_counter() - t0, diagnostics=diagnostics,
            model=model, guide=guide, elbo=elbo, optim=trainer.optim, resumed_from_step=state.resumed_from,
            fast_path=fast_report.to_dict(), stop=stopper.report(stop_reason, len(losses), inference.steps),
        )


def _create_params(model_call, guide_call, args, static, init_params):
    """(model trace, guide trace) of one traced guide run and the model replayed against it.
    Params are created here, before any step, identically on a fresh run and a resume;
    ``init_params`` (a warm start) then replace the fresh values."""
    with poutine.block():
        guide_trace = poutine.trace(guide_call).get_trace(*args, **static)
        model_trace = poutine.trace(poutine.replay(model_call, trace=guide_trace)).get_trace(*args, **static)
    if init_params is not None:
        apply_init_params(init_params)
    return model_trace, guide_trace


def _choose_trainer(inference, model_call, guide_call, guide, args, static, kwargs, mpn, model_trace, guide_trace,
                    *, fresh: bool, diagnostics: list[dict[str, Any]]):
    """(trainer, ELBO instance, JIT used, fast-path report): the fast path when the job
    qualifies, else Pyro's SVI with the optimizer and (JIT) ELBO of the spec."""
    trainer, fast_report = _fast_trainer(inference, model_call, guide, args, static, kwargs, mpn,
                                         model_trace, guide_trace, fresh=fresh)
    if trainer is not None:
        return trainer, build_elbo(inference.elbo, max_plate_nesting=mpn), False, fast_report
    optim = build_optimizer(inference.optimizer, clip_grad_norm=inference.clip_grad_norm,
                            scheduler=inference.scheduler, total_steps=inference.steps)
    elbo, jit_used = choose_elbo(inference, model_call, guide_call, args, static, mpn, diagnostics)
    return PyroTrainer(model_call, guide_call, args, static, elbo, optim), elbo, jit_used, fast_report


def _fast_trainer(inference, model, guide, args, static, kwargs, mpn, model_trace, guide_trace, fresh=True):
    """A :class:`FastTrainer` when the job qualifies, else None; and the report saying why.
    ``inference.map_init`` moves a fresh Gaussian guide to the Laplace approximation first."""
    problem, report = plan(inference, guide, model, args, static, kwargs, mpn, model_trace, guide_trace)
    if problem is None:
        return None, report
    if inference.map_init and fresh:
        report.map_init = map_init(problem)
    return FastTrainer(problem, inference, report.particles, report.vectorized, report), report


@contextmanager
def _training_flags(num_threads: int | None, kwargs: Mapping[str, Any]):
    """Pyro validation off and the fit's torch thread count, both restored afterwards."""
    was_validating = is_validation_enabled()
    threads_before = torch.get_num_threads()
    threads = choose_num_threads(num_threads, kwargs)
    if threads != threads_before:
        torch.set_num_threads(threads)
    pyro.enable_validation(False)
    try:
        yield threads
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
