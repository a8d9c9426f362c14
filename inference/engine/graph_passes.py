"""Shrink a recorded aten graph before TorchScript replays it.

The fast path records the ELBO's forward and backward once (``make_fx``) and replays the
graph every step. On a small model each op costs ~0.5-1 us of interpreter and dispatch
overhead whatever its size, so the step time is the op count — and a recorded graph
carries many ops that compute nothing new: copies of constant data (``lift_fresh_copy``),
``detach``, arithmetic on constants only (``sigma ** 2`` of the data, ``log`` of a prior's
scale), ``x * 1`` and ``x + 0.0`` from transforms, views to the shape a tensor already
has, the same op twice (a transform applied in the model and again for its Jacobian), and
per-site ``slice_backward`` + ``add`` chains that rebuild one flat gradient. :func:`simplify`
removes them; the graph computes the same values (the fast path checks the replay against
the eager function before using it).

No op may mutate a tensor in place when the rewrites run (a folded constant or a merged
node must never be written to): the in-place ops a recording holds (``masked_fill_`` in a
HalfCauchy's log-density) are made out of place where that is plainly safe, otherwise the
graph is re-recorded through ``torch.func.functionalize``.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import torch
from torch import fx
from torch.func import functionalize
from torch.fx.experimental.proxy_tensor import make_fx

__all__ = ["record", "simplify", "value_dependent_shapes"]

aten = torch.ops.aten

# Ops whose value depends only on their input's shape/dtype (and constant arguments).
_SHAPE_ONLY = {aten.zeros_like.default, aten.ones_like.default, aten.full_like.default,
               aten.new_zeros.default, aten.new_ones.default, aten.new_full.default}
_VIEWS = {aten.view.default, aten.reshape.default, aten._unsafe_view.default, aten.alias.default}
_SQUEEZES = {aten.squeeze.default, aten.squeeze.dim, aten.squeeze.dims}
# Folded constants stay in memory for the whole fit (the ops they replace only held their
# results for a moment): one may have up to 4M elements, all of them together 16M.
_FOLDED_NUMEL_MAX = 1 << 22
_FOLDED_TOTAL_MAX = 1 << 24


def record(fn: Callable[..., Any], *example_inputs: torch.Tensor) -> fx.GraphModule:
    """``make_fx(fn)(*example_inputs)``: the aten ops ``fn`` runs, recorded with real tensors.

    make_fx keeps a fake tensor as each node's metadata; with no fake mode around it builds
    a new ``FakeTensorMode`` per node (each one walks the Python stack), which was most of
    the recording time: one shared mode made recording 2-5x faster (eight schools ~0.25 s
    -> ~0.1 s, a 3,300-node GARCH graph ~6.5 s -> ~2.2 s on a loaded 2-core machine).
    """
    try:
        from torch._guards import TracingContext, tracing
        from torch._subclasses.fake_tensor import FakeTensorMode

        context = tracing(TracingContext(FakeTensorMode(allow_fallback_kernels=True)))
    except Exception:  # noqa: BLE001 - a torch without these internals: the plain recording
        context = contextlib.nullcontext()
    with context:
        return make_fx(fn)(*example_inputs)


def simplify(graph: fx.GraphModule, *example_inputs: torch.Tensor) -> fx.GraphModule:
    """A smaller graph without in-place ops computing the same outputs as ``graph`` (which
    is rewritten in place and returned, unless functionalize had to re-record it)."""
    if not _out_of_place(graph):
        # An in-place op on an input, a constant or a view: let functionalize work out the
        # aliasing (a re-recording, ~0.1-0.3 s on a small model, so only when needed).
        try:
            graph = record(functionalize(graph, remove="mutations"), *example_inputs)
        except Exception:  # noqa: BLE001 - e.g. a write through a transposed view it cannot replay
            return graph  # the recording as it is (it replays; it is only not smaller)
    gm = graph
    g = gm.graph
    if any(_mutates(n) for n in g.nodes):  # functionalize left one (should not happen): leave as is
        return gm
    changed = True
    while changed:
        changed = False
        changed |= _drop_identities(gm)
        changed |= _fold_constants(gm)
        changed |= _merge_duplicates(g)
        changed |= _combine_constants(gm)
        changed |= _gather_slice_grads(g)
        g.eliminate_dead_code()
    _never_return_constants(g)
    used = {n.target for n in g.nodes if n.op == "get_attr"}
    for name in [k for k in [*vars(gm), *gm._buffers] if k.startswith(("_tensor_constant", "_folded"))]:
        if name not in used and isinstance(getattr(gm, name), torch.Tensor):
            delattr(gm, name)  # constants no node reads any more (data copies, folded inputs)
    g.lint()
    gm.recompile()
    return gm


# Ops whose output's shape depends on the values of their input (nonzero, boolean masks).
_VALUE_SHAPED = {aten.nonzero.default, aten.masked_select.default, aten._unique2.default,
                 aten.unique_dim.default, aten.unique_consecutive.default, aten.repeat_interleave.Tensor,
                 aten.bincount.default, aten.nonzero_numpy.default}
# ... and these when indexed by a boolean mask of varying values.
_INDEXING = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default, aten._index_put_impl_.default}


def value_dependent_shapes(graph: fx.GraphModule) -> list[str]:
    """The ops of ``graph`` whose output shape depends on the values of its inputs
    (``z[z > 2]`` of a drawn ``z``): a recording writes the shapes it saw into later ops
    (the backward's ``expand(ones, [n])``), so replaying it at other values fails or
    silently drops terms. On constant data such ops are fine (their shape never changes)."""
    varying: set[fx.Node] = set()
    found = []
    for node in graph.graph.nodes:
        if node.op == "placeholder":
            varying.add(node)
            continue
        if not any(a in varying for a in node.all_input_nodes):
            continue
        varying.add(node)
        if node.op != "call_function":
            continue
        if node.target in _VALUE_SHAPED or (node.target in _INDEXING and _bool_index(node, varying)):
            found.append(str(node.target))
    return found


def _bool_index(node: fx.Node, varying: set[fx.Node]) -> bool:
    indices = node.args[1] if len(node.args) > 1 else []
    return any(isinstance(i, fx.Node) and i in varying and _val(i) is not None and _val(i).dtype == torch.bool
               for i in indices or [])


# ---------------------------------------------------------------- helpers
def _is_op(node: fx.Node) -> bool:
    return node.op == "call_function" and isinstance(node.target, torch._ops.OpOverload)


def _mutates(node: fx.Node) -> bool:
    return _is_op(node) and node.target._schema.is_mutable


def _random(node: fx.Node) -> bool:
    return torch.Tag.nondeterministic_seeded in node.target.tags


def _val(node: Any) -> torch.Tensor | None:
    if isinstance(node, fx.Node):
        val = node.meta.get("val")
        return val if isinstance(val, torch.Tensor) else None
    return None


def _same_meta(a: fx.Node, b: fx.Node) -> bool:
    va, vb = _val(a), _val(b)
    return (va is not None and vb is not None and va.shape == vb.shape and va.dtype == vb.dtype
            and va.device == vb.device)


def _zeros(gm: fx.GraphModule, arg: Any) -> bool:
    """Whether ``arg`` is a constant tensor of zeros (small: checked by value)."""
    if not (isinstance(arg, fx.Node) and arg.op == "get_attr"):
        return False
    value = getattr(gm, arg.target, None)
    return isinstance(value, torch.Tensor) and value.numel() <= 4096 and not bool(value.any())


def _replace(node: fx.Node, by: fx.Node) -> bool:
    node.replace_all_uses_with(by)
    return True


def _out_of_place(gm: fx.GraphModule) -> bool:
    """Rewrite each ``x = op_(x, ...)`` as ``y = op(x, ...)`` with later reads of ``x``
    reading ``y``; True when every in-place op could be (False leaves the graph for
    functionalize). Plainly safe means: the written tensor is made by an op of this graph
    (not an input or constant), is not a view of another tensor, has no views taken of it
    and is written by this op only."""
    g = gm.graph
    order = {n: i for i, n in enumerate(g.nodes)}
    for node in list(g.nodes):
        if not _mutates(node):
            continue
        schema = node.target._schema
        written = [i for i, a in enumerate(schema.arguments) if a.alias_info is not None and a.alias_info.is_write]
        functional = _functional_variant(node.target)
        x = node.args[0] if node.args else None
        if written != [0] or functional is None or not isinstance(x, fx.Node) or not _is_op(x) \
                or _is_view(x) or any(u is not node and (_is_view(u) or _mutates(u)) for u in x.users):
            gm.recompile()  # the rewrites so far stand; functionalize runs the graph as it is now
            return False
        with g.inserting_before(node):
            y = g.call_function(functional, node.args, node.kwargs)
        y.meta = dict(node.meta)
        for user in list(x.users):
            if user is not node and order.get(user, -1) > order[node]:  # y itself reads x
                user.replace_input_with(x, y)
        node.replace_all_uses_with(y)
        g.erase_node(node)
    return True  # simplify() recompiles once at the end


def _functional_variant(op: torch._ops.OpOverload) -> torch._ops.OpOverload | None:
    name = op._schema.name.split("::")[-1]
    if not name.endswith("_") or name.endswith("__"):
        return None
    packet = getattr(aten, name[:-1], None)
    overload = getattr(packet, op._overloadname, None) if packet is not None else None
    if overload is None or overload._schema.is_mutable:
        return None
    return overload


def _is_view(node: fx.Node) -> bool:
    return _is_op(node) and any(r.alias_info is not None for r in node.target._schema.returns)


# ---------------------------------------------------------------- passes
def _drop_identities(gm: fx.GraphModule) -> bool:
    """``detach``, constant copies, ``x * 1``, ``x + 0`` (also a constant tensor of zeros),
    ``x ** 1``, views/expands to the same shape, and view-of-view / expand-of-expand chains."""
    changed = False
    for node in list(gm.graph.nodes):
        if not _is_op(node) or not node.users:
            continue
        t, args = node.target, node.args
        if t is aten.add.Tensor and len(args) == 2 and not node.kwargs and _zeros(gm, args[0]) \
                and isinstance(args[1], fx.Node):
            args = node.args = (args[1], args[0])  # 0 + x: x + 0 below
        src = args[0] if args and isinstance(args[0], fx.Node) else None
        if src is None:
            continue
        if t in (aten.add.Tensor, aten.sub.Tensor) and len(args) == 2 and not node.kwargs \
                and _zeros(gm, args[1]) and _same_meta(node, src):
            changed |= _replace(node, src)
            continue
        if t in (aten.detach.default, aten.lift_fresh_copy.default, aten.clone.default) and _same_meta(node, src) \
                and _val(node).stride() == _val(src).stride():  # a clone that makes contiguous stays
            changed |= _replace(node, src)
        elif t in (aten.mul.Tensor, aten.div.Tensor, aten.pow.Tensor_Scalar) and len(args) == 2 \
                and not isinstance(args[1], fx.Node) and args[1] == 1 and _same_meta(node, src):
            changed |= _replace(node, src)
        elif t in (aten.add.Tensor, aten.sub.Tensor) and len(args) == 2 and not node.kwargs \
                and not isinstance(args[1], fx.Node) and args[1] == 0 and _same_meta(node, src):
            changed |= _replace(node, src)
        elif t in _VIEWS | {aten.expand.default} and _same_meta(node, src):
            changed |= _replace(node, src)
        elif t in _VIEWS and _is_op(src) and src.target in _VIEWS:
            inner = src.args[0]
            if _val(inner) is not None and _val(inner).is_contiguous():
                node.args = (inner,) + tuple(args[1:])
                node.target = aten.view.default
                changed = True
        elif t is aten.expand.default and _is_op(src) and src.target is aten.expand.default \
                and -1 not in list(args[1]):  # a -1 keeps the inner expand's size, not x's
            node.args = (src.args[0],) + tuple(args[1:])
            changed = True
    return changed


def _fold_constants(gm: fx.GraphModule) -> bool:
    """Evaluate once every op whose inputs are all constants (the data, a prior's
    parameters, shape-only factories) and keep its value as a constant of the graph."""
    g = gm.graph
    constants: dict[fx.Node, torch.Tensor] = {}
    changed = False
    budget = _FOLDED_TOTAL_MAX - sum(int(b.numel()) for name, b in gm.named_buffers() if name.startswith("_folded"))
    for node in list(g.nodes):
        if node.op == "get_attr":
            value = getattr(gm, node.target)
            if isinstance(value, torch.Tensor):
                constants[node] = value
            continue
        if not _is_op(node) or _random(node) or not node.users:
            continue
        tensor_args = [a for a in node.all_input_nodes]
        if node.target in _SHAPE_ONLY:
            ready = True
        else:
            ready = all(a in constants for a in tensor_args)
        if not ready:
            continue
        val = _val(node)
        if val is None or val.numel() > min(_FOLDED_NUMEL_MAX, budget):
            continue
        if node.target in _SHAPE_ONLY:
            value = _evaluate_shape_only(node)
        else:
            value = node.target(*fx.node.map_arg(node.args, lambda a: constants[a]),
                                **fx.node.map_arg(node.kwargs, lambda a: constants[a]))
        if not isinstance(value, torch.Tensor):
            continue
        budget -= value.numel()
        name = _fresh_attr(gm)
        gm.register_buffer(name, value)
        with g.inserting_before(node):
            const = g.get_attr(name)
        const.meta = dict(node.meta)
        node.replace_all_uses_with(const)
        constants[const] = value
        changed = True
    return changed


def _evaluate_shape_only(node: fx.Node) -> torch.Tensor:
    """A shape-only op evaluated on an empty stand-in of its tensor input."""
    src = _val(node.args[0])  # its strides too: zeros_like keeps a transposed layout
    stand_in = torch.empty_strided(src.shape, src.stride(), dtype=src.dtype, device=src.device)
    return node.target(stand_in, *node.args[1:], **node.kwargs)


def _fresh_attr(gm: fx.GraphModule) -> str:
    """A new ``_foldedN`` name: a counter kept on the module (probing from 0 made folding
    quadratic in the number of constants)."""
    i = getattr(gm, "_folded_next", 0)
    while hasattr(gm, f"_folded{i}"):
        i += 1
    gm._folded_next = i + 1
    return f"_folded{i}"


_NEGATABLE = {aten.mul.Tensor, aten.div.Tensor, aten.mul.Scalar, aten.div.Scalar}
_COMMUTATIVE = {aten.add.Tensor, aten.mul.Tensor}
# (outer, inner) pairs whose two constants combine into one: how, and the combined op
_CHAINS = {
    (aten.add.Tensor, aten.add.Tensor): (torch.add, aten.add.Tensor),
    (aten.sub.Tensor, aten.sub.Tensor): (torch.add, aten.sub.Tensor),  # (x - a) - b = x - (a + b)
    (aten.add.Tensor, aten.sub.Tensor): (lambda a, b: b - a, aten.add.Tensor),  # (x - a) + b = x + (b - a)
    (aten.sub.Tensor, aten.add.Tensor): (lambda a, b: a - b, aten.add.Tensor),  # (x + a) - b = x + (a - b)
    (aten.mul.Tensor, aten.mul.Tensor): (torch.mul, aten.mul.Tensor),
    (aten.mul.Tensor, aten.mul.Scalar): (torch.mul, aten.mul.Tensor),
    (aten.mul.Scalar, aten.mul.Tensor): (torch.mul, aten.mul.Tensor),
    (aten.mul.Scalar, aten.mul.Scalar): (torch.mul, aten.mul.Tensor),
}


def _combine_constants(gm: fx.GraphModule) -> bool:
    """Arithmetic chains with constants become one op: ``neg(x)`` times or over a constant
    becomes ``x`` times or over the negated constant (exact), and ``(x - a) - b``,
    ``(x * a) * b`` and their mixes become ``x - (a + b)``, ``x * (a * b)`` (one rounding
    of the constants' combination apart; the fast path checks the replay against the eager
    function). Only where the inner op has no other reader and the result keeps its shape
    and dtype. In a Normal's log-density and its gradient this removes two ops per site."""
    g = gm.graph
    changed = False
    for node in list(g.nodes):
        if _is_op(node) and node.target is aten.neg.default and len(node.args) == 1:
            changed |= _negate_factor(gm, node)
            continue
        if not _is_op(node) or not node.users or len(node.args) not in (2, 3) or node.kwargs:
            continue
        if node.target is aten.sum.dim_IntList:
            changed |= _drop_keepdim(node)
            continue
        if len(node.args) != 2:
            continue
        a, b = node.args
        if node.target in _COMMUTATIVE and _constant(gm, a) is not None and isinstance(b, fx.Node):
            a, b = b, a  # c * (x * d): the constant second, as below
        if node.target in _NEGATABLE and _fold_negation(gm, node, a, b):
            changed = True
            continue
        if (node.target, getattr(a, "target", None)) not in _CHAINS or not isinstance(a, fx.Node) \
                or len(a.users) != 1 or len(a.args) != 2 or a.kwargs:
            continue
        x, inner_const = a.args
        if a.target in _COMMUTATIVE and _constant(gm, x) is not None and isinstance(inner_const, fx.Node):
            x, inner_const = inner_const, x
        outer_const = _constant(gm, b)
        inner_value = _constant(gm, inner_const)
        if outer_const is None or inner_value is None or not isinstance(x, fx.Node):
            continue
        combine, op = _CHAINS[(node.target, a.target)]
        value = combine(torch.as_tensor(inner_value), torch.as_tensor(outer_const))
        merged = _as_arg(gm, node, value, x=x)
        if merged is None:
            continue
        node.target, node.args = op, (x, merged)
        changed = True
    return changed


def _fold_negation(gm: fx.GraphModule, node: fx.Node, a: Any, b: Any) -> bool:
    """``neg(x) * c`` / ``neg(x) / c`` / ``c / neg(x)`` -> ``x * -c`` / ``x / -c`` / ``-c / x``."""
    for first, (inner, other) in ((True, (a, b)), (False, (b, a))):
        if not (isinstance(inner, fx.Node) and _is_op(inner) and inner.target is aten.neg.default
                and len(inner.users) == 1):
            continue
        value = _constant(gm, other)
        negated = _as_arg(gm, node, -value) if value is not None else None
        if negated is None:
            continue
        node.args = (inner.args[0], negated) if first else (negated, inner.args[0])
        return True
    return False


def _negate_factor(gm: fx.GraphModule, node: fx.Node) -> bool:
    """``neg(x * c)`` / ``neg(x / c)`` -> ``x * -c`` / ``x / -c`` (the product read only here)."""
    inner = node.args[0]
    if not (isinstance(inner, fx.Node) and _is_op(inner) and inner.target in _NEGATABLE
            and len(inner.users) == 1 and len(inner.args) == 2 and not inner.kwargs):
        return False
    x, c = inner.args
    value = _constant(gm, c)
    if value is None or not isinstance(x, fx.Node):
        return False
    negated = _as_arg(gm, node, -value, x=x)
    if negated is None:
        return False
    node.target, node.args = inner.target, (x, negated)
    return True


def _drop_keepdim(node: fx.Node) -> bool:
    """``view(sum(x, dims, keepdim=True), s)`` (or a squeeze) -> ``sum(x, dims)`` when ``s``
    is that sum's own shape (autograd reduces a broadcast gradient that way)."""
    if len(node.args) != 3 or node.args[2] is not True or len(node.users) != 1:
        return False
    (user,) = node.users
    if not (_is_op(user) and user.target in _VIEWS | _SQUEEZES and user.args[0] is node):
        return False
    x, dims = node.args[0], node.args[1]
    vx, vu = _val(x), _val(user)
    if vx is None or vu is None or vx.dim() == 0 or not isinstance(dims, (list, tuple)):
        return False
    kept = [d % vx.dim() for d in dims]
    if list(vu.shape) != [n for i, n in enumerate(vx.shape) if i not in kept]:
        return False
    node.args = (x, dims)
    node.meta = dict(user.meta)
    user.replace_all_uses_with(node)
    return True


def _constant(gm: fx.GraphModule, arg: Any) -> torch.Tensor | float | int | None:
    """The value of a Python number or a constant-tensor argument, else None."""
    if isinstance(arg, (int, float)) and not isinstance(arg, bool):
        return arg
    if isinstance(arg, fx.Node) and arg.op == "get_attr":
        value = getattr(gm, arg.target, None)
        return value if isinstance(value, torch.Tensor) else None
    return None


def _as_arg(gm: fx.GraphModule, node: fx.Node, value: Any, x: fx.Node | None = None) -> Any:
    """``value`` as an argument of ``node``'s op: a Python number when it is one, else a
    new constant of the graph — None unless the op's result keeps its shape and dtype."""
    out = _val(node)
    if out is None:
        return None
    if not torch.is_tensor(value):
        return value
    if value.dim() == 0 and value.dtype.is_floating_point and out.dtype.is_floating_point:
        return float(value)
    if value.dtype != out.dtype or value.numel() > 4096:
        return None
    shapes = [value.shape] + ([_val(x).shape] if x is not None and _val(x) is not None else [])
    try:
        if torch.broadcast_shapes(out.shape, *shapes) != out.shape:
            return None
    except RuntimeError:
        return None
    name = _fresh_attr(gm)
    gm.register_buffer(name, value.detach().clone())
    with gm.graph.inserting_before(node):
        const = gm.graph.get_attr(name)
    const.meta["val"] = value
    return const


def _merge_duplicates(g: fx.Graph) -> bool:
    """One node for each (op, arguments) computed more than once."""
    seen: dict[Any, fx.Node] = {}
    changed = False
    for node in list(g.nodes):
        if not _is_op(node) or _random(node) or node.is_impure():
            continue  # an impure op (an assert) is never one of two
        try:
            key = (node.target, _hashable(node.args), _hashable(node.kwargs))
            hash(key)
        except TypeError:
            continue
        if key in seen:
            if node.users:
                changed |= _replace(node, seen[key])
        else:
            seen[key] = node
    return changed


def _hashable(x: Any) -> Any:
    if isinstance(x, (list, tuple)):
        return (type(x).__name__,) + tuple(_hashable(v) for v in x)
    if isinstance(x, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in x.items()))
    if isinstance(x, torch.Tensor):  # a literal tensor argument: compare by identity
        return ("tensor", id(x))
    if isinstance(x, float):  # repr: 0.0 and -0.0 are different arguments (atan2, division)
        return ("float", repr(x))
    return (type(x).__name__, x)


def _gather_slice_grads(g: fx.Graph) -> bool:
    """``add`` trees of ``slice_backward``s that tile one dimension exactly (the gradient
    of a tensor sliced into consecutive pieces) become one ``cat`` of the pieces."""
    changed = False
    for node in list(g.nodes):
        if not (_is_op(node) and node.target is aten.add.Tensor) or not node.users:
            continue
        if any(u.target is aten.add.Tensor and len(node.users) == 1 for u in node.users):
            continue  # not the root of the tree
        leaves: list[fx.Node] = []
        if not _collect_leaves(node, leaves):
            continue
        first = leaves[0].args
        shape, dim = list(first[1]), first[2]
        pieces = sorted(leaves, key=lambda n: n.args[3])
        end = 0
        ok = True
        for leaf in pieces:
            _, s, d, start, stop, step = leaf.args
            if list(s) != shape or d != dim or step != 1 or start != end:
                ok = False
                break
            end = min(stop, shape[dim])
        if not ok or end != shape[dim] or not _same_meta(node, leaves[0]):
            continue
        with g.inserting_before(node):
            cat = g.call_function(aten.cat.default, ([p.args[0] for p in pieces], dim))
        cat.meta = dict(node.meta)
        node.replace_all_uses_with(cat)
        changed = True
    return changed


def _collect_leaves(root: fx.Node, leaves: list[fx.Node]) -> bool:
    """The ``slice_backward`` leaves of the ``add`` tree under ``root`` (each inner add read
    only by its parent); False when a leaf is anything else. Iterative: a model's sum over
    hundreds of terms is a chain that deep."""
    stack = [(root, True)]
    while stack:
        node, is_root = stack.pop()
        if _is_op(node) and node.target is aten.slice_backward.default and len(node.args) == 6:
            leaves.append(node)
        elif _is_op(node) and node.target is aten.add.Tensor and not node.kwargs and len(node.args) == 2 \
                and (is_root or len(node.users) == 1) and all(isinstance(a, fx.Node) for a in node.args):
            stack.extend((a, False) for a in reversed(node.args))
        else:
            return False
    return True


def _never_return_constants(g: fx.Graph) -> None:
    """A caller may write into an output (the gradient is clipped in place): outputs that
    became constants or inputs are returned as copies."""
    out = next(n for n in g.nodes if n.op == "output")

    def copy(a):
        if isinstance(a, fx.Node) and a.op in ("get_attr", "placeholder"):
            with g.inserting_before(out):
                c = g.call_function(aten.clone.default, (a,))
            c.meta = dict(a.meta)
            return c
        return a

    out.args = fx.node.map_arg(out.args, copy)
