"""graph_passes.simplify: fewer ops, the same values — including graphs with in-place ops
(plain and through views), constant-only arithmetic and sliced gradients."""

import torch
from torch.fx.experimental.proxy_tensor import make_fx

from inference.engine.graph_passes import simplify

DATA = torch.linspace(0.5, 2.0, 6)


def _count(gm):
    return sum(1 for n in gm.graph.nodes if n.op == "call_function")


def _check(fn, *inputs, fewer=True):
    recorded = make_fx(fn)(*inputs)
    before = _count(recorded)
    small = simplify(make_fx(fn)(*inputs), *inputs)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        fresh = [torch.randn(x.shape, generator=gen) for x in inputs]
        expected, got = fn(*fresh), small(*fresh)
        expected = expected if isinstance(expected, tuple) else (expected,)
        got = got if isinstance(got, (tuple, list)) else (got,)
        for e, g in zip(expected, got):
            assert torch.allclose(e, g, atol=1e-6), (e, g)
    if fewer:
        assert _count(small) < before, small.code
    return small


def test_constants_identities_and_duplicates_are_folded():
    def fn(x):
        scale = DATA.clone() ** 2  # data-only arithmetic: folded
        y = (x * 1 + 0.0).detach()  # identities
        a, b = torch.exp(y), torch.exp(y)  # the same op twice
        return (a + b) / scale + torch.zeros_like(x)

    small = _check(fn, torch.randn(6))
    targets = [str(n.target) for n in small.graph.nodes if n.op == "call_function"]
    assert targets.count("aten.exp.default") == 1 and "aten.pow.Tensor_Scalar" not in targets


def test_gradient_of_a_sliced_tensor_is_one_cat():
    def fn(phi):
        with torch.enable_grad():
            phi = phi.detach().requires_grad_(True)
            parts = [phi[0:1].exp(), phi[1:4].sin(), phi[4:6] ** 2]
            loss = sum(p.sum() for p in parts)
            (grad,) = torch.autograd.grad(loss, phi)
        return loss.detach(), grad

    small = _check(fn, torch.randn(6))
    targets = [str(n.target) for n in small.graph.nodes if n.op == "call_function"]
    assert "aten.slice_backward.default" not in targets and "aten.cat.default" in targets


def test_in_place_op_on_an_intermediate_is_made_out_of_place():
    def fn(x):
        y = x * 2.0
        y.masked_fill_(x < 0, -1.0)
        return y + 1.0, y.sum()

    small = _check(fn, torch.randn(6), fewer=False)
    assert not any(n.op == "call_function" and n.target._schema.is_mutable for n in small.graph.nodes)


def test_in_place_op_through_a_view_keeps_its_effect():
    def fn(x):
        y = x * 2.0
        head = y[0:2]
        head.mul_(3.0)  # writes into y
        return y.sum() + head.sum()

    _check(fn, torch.randn(6), fewer=False)


def test_an_output_that_became_a_constant_is_returned_as_a_copy():
    def fn(x):
        return x.sum(), torch.ones(3) * 2.0

    small = simplify(make_fx(fn)(torch.randn(2)), torch.randn(2))
    _, out = small(torch.randn(2))
    out.mul_(0.0)  # a caller writing into an output (the gradient is clipped in place)
    _, again = small(torch.randn(2))
    assert torch.equal(again, torch.full((3,), 2.0))


def test_a_clone_that_makes_a_tensor_contiguous_is_kept():
    def fn(x):
        return x.t().contiguous().view(-1) * 2.0

    _check(fn, torch.randn(3, 4), fewer=False)


def test_constant_chains_and_negations_become_one_op():
    scale = torch.linspace(1.0, 2.0, 6)

    def fn(x):
        y = -(x - 1.5) ** 2 / (2 * scale**2) - scale.log() - 0.9189  # a Normal's log-density
        z = (scale * (x * 2.0)) * 3.0 + 1.0 - 0.5  # chains with constants on either side
        return y.sum(), z, -x / scale

    small = _check(fn, torch.randn(6))
    targets = [str(n.target) for n in small.graph.nodes if n.op == "call_function"]
    assert "aten.neg.default" not in targets and targets.count("aten.mul.Tensor") + targets.count(
        "aten.mul.Scalar") == 1, small.code


def test_broadcast_gradients_and_negated_products_lose_their_extra_ops():
    weights = torch.linspace(-1.0, 1.0, 12).reshape(4, 3)

    def fn(phi):
        with torch.enable_grad():
            phi = phi.detach().requires_grad_(True)
            loss = -((phi[:, None] * weights) ** 2 * 0.5).sum()  # the gradient sums a broadcast
            (grad,) = torch.autograd.grad(loss, phi)
        return loss.detach(), -(grad * 3.0)

    small = _check(fn, torch.randn(4))
    targets = [str(n.target) for n in small.graph.nodes if n.op == "call_function"]
    assert targets.count("aten.neg.default") == 1  # the loss's; the gradient's folded into its factor
    assert not {"aten.view.default", "aten.squeeze.dim"} & set(targets), small.code


def test_value_dependent_shapes_are_found_only_on_varying_values():
    from inference.engine.graph_passes import value_dependent_shapes

    mask = torch.tensor([True, False, True, False, True, False])

    def drawn_mask(x):
        return x[x > 0].sum() + x.nonzero().float().sum()

    def data_mask(x):
        y = x * 2.0
        y[mask] = 0.0  # a boolean index of constant data: its shape never changes
        return y[mask].sum() + y.sum()

    def drawn_mask_write(x):
        y = x * 2.0
        y[x > 0] = 1.0
        return y.sum()

    assert value_dependent_shapes(make_fx(drawn_mask)(torch.randn(6)))
    assert value_dependent_shapes(make_fx(drawn_mask_write)(torch.randn(6)))
    assert value_dependent_shapes(make_fx(data_mask)(torch.randn(6))) == []
