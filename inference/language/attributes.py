"""Attribute rules: which attributes of which values a program may read.

``ATTRIBUTE_RULES`` maps a type to a :class:`Rule`: the attribute names that are read
directly, and the names served by a guard factory (``factory(value)`` returns the
guarded bound method). A value's rule is the first one found along its type's MRO.
Namespaces (``torch``, ``dist``, ...) are the other kind of value with attributes:
their members.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
import torch.nn as torch_nn
from pyro.poutine.messenger import Messenger

from . import classes, extras, guards
from .errors import UnknownName
from .whitelists import (
    CONSTRAINT_ATTRS,
    DICT_ATTRS,
    DIST_ATTRS,
    LIST_ATTRS,
    RETURN_TYPE_ATTRS,
    SEQUENCE_ATTRS,
    SIZE_ATTRS,
    STR_ATTRS,
    TENSOR_ATTRS,
    TENSOR_COMBINING_METHODS,
    TENSOR_SPLITTING_METHODS,
)


class Namespace:
    """A whitelisted module: only ``members`` can be reached through it."""

    __slots__ = ("members", "ns_name")

    def __init__(self, ns_name: str, members: dict[str, Any]) -> None:
        self.ns_name = ns_name
        self.members = members

    def __repr__(self) -> str:
        return f"<model-language namespace {self.ns_name}>"


class Rule(NamedTuple):
    allowed: frozenset
    guarded: dict[str, Callable[[Any], Any]]


def _bounded_list_method(name: str) -> Callable[[list], Callable]:
    def factory(lst: list) -> Callable:
        method = getattr(lst, name)

        def grow(*args: Any) -> Any:
            guards.check_sequence(lst)
            return method(*args)

        return grow

    return factory


def _comparing_method(name: str) -> Callable[[Any], Callable]:
    """``seq.count(x)`` / ``seq.index(x)`` compare ``x`` with every item, in C."""

    def factory(seq: Any) -> Callable:
        method = getattr(seq, name)

        def compare(*args: Any) -> Any:
            if args and isinstance(args[0], (list, tuple, dict)):
                guards.check_container_work(seq)
            return method(*args)

        return compare

    return factory


_TENSOR_GUARDED: dict[str, Callable[[Any], Any]] = {
    "expand": guards.tensor_expand,
    "broadcast_to": guards.tensor_broadcast_to,
    "expand_as": guards.tensor_expand_as,
    "repeat": guards.tensor_repeat,
    "tile": guards.tensor_tile,
    "to": guards.tensor_to,
    "nonzero": guards.tensor_nonzero,
    "repeat_interleave": guards.tensor_repeat_interleave,
    **{n: guards.tensor_diagonalizing(n) for n in ("diag", "diag_embed")},
    **{
        n: guards.tensor_new(n)
        for n in ("new_zeros", "new_ones", "new_full", "new_empty")
    },
    "new_tensor": guards.tensor_new_tensor,
    "type": extras.tensor_type,
    **{n: guards.tensor_combining(n) for n in TENSOR_COMBINING_METHODS},
    **{n: guards.tensor_splitting(n) for n in TENSOR_SPLITTING_METHODS},
}

_DIST_GUARDED: dict[str, Callable[[Any], Any]] = {
    n: guards.dist_method(n)
    for n in (
        "sample",
        "rsample",
        "expand",
        "expand_by",
        "log_prob",
        "score_parts",
        "cdf",
        "icdf",
        "enumerate_support",
        "mask",
        "to_event",
        "independent",
    )
}

_DIST_GUARDED.update(
    {
        n: guards.dist_matrix_property(n)
        for n in ("covariance_matrix", "precision_matrix", "scale_tril")
    }
)

_EMPTY = Rule(frozenset(), {})

#: {type: rule}; looked up along the MRO of a value's type
ATTRIBUTE_RULES: dict[type, Rule] = {
    torch.Tensor: Rule(frozenset(TENSOR_ATTRS), _TENSOR_GUARDED),
    torch.distributions.Distribution: Rule(frozenset(DIST_ATTRS), _DIST_GUARDED),
    torch.distributions.constraints.Constraint: Rule(
        frozenset(CONSTRAINT_ATTRS), {"check": guards.constraint_check}
    ),
    torch.Size: Rule(frozenset(SIZE_ATTRS), {}),
    list: Rule(
        frozenset(LIST_ATTRS),
        {**{n: _bounded_list_method(n) for n in ("append", "insert")},
         **{n: _comparing_method(n) for n in ("count", "index")}},
    ),
    tuple: Rule(frozenset(SEQUENCE_ATTRS), {n: _comparing_method(n) for n in ("count", "index")}),
    dict: Rule(frozenset(DICT_ATTRS), {}),
    str: Rule(
        frozenset(STR_ATTRS),
        {"format": guards.str_format, "split": guards.str_split, "join": guards.str_join,
         "replace": guards.str_replace},
    ),
    extras.Logger: Rule(extras.LOGGER_ATTRS, {}),
    **{
        t: Rule(frozenset(RETURN_TYPE_ATTRS), {})
        for t in vars(torch.return_types).values()
        if isinstance(t, type) and t.__module__ == "torch.return_types"
    },
}

_RULES_CACHE: dict[type, Rule] = {}


def attribute_rules(t: type) -> Rule:
    rule = _RULES_CACHE.get(t)
    if rule is not None:
        return rule
    rule = _EMPTY
    for base in t.__mro__:
        found = ATTRIBUTE_RULES.get(base)
        if found is not None:
            rule = found
            break
    if t.__module__ == "torch.return_types" and rule is _EMPTY:
        rule = Rule(frozenset(RETURN_TYPE_ATTRS), {})
    _RULES_CACHE[t] = rule
    return rule


def describe(value: Any) -> str:
    if isinstance(value, Namespace):
        return f"`{value.ns_name}`"
    if isinstance(value, torch.Tensor):
        return "a tensor"
    if isinstance(value, torch.distributions.Distribution):
        return f"a distribution ({type(value).__name__})"
    if isinstance(value, torch_nn.Module):
        return f"an nn module ({type(value).__name__})"
    if isinstance(value, Messenger):
        return f"a Pyro handler ({type(value).__name__})"
    if inspect.isclass(value):
        return f"the class {value.__name__}"
    if callable(value):
        return "a function"
    return f"a value of type {type(value).__name__}"


def get_attribute(value: Any, name: str) -> Any:
    """Read ``value.name`` if the whitelist allows it, else raise ``UnknownName``."""
    if type(value) is Namespace:
        try:
            return value.members[name]
        except KeyError:
            raise unknown_member(value, name) from None
    if isinstance(value, (torch_nn.Module, classes.UserObject)):
        return _module_attribute(value, name)
    if type(value) is extras.SettingsOnly:
        raise value.refusal()
    if type(value) is extras.DataRecord:
        if name in value and not name.startswith("_"):
            return value[name]
        if name in extras.DATA_RECORD_METHODS:
            return getattr(value, name)
        raise UnknownName(
            f"the data record has no field `{name}`; fields: {', '.join(sorted(map(str, value))[:40])}"
        )
    allowed, guarded = attribute_rules(type(value))
    factory = guarded.get(name)
    if factory is not None:
        return factory(value)
    if name in allowed:
        return getattr(value, name)
    raise UnknownName(
        f"attribute `.{name}` of {describe(value)} is not available in the model language"
        + (
            f"; allowed: {', '.join(sorted(allowed)[:40])}{', ...' if len(allowed) > 40 else ''}"
            if allowed
            else ""
        )
    )


def _module_attribute(module: Any, name: str) -> Any:
    uc = classes.user_class_of(module)
    if uc is not None:
        return classes.get_instance_attribute(uc, module, name)
    d = module.__dict__
    classes.require_run_for_pyro_attribute(module, name)
    if any(name in (d.get(k) or {}) for k in ("_parameters", "_buffers", "_modules", "_pyro_samples", "_pyro_params")) or (
        name in classes.MODULE_CONFIG_ATTRS and name in d
    ):
        return getattr(module, name)
    raise UnknownName(
        f"attribute `.{name}` of {describe(module)} is not available in the model language; "
        "its parameters, buffers and sub-modules are (e.g. `.weight`, `.bias`)"
    )


def unknown_member(ns: Namespace, name: str) -> UnknownName:
    close = difflib.get_close_matches(name, list(ns.members), n=3)
    hint = (
        f"; did you mean {', '.join(f'`{ns.ns_name}.{c}`' for c in close)}?"
        if close
        else ""
    )
    return UnknownName(
        f"`{ns.ns_name}.{name}` is not available in the model language{hint}"
    )


def is_context_manager(value: Any) -> bool:
    return isinstance(value, Messenger) or type(value) in extras.CONTEXT_TYPES
