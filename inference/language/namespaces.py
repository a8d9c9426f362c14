"""The whitelisted namespaces and builtins a program can reach, assembled.

The names come from ``whitelists.py``; every function that can allocate or build a
sequence is wrapped by a guard from ``guards.py``; Pyro primitives and poutine handlers
are wrapped by ``handlers.py`` (run-time checks on Pyro's global state). Attributes of
values are in ``attributes.py``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import pyro
import pyro.distributions as pyro_dist
import torch
import torch.nn as torch_nn
import torch.nn.functional as torch_F
from pyro.distributions import constraints as pyro_constraints
from pyro.distributions import transforms as pyro_transforms
from pyro.distributions.testing import fakes as pyro_fakes
from pyro.infer import config_enumerate as pyro_config_enumerate

from . import classes, extras, guards, handlers
from .attributes import Namespace
from .errors import ForbiddenConstruct
from .guards import check_sequence, named, to_text
from .limits import MAX_PRINT_LINE_CHARS
from .policy import FORBIDDEN_NAMES, IMPORTABLE_MODULES
from .runtime import counted, current_run
from .whitelists import (
    EXCLUDED_DISTRIBUTIONS,
    FUNCTIONAL,
    MATH,
    NN_MODULES,
    POUTINE_HANDLERS,
    TORCH_COMBINING,
    TORCH_CONCATENATING,
    TORCH_ELEMENTWISE,
    TORCH_LINALG,
    TORCH_REDUCE_SHAPE,
    TORCH_SPECIAL,
    TORCH_SPLITTING,
    TORCH_VALUES,
    TRANSFORMS,
)


def _pick(module: Any, names: str | list[str]) -> dict[str, Any]:
    if isinstance(names, str):
        names = names.split()
    return {n: getattr(module, n) for n in names if hasattr(module, n)}


def _guarded_functions(module: Any, names: list[str], prefix: str) -> dict[str, Any]:
    """Every function gets at least the generic guard (``out=``, several operands)."""
    return {
        n: guards.generic(getattr(module, n), f"{prefix}{n}")
        for n in names
        if hasattr(module, n) and callable(getattr(module, n))
    }


# ----------------------------------------------------------------------------------
# torch


def _build_torch() -> dict[str, Any]:
    members: dict[str, Any] = {}
    members.update(_guarded_functions(torch, TORCH_ELEMENTWISE, ""))
    members.update(_guarded_functions(torch, TORCH_REDUCE_SHAPE, ""))
    # broadcast_to and block_diag are replaced by their own guards below.
    members.update(_guarded_functions(torch, TORCH_COMBINING, ""))
    members.update(_pick(torch, TORCH_VALUES))
    members["Size"] = named(guards.torch_size, "Size")
    members.pop("special", None)
    for name in TORCH_CONCATENATING:
        if hasattr(torch, name):
            members[name] = guards.concatenating(getattr(torch, name), name)
    for name in TORCH_SPLITTING:
        members[name] = guards.splitting(getattr(torch, name), name)
    for name in ("diag", "diagflat", "diag_embed"):
        members[name] = guards.diagonalizing(getattr(torch, name), name)
    for name in ("zeros", "ones", "rand", "randn"):
        members[name] = guards.creation(getattr(torch, name), name)
    # uninitialised memory could hold another job's data: `empty` gives zeros here
    members["empty"] = guards.creation(torch.zeros, "empty")
    for name in (
        "zeros_like",
        "ones_like",
        "full_like",
        "rand_like",
        "randn_like",
        "randint_like",
    ):
        members[name] = guards.placed(getattr(torch, name), name)
    members["empty_like"] = guards.placed(torch.zeros_like, "empty_like")
    members["full"] = named(guards.full, "full")
    members["randint"] = named(guards.randint, "randint")
    members["arange"] = named(guards.arange, "arange")
    members["linspace"] = guards.linspace_like(torch.linspace, "linspace")
    members["logspace"] = guards.linspace_like(torch.logspace, "logspace")
    members["eye"] = named(guards.eye, "eye")
    members["tensor"] = guards.tensor_like(torch.tensor, "tensor")
    members["as_tensor"] = guards.tensor_like(torch.as_tensor, "as_tensor")
    members["cartesian_prod"] = guards.cartesian_like(
        torch.cartesian_prod, "cartesian_prod"
    )
    members["meshgrid"] = guards.cartesian_like(torch.meshgrid, "meshgrid")
    members["tril_indices"] = guards.tril_indices(torch.tril_indices, "tril_indices")
    members["triu_indices"] = guards.tril_indices(torch.triu_indices, "triu_indices")
    members["repeat_interleave"] = named(guards.repeat_interleave, "repeat_interleave")
    members["tile"] = named(guards.tile, "tile")
    members["combinations"] = named(guards.combinations, "combinations")
    members["block_diag"] = named(guards.block_diag, "block_diag")
    members["broadcast_to"] = named(guards.broadcast_to, "broadcast_to")
    members["mvlgamma"] = guards.mvlgamma(torch.mvlgamma, "mvlgamma")
    members["diff"] = named(guards.diff, "diff")
    members["nonzero"] = named(guards.nonzero, "nonzero")
    for name in (
        "numel",
        "is_tensor",
        "is_floating_point",
        "is_nonzero",
        "result_type",
        "promote_types",
        "can_cast",
        "broadcast_shapes",
    ):
        members[name] = getattr(torch, name)  # no tensor is produced

    members["linalg"] = Namespace(
        "torch.linalg", _guarded_functions(torch.linalg, TORCH_LINALG, "linalg.")
    )
    special = _guarded_functions(torch.special, TORCH_SPECIAL, "special.")
    special["multigammaln"] = guards.mvlgamma(
        torch.special.multigammaln, "special.multigammaln"
    )
    members["special"] = Namespace("torch.special", special)
    return members


# ----------------------------------------------------------------------------------
# distributions, constraints, transforms


def _build_constraints() -> dict[str, Any]:
    members: dict[str, Any] = {}
    for name in dir(pyro_constraints):
        if name.startswith("_") or name in {
            "Constraint",
            "dependent_property",
            "is_dependent",
        }:
            continue
        value = getattr(pyro_constraints, name)
        if isinstance(value, torch.distributions.constraints.Constraint) or (
            inspect.isclass(value)
            and issubclass(value, torch.distributions.constraints.Constraint)
        ):
            members[name] = value
    return members


def _build_transforms() -> dict[str, Any]:
    members = _pick(pyro_transforms, TRANSFORMS)
    members.update(
        _pick(
            torch.distributions.transforms, [n for n in TRANSFORMS if n not in members]
        )
    )
    members["biject_to"] = pyro_transforms.biject_to
    members["transform_to"] = pyro_transforms.transform_to
    return members


def _build_dist(constraints_ns: Namespace, transforms_ns: Namespace) -> dict[str, Any]:
    members: dict[str, Any] = {}
    for name in dir(pyro_dist):
        value = getattr(pyro_dist, name)
        if (
            inspect.isclass(value)
            and issubclass(value, torch.distributions.Distribution)
            and name not in EXCLUDED_DISTRIBUTIONS
        ):
            members[name] = guards.guard_distribution(value, name)
    members["constraints"] = constraints_ns
    members["transforms"] = transforms_ns
    members["kl_divergence"] = named(guards.kl_divergence, "kl_divergence")
    return members


# ----------------------------------------------------------------------------------
# pyro


def _param(
    name: Any, init_tensor: Any = None, constraint: Any = None, event_dim: Any = None
) -> Any:
    # Pyro requires a tensor; a modeller writing ``pyro.param("a", 0.5)`` means one.
    if isinstance(init_tensor, (int, float)) and not isinstance(init_tensor, bool):
        init_tensor = torch.tensor(float(init_tensor))
    elif isinstance(init_tensor, torch.Tensor):
        guards.check_elements(init_tensor.numel(), f"pyro.param({name!r}, ...)")
    kwargs = {}
    if constraint is not None:
        kwargs["constraint"] = constraint
    if event_dim is not None:
        kwargs["event_dim"] = event_dim
    return pyro.param(name, init_tensor, **kwargs)


def _sample(name: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
    guards.check_sample_site(name, fn, args, kwargs)
    return pyro.sample(name, fn, *args, **kwargs)


def _plate(
    name: Any,
    size: Any = None,
    subsample_size: Any = None,
    subsample: Any = None,
    dim: Any = None,
    **kwargs: Any,
) -> Any:
    guards.check_placement(kwargs)
    if kwargs.get("use_cuda"):
        raise ForbiddenConstruct(
            "pyro.plate(use_cuda=True) is not allowed; the job chooses the device"
        )
    if kwargs.keys() - {"use_cuda", "device"}:
        raise ForbiddenConstruct(
            f"pyro.plate got unexpected keyword(s) {sorted(kwargs.keys() - {'use_cuda', 'device'})}; "
            "allowed: size, subsample_size, subsample, dim"
        )
    if size is not None:
        guards.check_plate_size(size, f"size of plate {name!r}")
    if subsample_size is not None:
        guards.check_plate_size(subsample_size, f"subsample_size of plate {name!r}")
    return handlers.adopt(
        pyro.plate(name, size, subsample_size, subsample, dim, **kwargs)
    )


def _config_enumerate(
    guide: Any = None,
    default: str = "parallel",
    expand: bool = False,
    num_samples: Any = None,
    tmc: str = "diagonal",
) -> Any:
    return pyro_config_enumerate(
        guide, default=default, expand=expand, num_samples=num_samples, tmc=tmc
    )


# ----------------------------------------------------------------------------------
# nn


def _build_nn() -> tuple[dict[str, Any], dict[str, Any]]:
    functional = _guarded_functions(torch_F, FUNCTIONAL, "F.")
    functional["one_hot"] = named(guards.one_hot, "one_hot")
    functional["pad"] = named(guards.pad, "pad")
    nn_members = {
        n: guards.guard_module(getattr(torch_nn, n), n)
        for n in NN_MODULES
        if hasattr(torch_nn, n)
    }
    return nn_members, functional


# ----------------------------------------------------------------------------------
# builtins


def _consuming(fn: Callable, name: str) -> Callable:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and not isinstance(args[0], (int, float)):
            args = (counted(args[0]),)
        return fn(*args, **kwargs)

    return named(guarded, name)


def _list(iterable: Any = ()) -> list:
    return check_sequence(list(counted(iterable)))


def _tuple(iterable: Any = ()) -> tuple:
    return check_sequence(tuple(counted(iterable)))


def _dict(*args: Any, **kwargs: Any) -> dict:
    if args:
        if len(args) > 1:
            raise TypeError("dict expected at most 1 argument")
        source = args[0]
        if isinstance(source, dict):
            source = source.items()
        return dict(counted(source), **kwargs)
    return dict(**kwargs)


def _sum(iterable: Any, start: Any = 0) -> Any:
    if isinstance(start, (str, list, tuple)):
        raise TypeError(
            "sum() adds numbers and tensors; join lists with a comprehension"
        )
    if isinstance(iterable, torch.Tensor) and iterable.dim() == 0:
        raise TypeError("sum() of a 0-d tensor; use x.sum()")
    total = start
    for item in counted(iterable):
        # the same guards as `+` (big ints, broadcasting tensors)
        if isinstance(total, torch.Tensor) and isinstance(item, torch.Tensor):
            guards.check_pair(total, item)
        total = total + item
        if type(total) is int:
            guards.check_int_bits(total)
    return total


def _sorted(iterable: Any, *, reverse: bool = False) -> list:
    items = check_sequence(list(counted(iterable)))
    guards.check_sort_cost(items)
    return sorted(items, reverse=reverse)


def _min_max(fn: Callable, name: str) -> Callable:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if kwargs.keys() - {"default"}:
            raise TypeError(f"{name}() accepts only the keyword 'default' here")
        if len(args) == 1:
            items = check_sequence(list(counted(args[0])))
            guards.check_sort_cost(items)
            return fn(items, **kwargs)
        return fn(*args, **kwargs)

    return named(guarded, name)


def _str(value: Any = "") -> str:
    return to_text(value)


def _make_print(print_log_getter: Callable[[], Any]) -> Callable:
    def print_(*args: Any, sep: Any = " ", end: Any = "") -> None:
        sep = sep[:MAX_PRINT_LINE_CHARS] if isinstance(sep, str) else " "
        pieces: list[str] = []
        used = 0
        for a in args:  # the log keeps MAX_PRINT_LINE_CHARS: stop collecting beyond
            piece = to_text(a)[:MAX_PRINT_LINE_CHARS]
            pieces.append(piece)
            used += len(piece) + len(sep)
            if used > MAX_PRINT_LINE_CHARS:
                break
        text = sep.join(pieces)
        log = print_log_getter()
        if log is not None:
            log.write(text)

    return named(print_, "print")


def _current_print_log() -> Any:
    run = current_run()
    return run.print_log if run is not None else None


def _int(value: Any = 0, *args: Any) -> int:
    if args:
        raise TypeError("int() with a base is not available; pass numbers")
    return int(value)


def _round(number: Any, ndigits: Any = None) -> Any:
    if ndigits is not None and not -30 <= int(ndigits) <= 30:
        raise ForbiddenConstruct("round(x, ndigits) needs -30 <= ndigits <= 30")
    return round(number, ndigits) if ndigits is not None else round(number)


def _range(*args: Any) -> range:
    return range(*args)


BUILTINS: dict[str, Any] = {
    "range": named(_range, "range"),
    "len": len,
    "min": _min_max(min, "min"),
    "max": _min_max(max, "max"),
    "abs": abs,
    "float": float,
    "int": named(_int, "int"),
    "bool": bool,
    "sum": named(_sum, "sum"),
    "zip": zip,
    "enumerate": enumerate,
    "reversed": reversed,
    "list": named(_list, "list"),
    "tuple": named(_tuple, "tuple"),
    "dict": named(_dict, "dict"),
    "sorted": named(_sorted, "sorted"),
    "any": _consuming(any, "any"),
    "all": _consuming(all, "all"),
    "round": named(_round, "round"),
    "divmod": divmod,
    "str": named(_str, "str"),
    "print": _make_print(_current_print_log),
    "map": extras.MAP,
    "filter": extras.FILTER,
    "True": True,
    "False": False,
    "None": None,
}


# ----------------------------------------------------------------------------------
# assembling the namespaces

CONSTRAINTS = Namespace("constraints", _build_constraints())
TRANSFORMS_NS = Namespace("transforms", _build_transforms())
DIST_UTIL = Namespace("pyro.distributions.util", dict(extras.DIST_UTIL))
DIST_FAKES = Namespace(
    "pyro.distributions.testing.fakes",
    {
        n: guards.guard_distribution(getattr(pyro_fakes, n), n)
        for n in (
            "NonreparameterizedBeta",
            "NonreparameterizedDirichlet",
            "NonreparameterizedGamma",
            "NonreparameterizedNormal",
        )
    },
)
DIST_TESTING = Namespace("pyro.distributions.testing", {"fakes": DIST_FAKES})
DIST = Namespace(
    "pyro.distributions",
    {**_build_dist(CONSTRAINTS, TRANSFORMS_NS), "util": DIST_UTIL, "testing": DIST_TESTING},
)
OPS_INDEXING = Namespace("pyro.ops.indexing", dict(extras.OPS_INDEXING))
OPS_SPECIAL = Namespace("pyro.ops.special", dict(extras.OPS_SPECIAL))
OPS = Namespace("pyro.ops", {"indexing": OPS_INDEXING, "special": OPS_SPECIAL})
PYRO_UTIL = Namespace(
    "pyro.util",
    {"ignore_jit_warnings": named(extras.ignore_jit_warnings, "ignore_jit_warnings")},
)
LOGGING = Namespace("logging", dict(extras.LOGGING))
POUTINE = Namespace("pyro.poutine", handlers.build_poutine(POUTINE_HANDLERS))
CONFIG_ENUMERATE = named(_config_enumerate, "config_enumerate")
INFER_REPARAM = Namespace("pyro.infer.reparam", dict(extras.REPARAMS))
INFER = Namespace(
    "pyro.infer", {"config_enumerate": CONFIG_ENUMERATE, "reparam": INFER_REPARAM}
)
_nn_members, _functional_members = _build_nn()
FUNCTIONAL_NS = Namespace("torch.nn.functional", _functional_members)
NN_INIT = Namespace(
    "torch.nn.init",
    _guarded_functions(torch_nn.init, classes.NN_INIT_FUNCTIONS, "nn.init."),
)
#: guarded layer constructor -> layer class (for PyroModule[nn.Linear])
_LAYER_CLASSES = {fn: getattr(torch_nn, name) for name, fn in _nn_members.items()}
NN_MODULE_REF = classes.ModuleClassRef(torch_nn.Module, "nn.Module")
PYRO_MODULE_REF = classes.ModuleClassRef(
    classes.PyroModule, "PyroModule", layers=_LAYER_CLASSES
)
NN = Namespace(
    "torch.nn",
    {
        **_nn_members,
        "functional": FUNCTIONAL_NS,
        "init": NN_INIT,
        "Module": NN_MODULE_REF,
        "Parameter": classes.PARAMETER,
    },
)
PYRO_NN = Namespace(
    "pyro.nn",
    {
        "PyroModule": PYRO_MODULE_REF,
        "PyroSample": classes.PYRO_SAMPLE,
        "PyroParam": classes.PYRO_PARAM,
    },
)
TORCH_DISTRIBUTIONS = Namespace(
    "torch.distributions",
    {
        "constraints": CONSTRAINTS,
        "transforms": TRANSFORMS_NS,
        "biject_to": pyro_transforms.biject_to,
        "transform_to": pyro_transforms.transform_to,
    },
)
TORCH = Namespace(
    "torch",
    {
        **_build_torch(),
        **extras.LEGACY_TENSORS,
        "no_grad": named(extras.no_grad, "no_grad"),
        "nn": NN,
        "distributions": TORCH_DISTRIBUTIONS,
    },
)
PLATE = handlers.primitive(_plate, "plate")
PYRO_PRIMITIVES = {
    "sample": handlers.primitive(_sample, "sample"),
    "param": handlers.primitive(_param, "param"),
    "plate": PLATE,
    "iarange": PLATE,
    "markov": named(handlers.markov, "markov"),
    "deterministic": handlers.primitive(pyro.deterministic, "deterministic"),
    "factor": handlers.primitive(pyro.factor, "factor"),
    "module": handlers.primitive(pyro.module, "module"),
    "subsample": handlers.primitive(pyro.subsample, "subsample"),
}
PYRO = Namespace(
    "pyro",
    {
        **PYRO_PRIMITIVES,
        "distributions": DIST,
        "infer": INFER,
        "poutine": POUTINE,
        "ops": OPS,
        "util": PYRO_UTIL,
        "nn": PYRO_NN,
        "condition": POUTINE.members["condition"],
        "do": POUTINE.members["do"],
    },
)
MATH_NS = Namespace("math", _pick(math, MATH))

#: module paths accepted by ``import``/``from ... import``
MODULES: dict[str, Namespace] = {
    "torch": TORCH,
    "torch.nn": NN,
    "torch.nn.functional": FUNCTIONAL_NS,
    "torch.nn.init": NN_INIT,
    "pyro.nn": PYRO_NN,
    "torch.linalg": TORCH.members["linalg"],
    "torch.special": TORCH.members["special"],
    "torch.distributions": TORCH_DISTRIBUTIONS,
    "torch.distributions.constraints": CONSTRAINTS,
    "torch.distributions.transforms": TRANSFORMS_NS,
    "pyro": PYRO,
    "pyro.distributions": DIST,
    "pyro.distributions.constraints": CONSTRAINTS,
    "pyro.distributions.transforms": TRANSFORMS_NS,
    "pyro.distributions.util": DIST_UTIL,
    "pyro.distributions.testing": DIST_TESTING,
    "pyro.distributions.testing.fakes": DIST_FAKES,
    "pyro.ops": OPS,
    "pyro.ops.indexing": OPS_INDEXING,
    "pyro.ops.special": OPS_SPECIAL,
    "pyro.util": PYRO_UTIL,
    "logging": LOGGING,
    "pyro.infer": INFER,
    "pyro.infer.reparam": INFER_REPARAM,
    "pyro.poutine": POUTINE,
    "math": MATH_NS,
}
assert set(MODULES) == set(IMPORTABLE_MODULES)

#: names bound before the source runs (so sources without import lines work)
PRELUDE: dict[str, Any] = {
    "torch": TORCH,
    "pyro": PYRO,
    "dist": DIST,
    "constraints": CONSTRAINTS,
    "nn": NN,
    "F": FUNCTIONAL_NS,
    "poutine": POUTINE,
    "config_enumerate": CONFIG_ENUMERATE,
    "math": MATH_NS,
}

#: callables that may decorate a function definition
DECORATORS = {CONFIG_ENUMERATE, *(POUTINE.members.values())}

__all__ = [
    "BUILTINS",
    "DECORATORS",
    "FORBIDDEN_NAMES",
    "MODULES",
    "PRELUDE",
    "PYRO_PRIMITIVES",
]
