"""Pyro's process-global state, as user code may touch it.

Pyro keeps its effect handlers on a process-global stack (``_PYRO_STACK``) and its
plate dimensions in a process-global allocator. A program must not leave anything
there, nor hand Pyro a callback that would run user code on another model's messages.
This module enforces, at run time:

- Pyro primitives (``sample``, ``param``, ``plate``, ``markov``, ``factor``,
  ``deterministic``, ``module``, ``subsample``) and entering any handler are refused
  unless a *model run* is active (the entry function called by Pyro or our engine), so
  module-level code -- however it reaches them (``from pyro import plate``, a call to
  a user function) -- cannot install anything;
- poutine handlers refuse callables for ``hide_fn``/``expose_fn``/``config_fn`` (user
  code is never handed live Pyro messages); the lists ``hide=``/``expose=``/
  ``hide_types=``/``expose_types=`` and ``infer_config(config={...})`` replace them;
- every handler created by user code is *adopted* (its class swapped for a guarded
  subclass) so that entering it is recorded in the run state, and every plate/markov
  iterator created during a run is recorded too; when the run ends (normally or by
  an error) :func:`close_run` closes the iterators, exits the handlers still entered
  and restores ``_PYRO_STACK`` and the dimension allocator exactly as they were when
  the run began;
- a handler created during a run cannot be entered in a later run (module-level state
  cannot smuggle a live handler from one run into the next).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pyro.poutine as pyro_poutine
import torch
from pyro.poutine.markov_messenger import MarkovMessenger
from pyro.poutine.messenger import Messenger
from pyro.poutine.runtime import _DIM_ALLOCATOR, _PYRO_STACK

from .errors import ForbiddenConstruct
from .policy import HANDLER_CALLBACK_ARGUMENTS
from .runtime import RunState, current_run

_GUARDED_CLASSES: dict[type, type] = {}


def require_model_run(what: str) -> RunState:
    run = current_run()
    if run is None or not run.model:
        raise ForbiddenConstruct(
            f"{what} may only be used while the model or guide runs (inside the entry "
            "function or a function it calls), not by top-level code, which runs once "
            "when the source is compiled"
        )
    return run


def _guarded_class(cls: type) -> type:
    guarded = _GUARDED_CLASSES.get(cls)
    if guarded is not None:
        return guarded

    def __enter__(self: Any) -> Any:
        run = require_model_run("entering a Pyro handler")
        owner = self.__dict__.get("_vihub_owner")
        if owner is not None and owner is not run:
            raise ForbiddenConstruct(
                "this Pyro handler was created during an earlier run of the model; "
                "create handlers (pyro.plate, poutine.*) where they are used instead of "
                "keeping them in variables between runs"
            )
        result = cls.__enter__(self)
        run.handlers.append(self)
        return result

    def __exit__(self: Any, *exc: Any) -> Any:
        try:
            return cls.__exit__(self, *exc)
        finally:
            run = current_run()
            if run is not None:
                handlers = run.handlers
                for i in range(len(handlers) - 1, -1, -1):
                    if handlers[i] is self:
                        del handlers[i]
                        break

    namespace: dict[str, Any] = {
        "__enter__": __enter__,
        "__exit__": __exit__,
        "__module__": __name__,
        "__qualname__": cls.__qualname__,
    }
    if "__iter__" in dir(cls):

        def __iter__(self: Any) -> Any:
            run = require_model_run("iterating a pyro.plate")
            gen = cls.__iter__(self)
            run.generators.append(gen)
            return gen

        namespace["__iter__"] = __iter__
    if hasattr(cls, "generator"):

        def generator(self: Any, iterable: Any) -> Any:
            run = require_model_run("pyro.markov")
            gen = cls.generator(self, iterable)
            run.generators.append(gen)
            return gen

        namespace["generator"] = generator
    guarded = type(cls.__name__, (cls,), namespace)
    _GUARDED_CLASSES[cls] = guarded
    return guarded


def adopt(messenger: Any) -> Any:
    """Put a handler made for user code under the run's bookkeeping (see module doc)."""
    if isinstance(messenger, Messenger):
        messenger.__class__ = _guarded_class(type(messenger))
        run = current_run()
        messenger._vihub_owner = run if run is not None and run.model else None
    return messenger


def _refuse_callbacks(name: str, args: tuple, kwargs: dict) -> None:
    for key, instead in HANDLER_CALLBACK_ARGUMENTS.items():
        if kwargs.get(key) is not None:
            raise ForbiddenConstruct(
                f"poutine.{name}({key}=...) is not allowed: Pyro would call your function "
                f"with its internal messages; use {instead}"
            )
    for a in args:
        if callable(a) and not isinstance(a, torch.Tensor):
            raise ForbiddenConstruct(
                f"poutine.{name}(...) accepts a function only as its first argument (the "
                "function to wrap); pass options as keywords, and lists such as "
                "hide=[...] / expose=[...] instead of callbacks"
            )


def _check_reparam_config(config: Any) -> None:
    from pyro.infer.reparam.reparam import Reparam

    if type(config) is not dict or not all(
        type(k) is str and isinstance(v, Reparam) for k, v in config.items()
    ):
        raise ForbiddenConstruct(
            "poutine.reparam(config=...) takes a dict from site names to reparameterizers, e.g. "
            "config={'x': LocScaleReparam(centered=0.0)} (a function is not accepted)"
        )


def _constant_config(config: dict, msg: Any) -> dict:
    return dict(config)


def _handler(pyro_handler: Callable, name: str) -> Callable:
    def handler(fn: Any = None, *args: Any, **kwargs: Any) -> Any:
        _refuse_callbacks(name, args, kwargs)
        if name == "infer_config":
            config = kwargs.pop("config", None)
            if config is None:
                raise ForbiddenConstruct(
                    "poutine.infer_config needs config={...} (a dict of infer settings, "
                    "e.g. {'enumerate': 'parallel'})"
                )
            if type(config) is not dict:
                raise ForbiddenConstruct(
                    "poutine.infer_config(config=...) takes a dict"
                )
            kwargs["config_fn"] = functools.partial(_constant_config, dict(config))
        if name == "reparam":
            config = kwargs.get("config", args[0] if args else None)
            _check_reparam_config(config)
            # Pyro keeps the dict it is given: a copy, so that user code cannot put a
            # non-reparameterizer (an object with a user `apply`) in it after the check
            if "config" in kwargs:
                kwargs["config"] = dict(config)
            else:
                args = (dict(config), *args[1:])
        messenger = adopt(pyro_handler(None, *args, **kwargs))
        if fn is None:
            return messenger
        if name == "markov" and not callable(fn):
            return messenger.generator(iterable=fn)
        return functools.update_wrapper(messenger(fn), fn, updated=())

    handler.__name__ = handler.__qualname__ = name
    return handler


def build_poutine(names: list[str]) -> dict[str, Any]:
    return {
        n: _handler(getattr(pyro_poutine, n), n)
        for n in names
        if hasattr(pyro_poutine, n)
    }


def primitive(fn: Callable, name: str) -> Callable:
    """A Pyro primitive that acts on the handler stack: only during a model run."""
    what = f"pyro.{name}"

    def guarded(*args: Any, **kwargs: Any) -> Any:
        require_model_run(what)
        return fn(*args, **kwargs)

    guarded.__name__ = guarded.__qualname__ = name
    return guarded


def markov(
    fn: Any = None,
    history: int = 1,
    keep: bool = False,
    dim: Any = None,
    name: Any = None,
) -> Any:
    require_model_run("pyro.markov")
    messenger = adopt(MarkovMessenger(history=history, keep=keep, dim=dim, name=name))
    if fn is None:
        return messenger
    if callable(fn):
        return messenger(fn)
    return messenger.generator(iterable=fn)


# ----------------------------------------------------------------------------------
# run boundaries


def open_run(run: RunState) -> None:
    run.stack_at_entry = list(_PYRO_STACK)
    run.dims_at_entry = list(_DIM_ALLOCATOR._stack)


def close_run(run: RunState) -> None:
    """Close what the run left open; leave Pyro's globals exactly as at entry."""
    gens = run.generators
    while gens:
        gen = gens.pop()
        try:
            gen.close()
        except Exception:  # noqa: BLE001, S110 - cleanup must go on
            pass
    handlers = run.handlers
    while handlers:
        m = handlers.pop()
        if m in _PYRO_STACK:
            try:
                if _PYRO_STACK[-1] is m:
                    type(m).__exit__(m, None, None, None)
                else:
                    err = RuntimeError("run ended")
                    type(m).__exit__(m, RuntimeError, err, None)
            except Exception:  # noqa: BLE001, S110 - the stack is restored below anyway
                pass
    entry = run.stack_at_entry
    if entry is not None and (
        len(_PYRO_STACK) != len(entry)
        or any(a is not b for a, b in zip(_PYRO_STACK, entry))
    ):
        _PYRO_STACK[:] = entry
    dims = run.dims_at_entry
    if dims is not None and _DIM_ALLOCATOR._stack != dims:
        _DIM_ALLOCATOR._stack[:] = dims


__all__ = [
    "adopt",
    "build_poutine",
    "close_run",
    "markov",
    "open_run",
    "primitive",
    "require_model_run",
]
