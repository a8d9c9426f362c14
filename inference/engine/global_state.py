"""Pyro's and torch's process-global state around a library call: snapshot, isolate, restore.

``inference.fit``, ``validate`` and ``predict`` (and the ``compile_source`` calls they
make) run inside :func:`isolated`. On entry it records the caller's state and gives the
call a clean one; on exit — normal return or exception — it puts the caller's state back
exactly. The state covered (:class:`GlobalState`):

- Pyro's handler stack ``pyro.poutine.runtime._PYRO_STACK`` (emptied for the call, so a
  handler a poisoned caller left there never sees the call's messages; handlers the call
  leaks are exited — plate iterators closed — and dropped), the plate dim allocator and
  the enumeration dim allocator;
- the param store (its dicts are swapped, not copied: the call gets an empty store);
- torch's default dtype, grad mode, anomaly mode and ``torch.get_num_threads()``;
- the RNGs: torch CPU, CUDA (when initialised), Python ``random``, numpy's global RNG;
- Pyro's validation flags (``pyro.distributions``, ``pyro.infer``, ``pyro.poutine``) and
  torch's ``Distribution`` default ``validate_args``;
- every registered ``pyro.settings`` value.

Inside the call the settings and validation flags are Pyro's defaults (as found when this
module was imported), grad mode is on, anomaly mode off, the default dtype is the call's,
and the RNGs are seeded from the job seed when one is given: a fit's result depends on
its spec and data, not on what ran before it in the process. The thread count is left as
the caller's (a resource choice, not a result-changing one) and restored on exit.

The cost is a handful of attribute reads and three small RNG-state copies (the torch CPU
state is 5 KB): microseconds, against fits that take milliseconds at the least.

Also :func:`seeded` (RNGs seeded for a block, the caller's RNG state restored after),
used around compilation so module-level randomness of a user source is a function of the
job seed, and :func:`seed_all`.
"""

from __future__ import annotations

import gc
import importlib
import random
import types
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import torch
import pyro
import pyro.distributions.util as _dist_util
import pyro.infer.util as _infer_util
import pyro.poutine.runtime as _runtime
import pyro.poutine.util as _poutine_util

__all__ = ["GlobalState", "capture_rng", "isolated", "restore_rng", "seed_all", "seeded", "snapshot"]

# ---------------------------------------------------------------------------- pyro.settings
# ``pyro.settings.get()`` imports each setting's module by name on every call (~30 us for
# the eight settings); the (owner object, attribute) pairs are resolved once instead, and
# again only when a setting is registered.
_settings_cache: tuple[int, list[tuple[str, Any, str]]] = (-1, [])


def _settings_slots() -> list[tuple[str, Any, str]]:
    global _settings_cache
    registry = getattr(pyro.settings, "_REGISTRY", None)
    if registry is None:  # a Pyro without the registry: the public (slower) interface
        return []
    if _settings_cache[0] != len(registry):
        slots = []
        for alias, (module, deepname, _validator) in sorted(registry.items()):
            owner: Any = importlib.import_module(module)
            *path, attr = deepname.split(".")
            for name in path:
                owner = getattr(owner, name)
            slots.append((alias, owner, attr))
        _settings_cache = (len(registry), slots)
    return _settings_cache[1]


def _get_settings() -> dict[str, Any]:
    slots = _settings_slots()
    if not slots:
        return dict(pyro.settings.get())
    return {alias: getattr(owner, attr) for alias, owner, attr in slots}


def _set_settings(values: dict[str, Any]) -> None:
    current = _get_settings()
    changed = {k: v for k, v in values.items() if k in current and current[k] != v}
    if changed:
        # Through the public setter, so the settings' validators run.
        pyro.settings.set(**changed)


# Pyro's defaults, read before any user code can run in this process (the worker and the
# API import the engine at start-up). Validation defaults to ``__debug__`` in Pyro.
_DEFAULT_SETTINGS: dict[str, Any] = _get_settings()
_DEFAULT_VALIDATION = bool(__debug__)


# ---------------------------------------------------------------------------- RNGs
def _cuda_live() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_initialized()


def capture_rng() -> tuple:
    """The RNG states model code can draw from: torch CPU, CUDA (if initialised), random, numpy."""
    cuda = torch.cuda.get_rng_state_all() if _cuda_live() else None
    return torch.get_rng_state(), cuda, random.getstate(), np.random.get_state()


def restore_rng(state: tuple) -> None:
    cpu, cuda, py, np_state = state
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)
    random.setstate(py)
    np.random.set_state(np_state)


def seed_all(seed: int) -> None:
    """``pyro.set_rng_seed`` for every seed a job spec allows (0 .. 2**63-1).

    Identical to ``pyro.set_rng_seed(seed)`` below 2**32; numpy only takes 32-bit seeds, so
    a larger one is given to it as two 32-bit words.
    """
    seed = int(seed)
    # torch.manual_seed(seed) seeds the same generators but also probes every backend
    # (~200 us); CPU and CUDA are all that model code draws from. Before CUDA is
    # initialised, torch queues the CUDA seeding (the latest one only). torch's generators
    # keep the low 32 bits of a seed.
    torch.default_generator.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    random.seed(seed)
    np.random.seed(seed if seed < 2**32 else [seed & 0xFFFFFFFF, seed >> 32])


@contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Seed every RNG from ``seed`` for the block; the caller's RNG state is restored after.

    ``seed=None`` only restores (the block draws from the current state, which is then rewound).
    """
    saved = capture_rng()
    try:
        if seed is not None:
            seed_all(seed)
        yield
    finally:
        restore_rng(saved)


# ---------------------------------------------------------------------------- snapshot
def _validation_flags() -> tuple[bool, bool, bool, Any]:
    return (_dist_util._VALIDATION_ENABLED, _infer_util._VALIDATION_ENABLED,
            _poutine_util._VALIDATION_ENABLED, torch.distributions.Distribution._validate_args)


def _set_validation_flags(flags: tuple[bool, bool, bool, Any]) -> None:
    _dist_util._VALIDATION_ENABLED, _infer_util._VALIDATION_ENABLED, _poutine_util._VALIDATION_ENABLED = flags[:3]
    torch.distributions.Distribution._validate_args = flags[3]


@dataclass
class GlobalState:
    """What :func:`snapshot` records. ``differences(other)`` names the items that differ."""

    pyro_stack: list
    dim_stack: list
    enum_allocator: dict
    param_store: tuple  # (_params, _param_to_name, _constraints): the dict objects themselves
    default_dtype: torch.dtype
    grad_enabled: bool
    anomaly: tuple
    num_threads: int
    rng: tuple
    validation: tuple
    settings: dict = field(default_factory=dict)

    def differences(self, other: GlobalState) -> list[str]:
        """Names of the items that are not the same in ``other`` (for tests and debugging).

        The handler stack and the param store are compared by identity of their entries
        (the same handler objects; the same dicts holding the same tensor objects).
        """
        out = []
        if [id(h) for h in self.pyro_stack] != [id(h) for h in other.pyro_stack]:
            out.append("pyro_stack")
        if self.dim_stack != other.dim_stack:
            out.append("dim_allocator")
        if not _same_enum_allocator(self.enum_allocator, other.enum_allocator):
            out.append("enum_allocator")
        if not _same_store(self.param_store, other.param_store):
            out.append("param_store")
        for name in ("default_dtype", "grad_enabled", "anomaly", "num_threads", "validation", "settings"):
            if getattr(self, name) != getattr(other, name):
                out.append(name)
        names = ("torch_rng", "cuda_rng", "python_rng", "numpy_rng")
        for name, a, b in zip(names, self.rng, other.rng):
            if not _same_rng(a, b):
                out.append(name)
        return out


def _same_enum_allocator(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k] == b[k] for k in a)


def _same_store(a: tuple, b: tuple) -> bool:
    # The same dict objects (a swap restored) with the same entries (nothing written into them).
    if any(x is not y for x, y in zip(a[:3], b[:3])):
        return False
    params_a, params_b = a[3], b[3]
    return params_a.keys() == params_b.keys() and all(params_a[k] is params_b[k] for k in params_a)


def _same_rng(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if torch.is_tensor(a):
        return torch.equal(a, b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_rng(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and np.array_equal(a, b)
    return a == b


def snapshot() -> GlobalState:
    """The process-global state :func:`isolated` restores (cheap: no tensor is copied but the
    RNG states; the param store is referenced, with a shallow copy of its name -> tensor map)."""
    store = _runtime._PYRO_PARAM_STORE
    return GlobalState(
        pyro_stack=list(_runtime._PYRO_STACK),
        dim_stack=list(_runtime._DIM_ALLOCATOR._stack),
        enum_allocator=_enum_state(),
        param_store=(store._params, store._param_to_name, store._constraints, dict(store._params)),
        default_dtype=torch.get_default_dtype(),
        grad_enabled=torch.is_grad_enabled(),
        anomaly=(torch.is_anomaly_enabled(), torch.is_anomaly_check_nan_enabled()),
        num_threads=torch.get_num_threads(),
        rng=capture_rng(),
        validation=_validation_flags(),
        settings=_get_settings(),
    )


def _enum_state() -> dict:
    state = dict(vars(_runtime._ENUM_ALLOCATOR))
    if "dim_to_id" in state:
        state["dim_to_id"] = dict(state["dim_to_id"])
    return state


# ---------------------------------------------------------------------------- isolate/restore
@contextmanager
def isolated(*, seed: int | None = None, float_dtype: torch.dtype | None = None) -> Iterator[GlobalState]:
    """Run the block on clean Pyro/torch global state and restore the caller's after.

    ``seed`` seeds every RNG on entry; ``float_dtype`` becomes torch's default dtype for the
    block (torch's own default, float32, when None). Yields the caller's snapshot.
    """
    saved = snapshot()
    store = _runtime._PYRO_PARAM_STORE
    try:
        _runtime._PYRO_STACK.clear()
        _runtime._DIM_ALLOCATOR._stack.clear()
        store._params, store._param_to_name, store._constraints = {}, {}, {}
        _set_settings(_DEFAULT_SETTINGS)
        _set_validation_flags((_DEFAULT_VALIDATION, _DEFAULT_VALIDATION, _DEFAULT_VALIDATION,
                               _DEFAULT_VALIDATION))
        torch.set_default_dtype(float_dtype if float_dtype is not None else torch.float32)
        torch.set_grad_enabled(True)
        if saved.anomaly[0]:
            torch.set_anomaly_enabled(False)
        if seed is not None:
            seed_all(seed)
        yield saved
    finally:
        _restore(saved)


def _restore(saved: GlobalState) -> None:
    # Handlers the block left on the stack first: exiting them frees their plate dims and
    # closes the plate iterators that hold them, before the allocators are put back.
    _close_leaked(0)
    _runtime._PYRO_STACK[:] = saved.pyro_stack
    _runtime._DIM_ALLOCATOR._stack[:] = saved.dim_stack
    enum = vars(_runtime._ENUM_ALLOCATOR)
    if not _same_enum_allocator(enum, saved.enum_allocator):
        enum.clear()
        enum.update(saved.enum_allocator)
    store = _runtime._PYRO_PARAM_STORE
    store._params, store._param_to_name, store._constraints = saved.param_store[:3]
    _set_settings(saved.settings)
    _set_validation_flags(saved.validation)
    torch.set_default_dtype(saved.default_dtype)
    torch.set_grad_enabled(saved.grad_enabled)
    if (torch.is_anomaly_enabled(), torch.is_anomaly_check_nan_enabled()) != saved.anomaly:
        torch.set_anomaly_enabled(*saved.anomaly)
    if torch.get_num_threads() != saved.num_threads:
        torch.set_num_threads(saved.num_threads)
    restore_rng(saved.rng)


def _close_leaked(keep: int) -> None:
    """Exit the handlers above the first ``keep`` entries of the stack, innermost first.

    A plate used as an iterator (``for i in pyro.plate(...)``) sits on the stack while its
    generator is suspended; closing that generator exits the plate the way Pyro means to.
    Anything else is exited directly. Failures are swallowed: the stack is overwritten next.
    """
    stack = _runtime._PYRO_STACK
    if len(stack) <= keep:
        return
    for handler in reversed(stack[keep:]):
        if handler not in stack:
            continue
        try:
            for gen in _suspended_generators_of(handler):
                gen.close()
            if handler in stack:
                if stack[-1] is not handler:
                    # Drop whatever is below it (already failed to exit) so __exit__ can pop it.
                    del stack[stack.index(handler) + 1:]
                handler.__exit__(None, None, None)
        except Exception:  # noqa: BLE001, S110 - best effort; the caller's stack is restored regardless
            pass


def _suspended_generators_of(handler: Any) -> list:
    # Only on the leak path (a gc scan costs milliseconds, the normal exit costs nothing).
    out = []
    for ref in gc.get_referrers(handler):
        if (isinstance(ref, types.GeneratorType) and ref.gi_frame is not None
                and ref.gi_frame.f_locals.get("self") is handler):
            out.append(ref)
    return out
