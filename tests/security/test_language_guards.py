"""Regression tests for the model language's guards (issue 9, part 4 and part 3).

Each case is a bypass a hostile tenant could use against ``max_tensor_elements``, the
string/list/int bounds, the CPU budget, or Pyro's process-global handler stack. Every
one must be refused with a ``ModelLanguageError`` that carries the user's line (and
column) *before* anything large is allocated; a small ``Limits`` makes an allocation
past the limit cheap enough that a missing guard would show up as a pass-through
rather than as an out-of-memory crash of the test run.
"""

from __future__ import annotations

import ast
import pathlib

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.poutine.runtime import _DIM_ALLOCATOR, _PYRO_STACK

from inference import ModelLanguageError, compile_source
from inference.language import ForbiddenConstruct, LimitExceeded, Limits

SMALL = Limits(max_tensor_elements=1_000_000)


@pytest.fixture(autouse=True)
def _clean_pyro():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()
    assert _PYRO_STACK == []


def _refused(
    source: str, *args, kind: type = ModelLanguageError, limits=SMALL, line=None
):
    """Compile and call ``model``; it must raise ``kind`` with a 1-based position."""
    with pytest.raises(kind) as err:
        program = compile_source(source, limits=limits)
        program(*args)
    e = err.value
    assert e.line is not None and e.line >= 1, e
    assert e.col is not None and e.col >= 1, e
    if line is not None:
        assert e.line == line, e
    assert _PYRO_STACK == []
    return e


def _limit(source: str, *args, line=None, limit="max_tensor_elements", limits=SMALL):
    e = _refused(source, *args, kind=LimitExceeded, line=line, limits=limits)
    assert e.details.get("limit") == limit, e
    return e


# ----------------------------------------------------------------------------------
# max_tensor_elements: every tensor-producing operation is checked before allocating

TENSOR_BYPASSES = {
    "broadcast_to": "def model():\n    x = torch.zeros(1)\n    return torch.broadcast_to(x, (100000, 100000))",
    "tensor_broadcast_to": "def model():\n    return torch.zeros(1).broadcast_to((100000, 100000))",
    "dist_param_broadcast": "def model():\n    return dist.Normal(torch.zeros(100000).unsqueeze(-1), torch.ones(100000))",
    "dist_param_broadcast_sample": "def model():\n    d = dist.Normal(torch.zeros(2000).unsqueeze(-1), torch.ones(2000))\n    return d.sample()",
    "pyro_sample_sample_shape": "def model():\n    return pyro.sample('x', dist.Normal(0., 1.), sample_shape=(10**6, 10**6))",
    "dist_sample_shape": "def model():\n    return dist.Normal(0., 1.).sample((10**6, 10**6))",
    "dist_rsample_shape": "def model():\n    return dist.Normal(torch.zeros(10), 1.).rsample((10**6,))",
    "dist_called_with_shape": "def model():\n    d = dist.Normal(0., 1.)\n    return d((10**6, 10**6))",
    "dist_expand": "def model():\n    return dist.Normal(0., 1.).expand((10**6, 10**6))",
    "dist_expand_by": "def model():\n    return dist.Normal(0., 1.).expand_by((10**6, 10**6))",
    "dist_mask_broadcast": "def model():\n    d = dist.Normal(torch.zeros(2000), 1.)\n    return d.mask(torch.ones(2000, 1) > 0)",
    "dist_log_prob_broadcast": "def model():\n    d = dist.Normal(torch.zeros(2000), 1.)\n    return d.log_prob(torch.zeros(2000, 1))",
    "kl_broadcast": "def model():\n    p = dist.Normal(torch.zeros(2000), 1.)\n    q = dist.Normal(torch.zeros(2000, 1), 1.)\n    return dist.kl_divergence(p, q)",
    "lkj_dim": "def model():\n    return dist.LKJCholesky(100000, 1.)",
    "multinomial_total_count": "def model():\n    return dist.Multinomial(10**7, torch.ones(3)).sample()",
    "obs_broadcast": "def model():\n    with pyro.plate('n', 2000):\n        pyro.sample('y', dist.Normal(0., 1.), obs=torch.zeros(2000, 1))",
    "plate_batch": "def model():\n    with pyro.plate('a', 2000, dim=-1):\n        with pyro.plate('b', 2000, dim=-2):\n            return pyro.sample('x', dist.Normal(0., 1.))",
    "fancy_index_single": "def model():\n    x = torch.zeros(1, 1000)\n    idx = torch.zeros(2000, dtype=torch.long)\n    return x[idx]",
    "fancy_index_2d": "def model():\n    x = torch.zeros(1, 1000)\n    idx = torch.zeros(100, 100, dtype=torch.long)\n    return x[idx]",
    "fancy_index_none_expand": "def model():\n    x = torch.zeros(1000)\n    return x[None].expand(10000, -1)",
    "fancy_index_store": "def model():\n    x = torch.zeros(1, 1000)\n    x[torch.zeros(2000, dtype=torch.long)] = 1.\n    return x",
    "fancy_index_aug": "def model():\n    x = torch.zeros(1, 1000)\n    x[torch.zeros(2000, dtype=torch.long)] += 1.\n    return x",
    "fancy_index_list": "def model():\n    x = torch.zeros(1, 1000)\n    return x[[0] * 2000]",
    "fancy_index_bool_mask": "def model():\n    x = torch.zeros(2000, 1000)\n    m = torch.ones(2000) > 0\n    return x[m, None]",
    "index_select": "def model():\n    x = torch.zeros(1, 1000)\n    return torch.index_select(x, 0, torch.zeros(2000, dtype=torch.long))",
    "tensor_index_select": "def model():\n    x = torch.zeros(1, 1000)\n    return x.index_select(0, torch.zeros(2000, dtype=torch.long))",
    "expand_as": "def model():\n    d = dist.Normal(torch.zeros(2000).unsqueeze(-1), torch.ones(2000))\n    return torch.zeros(1).expand_as(d.loc)",
    "tensor_scalar_pair": "def model():\n    return torch.zeros(2000, 1) + torch.zeros(2000)",
    "tensor_compare_pair": "def model():\n    return torch.zeros(2000, 1) == torch.zeros(2000)",
    "torch_add": "def model():\n    return torch.add(torch.zeros(2000, 1), torch.zeros(2000))",
    "tensor_method_eq": "def model():\n    return torch.zeros(2000, 1).eq(torch.zeros(2000))",
    "tensor_method_clamp": "def model():\n    return torch.zeros(2000, 1).clamp(min=torch.zeros(2000))",
    "torch_where": "def model():\n    return torch.where(torch.zeros(2000, 1) > 0, torch.zeros(2000), 0.)",
    "cholesky_solve_batch": "def model():\n    return torch.cholesky_solve(torch.ones(2000, 1, 1, 1), torch.ones(1, 2000, 1, 1))",
    "linalg_solve_batch": "def model():\n    return torch.linalg.solve(torch.ones(2000, 1, 1, 1), torch.ones(1, 2000, 1, 1))",
    "mse_loss_broadcast": "def model():\n    return F.mse_loss(torch.zeros(2000, 1), torch.zeros(2000), reduction='none')",
    "repeat": "def model():\n    return torch.zeros(1000).repeat(1000, 1000)",
    "expand": "def model():\n    return torch.zeros(1000, 1).expand(1000, 100000)",
    "tile": "def model():\n    return torch.zeros(1000).tile((2000,))",
    "repeat_interleave": "def model():\n    return torch.zeros(1000).repeat_interleave(10000)",
    "cat_many": "def model():\n    x = torch.zeros(100000)\n    return torch.cat((x,) * 100)",
    "stack_many": "def model():\n    x = torch.zeros(100000)\n    return torch.stack([x] * 100)",
    "kron": "def model():\n    return torch.kron(torch.zeros(2000), torch.zeros(2000))",
    "outer": "def model():\n    return torch.outer(torch.zeros(2000), torch.zeros(2000))",
    "tensor_outer": "def model():\n    return torch.zeros(2000).outer(torch.zeros(2000))",
    "cartesian_prod": "def model():\n    x = torch.zeros(200)\n    return torch.cartesian_prod(x, x, x)",
    "meshgrid": "def model():\n    x = torch.zeros(2000)\n    return torch.meshgrid(x, x, indexing='ij')",
    "tril_indices": "def model():\n    return torch.tril_indices(2000, 2000)",
    "arange_tiny_step": "def model():\n    return torch.arange(0., 1., 1e-9)",
    "arange_denormal_step": "def model():\n    return torch.arange(0., 1., 5e-324)",
    "linspace": "def model():\n    return torch.linspace(0., 1., 10**7)",
    "einsum": "def model():\n    x = torch.zeros(2000)\n    return torch.einsum('i,j->ij', x, x)",
    "matmul": "def model():\n    return torch.zeros(2000, 1) @ torch.zeros(1, 2000)",
    "torch_matmul": "def model():\n    return torch.matmul(torch.zeros(2000, 1), torch.zeros(1, 2000))",
    "tensor_matmul": "def model():\n    return torch.zeros(2000, 1).matmul(torch.zeros(1, 2000))",
    "cdist": "def model():\n    return torch.cdist(torch.zeros(2000, 1), torch.zeros(2000, 1))",
    "block_diag": "def model():\n    return torch.block_diag(torch.zeros(2000, 1), torch.zeros(1, 2000))",
    "diag": "def model():\n    return torch.diag(torch.zeros(2000))",
    "diag_embed": "def model():\n    return torch.zeros(2000).diag_embed()",
    "eye": "def model():\n    return torch.eye(2000)",
    "zeros": "def model():\n    return torch.zeros(2000, 2000)",
    "full": "def model():\n    return torch.full((2000, 2000), 1.)",
    "new_zeros": "def model():\n    return torch.zeros(1).new_zeros(2000, 2000)",
    "tensor_from_nested": "def model():\n    return torch.tensor([[0.] * 2000] * 2000)",
    "one_hot": "def model():\n    return F.one_hot(torch.zeros(2000, dtype=torch.long), 2000)",
    "pad": "def model():\n    return F.pad(torch.zeros(1, 1), (0, 2000, 0, 2000))",
    "mvlgamma": "def model():\n    return torch.mvlgamma(torch.ones(1000) * 10**6, 10**4)",
    "nonzero": "def model():\n    return torch.ones(200000, 1, 1, 1, 1, 1).nonzero()",
    "nn_linear_params": "def model():\n    return nn.Linear(2000, 2000)",
    "nn_bilinear_params": "def model():\n    return nn.Bilinear(100, 100, 200)",
    "nn_layernorm_params": "def model():\n    return nn.LayerNorm((2000, 2000))",
    "nn_module_call": "lin = nn.Linear(1, 1000)\ndef model():\n    return lin(torch.zeros(2000, 1))",
    "sum_of_tensors": "def model():\n    return sum([torch.zeros(2000, 1), torch.zeros(2000)])",
    "broadcast_tensors": "def model():\n    a, b = torch.broadcast_tensors(torch.zeros(2000, 1), torch.zeros(2000))\n    return a.sum()",
    "sum_of_expanded_view": "def model():\n    return torch.zeros(1).expand(10**12).sum()",
    "transform_broadcast": "def model():\n    t = dist.transforms.AffineTransform(torch.zeros(2000, 1), 1.)\n    return t(torch.zeros(2000))",
    "tensor_method_max_pair": "def model():\n    return torch.zeros(2000, 1).max(torch.zeros(2000))",
    "lowrank_covariance": "def model():\n    d = dist.LowRankMultivariateNormal(torch.zeros(2000), torch.zeros(2000, 1), torch.ones(2000))\n    return d.covariance_matrix",
    "constraint_check_broadcast": "def model():\n    c = constraints.interval(torch.zeros(2000, 1), 1.)\n    return c.check(torch.zeros(2000))",
}


@pytest.mark.parametrize("name", sorted(TENSOR_BYPASSES))
def test_tensor_bypass_is_refused(name):
    e = _limit(TENSOR_BYPASSES[name])
    assert e.line >= 1


def test_the_default_limit_refuses_the_issue_examples():
    # the literal examples of the issue, under the default limits
    _limit(
        "def model():\n    d = dist.Normal(torch.zeros(100000).unsqueeze(-1), torch.ones(100000))\n    return d",
        limits=None,
        line=2,
    )
    _limit(
        "def model():\n    return dist.Normal(0., 1.).sample((10**6, 10**6))",
        limits=None,
        line=2,
    )


def test_error_carries_line_and_column_of_the_statement():
    src = "def model():\n    a = 1\n    b = torch.zeros(1).broadcast_to((10**5, 10**5))\n    return b"
    e = _limit(src, line=3)
    assert e.col == 5
    assert "line 3, col 5" in str(e)


def test_sequence_splitting_is_bounded():
    e = _refused(
        "def model():\n    return torch.zeros(200000).unbind()",
        kind=LimitExceeded,
        limits=None,
    )
    assert e.details["limit"] == "max_sequence_length"
    _refused(
        "def model():\n    return torch.zeros(200000).split(1)",
        kind=LimitExceeded,
        limits=None,
    )
    _refused(
        "def model():\n    return torch.chunk(torch.zeros(200000), 200000)",
        kind=LimitExceeded,
        limits=None,
    )


def test_vectorized_particles_count_against_the_limit():
    src = """
def model():
    pyro.sample("z", dist.Normal(torch.zeros(100), 1.).to_event(1))

def guide():
    loc = pyro.param("loc", torch.zeros(100))
    pyro.sample("z", dist.Normal(loc, 1.).to_event(1))
"""
    model = compile_source(src, "model", limits=SMALL)
    guide = compile_source(src, "guide", limits=SMALL)
    elbo = pyro.infer.Trace_ELBO(num_particles=10**6, vectorize_particles=True)
    with pytest.raises(LimitExceeded) as err:
        elbo.loss(model, guide)
    assert err.value.line == 7 and err.value.col == 5
    assert _PYRO_STACK == []
    # a modest particle count still works
    elbo = pyro.infer.Trace_ELBO(num_particles=8, vectorize_particles=True)
    assert torch.isfinite(torch.tensor(elbo.loss(model, guide)))


def test_guards_hold_under_jit_tracing():
    src = """
def model(x):
    n = x.shape[0]
    y = torch.zeros(1).expand(n * n, n)
    return y.sum()
"""
    program = compile_source(src, limits=SMALL)
    assert program(torch.zeros(10)) == 0  # small: allowed
    with pytest.raises(LimitExceeded):
        torch.jit.trace(program, (torch.zeros(200),), check_trace=False)
    src2 = """
def model(x):
    with pyro.plate("n", x.shape[0] * 100000):
        pass
    return x
"""
    with pytest.raises(LimitExceeded):
        torch.jit.trace(compile_source(src2, limits=SMALL), (torch.zeros(1000),))
    src3 = """
def model(x):
    return x[None].expand(x.shape[0], -1) + x.unsqueeze(-1)
"""
    with pytest.raises(LimitExceeded):
        torch.jit.trace(compile_source(src3, limits=SMALL), (torch.zeros(2000),))
    assert _PYRO_STACK == []


# ----------------------------------------------------------------------------------
# strings, lists, integers: refused before they are built

TEXT_BYPASSES = {
    "str_times_tensor": (
        "def model():\n    return 'a' * torch.tensor(10**9)",
        "max_string_chars",
    ),
    "tensor_times_str": (
        "def model():\n    return torch.tensor(10**9) * 'a'",
        "max_string_chars",
    ),
    "list_times_tensor": (
        "def model():\n    return [1] * torch.tensor(10**9)",
        "max_sequence_length",
    ),
    "list_times_int": ("def model():\n    return [1] * 10**9", "max_sequence_length"),
    "str_times_int": ("def model():\n    return 'a' * 10**9", "max_string_chars"),
    "aug_str_times": (
        "def model():\n    s = 'ab'\n    s *= 10**9\n    return s",
        "max_string_chars",
    ),
    "str_concat": (
        "def model():\n    s = 'a' * 100000\n    return s + s",
        "max_string_chars",
    ),
    "format_repeat": (
        "def model():\n    s = 'a' * 100000\n    return ('{0}' * 1000).format(s)",
        "max_string_chars",
    ),
    "str_of_big_list": (
        "def model():\n    s = 'a' * 100000\n    return str([s] * 1000)",
        "max_string_chars",
    ),
    "fstring_of_big_list": (
        "def model():\n    s = 'a' * 100000\n    xs = [s] * 1000\n    return f'{xs}'",
        "max_string_chars",
    ),
    "fstring_many_fields": (
        "def model():\n    s = 'a' * 100000\n    return f'{s}{s}{s}{s}{s}{s}'",
        "max_string_chars",
    ),
    "assert_message": (
        "def model():\n    s = 'a' * 100000\n    assert False, [s] * 10000",
        "max_string_chars",
    ),
    "print_big_list": (
        "def model():\n    s = 'a' * 100000\n    print([s] * 10000)",
        "max_string_chars",
    ),
    "str_of_big_tensor": (
        "def model():\n    return str(torch.zeros([2] * 20)) * 1",
        None,
    ),
    "list_slice_doubling": (
        "def model():\n    xs = [0] * 60000\n    xs[:0] = xs\n    return len(xs)",
        "max_sequence_length",
    ),
    "list_slice_range": (
        "def model():\n    xs = []\n    xs[:] = range(10**12)\n    return len(xs)",
        "max_loop_iterations",
    ),
    "list_iadd_range": (
        "def model():\n    xs = [0]\n    xs += range(10**12)\n    return len(xs)",
        "max_sequence_length",
    ),
    "list_iadd_tensor": (
        "def model():\n    xs = [0]\n    xs += torch.zeros(1000000)\n    return len(xs)",
        "max_sequence_length",
    ),
    "sorted_long_strings": (
        "def model():\n    a = 'a' * 99999 + 'b'\n    b = 'a' * 99999 + 'c'\n    return sorted([a, b] * 50000)[0][-1]",
        "max_string_chars",
    ),
    "max_long_strings": (
        "def model():\n    a = 'a' * 99999 + 'b'\n    b = 'a' * 99999 + 'c'\n    return max([a, b] * 50000)[-1]",
        "max_string_chars",
    ),
    "big_int_pow": ("def model():\n    return 10 ** 10 ** 6", "max_int_bits"),
    "big_int_mul": (
        "def model():\n    x = 2 ** 8000\n    return x * x * x",
        "max_int_bits",
    ),
    "big_int_shift": ("def model():\n    return 1 << 10**9", "max_int_bits"),
    "big_int_sum": (
        "def model():\n    x = 2 ** 8191\n    return sum([x, x])",
        "max_int_bits",
    ),
}


@pytest.mark.parametrize("name", sorted(TEXT_BYPASSES))
def test_text_and_int_bypass_is_refused(name):
    source, limit = TEXT_BYPASSES[name]
    if limit is None:  # bounded instead of refused
        program = compile_source(source)
        assert len(program()) < 1000
        return
    e = _refused(source, kind=LimitExceeded, limits=None)
    assert e.details["limit"] == limit


@pytest.mark.parametrize(
    "source",
    [
        'def model():\n    fmt = "%0999999999d"\n    return fmt % 1',
        'def model():\n    fmt = "%0999999999d"\n    return fmt % torch.tensor(1)',
        'def model():\n    fmt = "%s"\n    fmt %= 1\n    return fmt',
        'def model(x=1):\n    return f"{x:>999999999}"',
        'def model(x=1):\n    return "{:>999999999}".format(x)',
        'def model(x=1):\n    return ("{:>" + "9" * 9 + "}").format(x)',
        'def model(x=1):\n    return ("{:" + "{}" + "}").format(x, 5)',
    ],
)
def test_formatting_tricks_are_refused(source):
    e = _refused(source, limits=None)
    assert isinstance(e, (ForbiddenConstruct, LimitExceeded))


# ----------------------------------------------------------------------------------
# C-level CPU work: refused, or computed arithmetically


def test_range_membership_is_arithmetic():
    program = compile_source(
        """
def model():
    r = range(10**18)
    return [5.0 in r, 5.5 in r, torch.tensor(7) in r, 'a' in r, 10**18 in r,
            float(10**17) in r, (10**18 + 1) not in r, -1.0 in r]
"""
    )
    assert program() == [True, False, True, False, False, True, True, False]


@pytest.mark.parametrize(
    "source",
    [
        "def model():\n    return sum(range(10**12))",
        "def model():\n    return max(range(10**12))",
        "def model():\n    return min(range(10**12))",
        "def model():\n    return sorted(range(10**12))",
        "def model():\n    return list(range(10**12))",
        "def model():\n    return tuple(range(10**12))",
        "def model():\n    return any(x < 0 for x in range(10**12))",
        "def model():\n    return all(range(1, 10**12))",
        "def model():\n    return dict(zip(range(10**12), range(10**12)))",
        "def model():\n    return torch.tensor(range(10**12))",
        "def model():\n    return torch.Size(range(10**12))",
        "def model():\n    return 5.5 in reversed(range(10**18))",
        "def model():\n    return -1 in zip(range(10**18))",
        "def model():\n    return -1 in enumerate(range(10**18))",
    ],
)
def test_consuming_huge_ranges_is_bounded(source):
    _refused(source, kind=LimitExceeded, limits=None)


_NESTED_LISTS = "a = [0] * 99999\na2 = [0] * 99999\nb = [a] * 99999\nc = [a2] * 99999\n"


@pytest.mark.parametrize("expr", ["b == c", "b != c", "b < c", "{0: b} == {0: c}", "a2 in b", "b.count(a2)",
                                  "b.index(a2)", "max(b)", "min(b)", "sorted(b)"])
def test_comparing_huge_nested_containers_is_refused(expr):
    # Each would make ~10**10 element comparisons in one C call (found by an outside attack).
    e = _refused(_NESTED_LISTS + f"def model():\n    return {expr}\n", kind=LimitExceeded, line=6)
    assert "element comparisons" in e.message


def test_comparing_small_nested_containers_still_works():
    program = compile_source("def model():\n    return [[1, 2], [3]] == [[1, 2], [3]] and [1] in [[1], [2]]\n")
    assert program() is True


def test_list_extend_by_iterator_is_refused():
    e = _refused(
        "def model():\n    xs = []\n    xs += zip(range(10**12))\n    return xs",
        kind=ForbiddenConstruct,
        limits=None,
        line=3,
    )
    assert "list(...)" in str(e)


def test_module_level_dict_cannot_grow_without_bound():
    src = """
seen = {}

def model(start):
    for i in range(50000):
        seen[start + i] = i
    return len(seen)
"""
    program = compile_source(src)
    assert program(0) == 50000
    assert program(50000) == 100000
    with pytest.raises(LimitExceeded) as err:
        program(100000)
    assert err.value.line == 6 and err.value.details["limit"] == "max_sequence_length"


def test_len_of_huge_range_is_constant_time():
    assert compile_source("def model():\n    return len(range(10**18))")() == 10**18


# ----------------------------------------------------------------------------------
# Pyro's global handler stack


def _independent_model_trace():
    """A second, independent Pyro model: it must see a clean Pyro state."""
    assert _PYRO_STACK == []

    def other(y):
        with pyro.plate("data", 3):
            return pyro.sample("obs", dist.Normal(0.0, 1.0), obs=y)

    y = torch.tensor([1.0, 2.0, 3.0])
    tr = poutine.trace(other).get_trace(y)
    assert torch.equal(tr.nodes["obs"]["value"], y)
    assert tr.nodes["obs"]["is_observed"]
    assert [f.name for f in tr.nodes["obs"]["cond_indep_stack"]] == ["data"]
    assert _PYRO_STACK == []
    assert _DIM_ALLOCATOR._stack == []


def test_callbacks_are_refused_with_the_list_alternative():
    for kw in ("hide_fn", "expose_fn"):
        src = f"""
def spy(msg):
    return True

def model():
    with poutine.block({kw}=spy):
        pyro.sample("x", dist.Normal(0., 1.))
"""
        e = _refused(src, kind=ForbiddenConstruct, limits=None, line=6)
        assert "hide=" in str(e) or "expose=" in str(e)
    e = _refused(
        "def spy(msg):\n    return {}\ndef model():\n    f = poutine.infer_config(model, spy)\n",
        kind=ForbiddenConstruct,
        limits=None,
    )
    _independent_model_trace()


def test_lists_still_work_for_block():
    src = """
def inner():
    pyro.sample("a", dist.Normal(0., 1.))
    pyro.sample("b", dist.Normal(0., 1.))

def model():
    poutine.block(inner, hide=["a"])()
    with poutine.block(expose_types=["sample"]):
        pyro.sample("c", dist.Normal(0., 1.))
    with poutine.infer_config(config={"enumerate": "parallel"}):
        pyro.sample("d", dist.Bernoulli(0.5))
"""
    tr = poutine.trace(compile_source(src)).get_trace()
    assert "a" not in tr.nodes and "b" in tr.nodes and "c" in tr.nodes
    assert tr.nodes["d"]["infer"]["enumerate"] == "parallel"


def test_poisoned_program_leaves_no_handler_behind():
    # the attack: a sequential plate iterator kept suspended in a module-level list
    # (inside zip, so the `for` statement cannot close it), and a markov iterator too
    src = """
keep = []

def model():
    it = zip(pyro.plate("poison", 5), range(5))
    for i, j in it:
        break
    keep.append(it)
    m = pyro.markov(range(10))
    for t in zip(m, range(1)):
        pass
    keep.append(m)
    return len(keep)
"""
    program = compile_source(src)
    assert program() == 2
    _independent_model_trace()
    assert program() == 4  # the second run does not resume the first one's iterators
    _independent_model_trace()


def test_suspended_iterator_inside_a_handler_is_unwound():
    src = """
keep = []

def model():
    with poutine.block(hide=["x"]):
        m = pyro.markov(range(10))
        for t in zip(m, range(1)):
            pass
        keep.append(m)
"""
    # Pyro itself refuses to exit the block while the markov iterator sits above it
    with pytest.raises(ModelLanguageError) as err:
        compile_source(src)()
    assert err.value.line == 5
    _independent_model_trace()


def test_poisoned_program_that_raises_leaves_no_handler_behind():
    src = """
keep = []

def model():
    keep.append(zip(pyro.plate("poison", 5), range(5)))
    for i, j in keep[-1]:
        break
    assert False, "boom"
"""
    with pytest.raises(ModelLanguageError):
        compile_source(src)()
    _independent_model_trace()


def test_stored_iterators_and_handlers_do_not_survive_a_run():
    src = """
keep = []

def model(first=True):
    if first:
        keep.append(zip(pyro.plate("poison", 5), range(5)))
        for i, j in keep[0]:
            break
        keep.append(pyro.plate("stored", 3))
        keep.append(poutine.scale(scale=0.5))
        return 0
    rest = [i for i, j in keep[0]]
    return len(rest)
"""
    program = compile_source(src)
    assert program() == 0
    assert program(first=False) == 0  # closed at the end of the first run
    _independent_model_trace()
    src_enter = src.replace(
        "    rest = [i for i, j in keep[0]]\n    return len(rest)",
        "    with keep[1]:\n        pass",
    )
    program = compile_source(src_enter)
    program()
    e = _refused_call(program, first=False)
    assert "earlier run" in str(e)
    _independent_model_trace()


def _refused_call(program, **kwargs):
    with pytest.raises(ForbiddenConstruct) as err:
        program(**kwargs)
    assert err.value.line is not None
    assert _PYRO_STACK == []
    return err.value


@pytest.mark.parametrize(
    "source",
    [
        "from pyro import plate\nit = plate('p', 3)\ndef model():\n    pass",
        "from pyro import sample\nx = sample('x', dist.Normal(0., 1.))\ndef model():\n    pass",
        "def f():\n    return pyro.sample('x', dist.Normal(0., 1.))\nx = f()\ndef model():\n    pass",
        "def f():\n    return pyro.param('a', torch.zeros(1))\nx = f()\ndef model():\n    pass",
        "def f():\n    for i in pyro.markov(range(3)):\n        pass\nf()\ndef model():\n    pass",
        "p = pyro.plate\nx = [p('x', 3)]\ndef model():\n    pass",
        "def f():\n    with poutine.scale(scale=2.0):\n        pass\nf()\ndef model():\n    pass",
        "def g():\n    pass\nh = poutine.block(g, hide=['x'])\nh()\ndef model():\n    pass",
    ],
)
def test_pyro_primitives_are_refused_outside_a_run(source):
    with pytest.raises(ForbiddenConstruct) as err:
        compile_source(source)
    assert err.value.line is not None
    assert _PYRO_STACK == []
    _independent_model_trace()


def test_module_level_decorators_still_work():
    src = """
@poutine.scale(scale=0.5)
def model():
    pyro.sample("x", dist.Normal(0., 1.), obs=torch.tensor(0.))

@config_enumerate
def model2():
    pyro.sample("z", dist.Bernoulli(0.5))
"""
    tr = poutine.trace(compile_source(src)).get_trace()
    assert tr.nodes["x"]["scale"] == 0.5
    tr = poutine.trace(compile_source(src, "model2")).get_trace()
    assert tr.nodes["z"]["infer"]["enumerate"] == "parallel"
    _independent_model_trace()


def test_sample_needs_a_distribution():
    e = _refused(
        "def f():\n    return 1.\ndef model():\n    return pyro.sample('x', f)",
        kind=ForbiddenConstruct,
        limits=None,
    )
    assert "distribution" in str(e)


# ----------------------------------------------------------------------------------
# layout of the package


def test_policy_and_checker_import_no_torch():
    root = pathlib.Path(__file__).resolve().parents[2] / "inference" / "language"
    for name in ("policy.py", "checker.py", "whitelists.py", "limits.py"):
        tree = ast.parse((root / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mods = [node.module or ""]
            else:
                continue
            for m in mods:
                assert not m.startswith(("torch", "pyro", "numpy")), (name, m)


def test_guards_module_holds_the_size_checks():
    root = pathlib.Path(__file__).resolve().parents[2] / "inference" / "language"
    for name in ("compiler.py", "namespaces.py", "attributes.py", "runtime.py"):
        text = (root / name).read_text()
        assert "def check_elements" not in text and "def check_combined" not in text


def test_legitimate_large_shapes_are_not_refused():
    # close to the limit but within it: event dims are not plate dims, index results
    # that are small, big operands whose product is large but result small
    src = """
def model(y):
    with pyro.plate("n", y.shape[0]):
        pyro.sample("y", dist.Normal(torch.zeros(1), 1.).to_event(1), obs=y)
    x = torch.zeros(500000)
    idx = torch.zeros(3, dtype=torch.long)
    a = x[idx]
    b = x.index_select(0, idx)
    c = torch.searchsorted(torch.arange(500000.), torch.zeros(10))
    d = torch.zeros(1000, 1) + torch.zeros(1000)
    e = dist.Normal(torch.zeros(1000, 1), torch.ones(1000)).sample()
    return a.shape[0] + b.shape[0] + c.shape[0] + d.numel() + e.numel()
"""
    program = compile_source(src, limits=SMALL)
    assert program(torch.zeros(20000, 1)) == 3 + 3 + 10 + 1_000_000 + 1_000_000


# ----------------------------------------------------------------------------------
# issue 11: classes, unpacking, %-formatting, nested data, Vindex, global


CLASS_ESCAPES = {
    # dunder access through instances and classes
    "instance_dunder_class": "class A(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
    "def model():\n    return A().__class__",
    "instance_dunder_dict": "class A:\n    pass\ndef model():\n    return A().__dict__",
    "self_dunder_store": "class A:\n    def __init__(self):\n        self.__class__ = 1\ndef model():\n    A()",
    "private_store": "class A:\n    def __init__(self):\n        self._parameters = {}\ndef model():\n    A()",
    "dunder_method": "class A:\n    def __getattribute__(self, n):\n        return 1\ndef model():\n    pass",
    "init_subclass": "class A:\n    def __init_subclass__(cls):\n        pass\ndef model():\n    pass",
    "metaclass_keyword": "class A(metaclass=type):\n    pass\ndef model():\n    pass",
    "class_decorator": "@poutine.block\nclass A:\n    pass\ndef model():\n    pass",
    "method_decorator": "class A:\n    @property\n    def x(self):\n        return 1\ndef model():\n    pass",
    "nested_class": "def model():\n    class A:\n        pass",
    "object_base": "class A(object):\n    pass\ndef model():\n    pass",
    "type_base": "class A(type):\n    pass\ndef model():\n    pass",
    "tensor_base": "class A(torch.Tensor):\n    pass\ndef model():\n    pass",
    "distribution_base": "class A(dist.Normal):\n    pass\ndef model():\n    pass",
    "function_base": "def f():\n    pass\nclass A(f):\n    pass\ndef model():\n    pass",
    "messenger_base": "class A(poutine.block):\n    pass\ndef model():\n    pass",
    "class_body_statement": "class A:\n    for i in range(3):\n        pass\ndef model():\n    pass",
    # module internals through instances
    "module_state_dict": "class A(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
    "def model():\n    return A().state_dict()",
    "module_hook": "class A(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
    "def model():\n    return A().register_forward_hook",
    "module_apply": "class A(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
    "def model():\n    return A().apply",
    "replace_builtin_method": "class A(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
    "        self.named_parameters = 1\ndef model():\n    A()",
    "layer_internals": "net = nn.Linear(2, 2)\ndef model():\n    return net.register_forward_pre_hook",
    "layer_attribute_store": "net = nn.Linear(2, 2)\ndef model():\n    net.forward = 1",
    "plain_object_store": "def model():\n    x = torch.ones(2)\n    x.foo = 1",
    "namespace_store": "def model():\n    torch.ones = 1",
    # super() only as super().__init__ in a method
    "super_outside_method": "def model():\n    super().__init__()",
    "super_other_attr": "class A(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
    "    def f(self):\n        return super().forward\ndef model():\n    A().f()",
    "super_wrong_class": "class A(nn.Module):\n    def __init__(self):\n        super(nn.Module, self).__init__()\n"
    "def model():\n    A()",
    "module_without_init": "class A(nn.Module):\n    def __init__(self):\n        self.x = 1\ndef model():\n    A()",
    # unpacking and formatting
    "dunder_kwargs": "def f(a=1):\n    return a\ndef model():\n    return f(**{'__class__': 1})",
    "star_in_target": "def model():\n    a, *b = [1, 2, 3]",
    "star_in_list": "def model():\n    return [*range(3)]",
    "percent_huge_width": "def model():\n    return '%999999999d' % 1",
    "percent_star": "def model():\n    return '%*d' % (10**9, 1)",
    "global_at_module_level": "global x\ndef model():\n    pass",
    "reparam_callable_config": "def model():\n    with poutine.reparam(config=lambda msg: None):\n        pass",
    "contrib_import": "from pyro.contrib.gp.models import GPRegression\ndef model():\n    pass",
    "star_import_os": "from os import *\ndef model():\n    pass",
}


@pytest.mark.parametrize("name", sorted(CLASS_ESCAPES))
def test_class_and_new_syntax_escapes_are_refused(name):
    _refused(CLASS_ESCAPES[name])


def test_instance_attribute_flood_is_bounded():
    source = (
        "class A:\n    pass\n"
        "def model():\n    a = A()\n    d = {}\n"
        "    for i in range(5000):\n        d[f'k{i}'] = i\n    a.x = d\n"
        "    for i in range(2000):\n        b = A()\n    return b\n"
    )
    compile_source(source, limits=SMALL)()  # many instances and a big dict value are fine
    flood = "class A(nn.Module):\n    def __init__(self, n):\n        super().__init__()\n" \
            "        for i in range(n):\n            self.register_buffer(f'b{i}', torch.zeros(1))\n" \
            "def model():\n    A(5000)"
    e = _refused(flood)
    assert e.details.get("limit") == "max_instance_attributes"


def test_layer_sizes_in_class_init_count_against_the_limit():
    _limit(
        "class A(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(100000, 100000)\ndef model():\n    A()"
    )
    _limit(
        "from pyro.nn import PyroModule\nclass A(PyroModule[nn.Linear]):\n    def __init__(self):\n"
        "        super().__init__(100000, 100000)\ndef model():\n    A()"
    )


def test_recursion_through_methods_is_bounded():
    source = (
        "class A:\n    def f(self, n):\n        return self.f(n + 1)\n"
        "def model():\n    return A().f(0)"
    )
    e = _refused(source, kind=LimitExceeded, limits=SMALL)
    assert e.details.get("limit") == "max_recursion_depth"


def test_unpacking_huge_iterables_is_bounded():
    _refused("def model():\n    return max(*range(10**9))", kind=LimitExceeded)
    _refused("def model():\n    return torch.zeros(*[10**5, 10**5])", kind=LimitExceeded)


def test_vindex_result_size_is_checked_before_allocating():
    _limit(
        "def model():\n    p = torch.ones(100, 100, 100)\n    i = torch.zeros(1000, 1, 1, dtype=torch.long)\n"
        "    j = torch.zeros(1, 100, 1, dtype=torch.long)\n    return Vindex(p)[i, j, :]\n"
        "from pyro.ops.indexing import Vindex"
    )


def test_nested_data_is_read_only_and_bounded():
    from inference.language import DataBindingError, bind_data

    program = compile_source("def model(cfg):\n    cfg['a'] = 2\n    return cfg.a")
    bound = bind_data(program, {"cfg": {"a": 1, "b": {"c": "text", "d": None}}})
    assert bound.kwargs["cfg"]["b"]["c"] == "text"
    with pytest.raises(ModelLanguageError):
        program(**bound.kwargs)
    deep: dict = {}
    node = deep
    for _ in range(10):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(DataBindingError):
        bind_data(program, {"cfg": deep})
    with pytest.raises(DataBindingError):
        bind_data(program, {"cfg": {f"k{i}": i for i in range(5000)}})
    with pytest.raises(DataBindingError):
        bind_data(program, {"cfg": {"__class__": 1}})
    with pytest.raises(ModelLanguageError):
        compile_source("def model(cfg):\n    return cfg.__class__")


def test_global_cannot_rebind_namespaces_for_compiled_lookups():
    program = compile_source(
        "def model():\n    global torch\n    torch = 3\n    return torch\n"
    )
    assert program() == 3
    # the rebinding stays in the program's own globals: the real torch is untouched
    assert torch.ones(1).item() == 1.0


def test_pyro_module_attributes_sample_only_inside_a_run():
    head = (
        "from pyro.nn import PyroModule, PyroSample, PyroParam\n"
        "class M(PyroModule):\n    def __init__(self):\n        super().__init__()\n"
        "        self.loc = PyroSample(dist.Normal(0.0, 1.0))\n"
        "        self.w = PyroParam(torch.ones(2))\n"
        "    def forward(self):\n        return self.loc\n"
        "m = M()\n"
        "lin = PyroModule[nn.Linear](2, 1)\n"
        "lin.weight = PyroSample(dist.Normal(0.0, 1.0).expand([1, 2]).to_event(2))\n"
    )
    for top in ("x = m.loc", "x = m.w", "x = m()", "x = lin(torch.ones(2))", "x = lin.weight"):
        with pytest.raises(ForbiddenConstruct, match="only be used while the model or guide runs"):
            compile_source(head + top + "\ndef model():\n    pass\n")
    assert len(pyro.get_param_store()) == 0
    program = compile_source(head + "def model():\n    return m(), m.w, lin(torch.ones(2))\n")
    loc, w, out = program()
    assert w.shape == (2,) and out.shape == (1,)
