"""Feature tests: every supported construct of the model language compiles and runs."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

from inference import ModelLanguageError, compile_source
from inference.language import LimitExceeded, ModelRuntimeError, UnknownName


@pytest.fixture(autouse=True)
def _clean_param_store():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()


def run(source: str, *args, entry: str = "model", **kwargs):
    return compile_source(source, entry)(*args, **kwargs)


def trace(source: str, *args, entry: str = "model", **kwargs):
    return poutine.trace(compile_source(source, entry)).get_trace(*args, **kwargs)


def test_arithmetic_and_control_flow():
    src = """
def helper(a, b=2):
    return a * b + 1

def model(n, flag=True):
    total = 0
    for i in range(n):
        if i % 2 == 0:
            total += helper(i)
        elif i == 3:
            continue
        else:
            total -= 1
        if i > 6:
            break
    x, (y, z) = 1, (2, 3)
    w = [1, 2, 3][-1] + {"a": 4}["a"] + (5 if flag else 6)
    assert total > 0, "positive"
    return total, x + y + z, w, 7 // 2, 7 % 3, 2 ** 10, -x, not flag, 1 < 2 <= 2, 3 in [1, 3]
"""
    assert run(src, 10) == (25, 6, 12, 3, 1, 1024, -1, False, True, True)


def test_tensor_methods_and_torch_functions():
    src = """
def model():
    x = torch.arange(6.0).reshape(2, 3)
    a = x.sum(-1)
    b = x.t().matmul(torch.ones(2))
    c = (x @ torch.ones(3)).exp().log()
    d = torch.cat([x, x], dim=0).shape
    e = torch.stack([x, x]).mean(0).unsqueeze(0).expand(4, 2, 3).size()
    f = torch.where(x > 2, x, torch.zeros_like(x)).cumsum(-1)
    g = F.softplus(x).sigmoid().tanh()
    h = torch.linalg.cholesky(torch.eye(3) * 2.0)
    i = x.max(-1).values
    j = torch.einsum("ij,j->i", x, torch.ones(3))
    k = x[:, 0] + x[1, ...].sum() + x[None].squeeze(0)[0, 1:].sum()
    idx = torch.tensor([1, 0])
    return a, b, c, d, e, f, g, h, i, j, k, x[idx], x.T.shape[0], x.float().long().dtype
"""
    a, b, c, d, e, f, g, h, i, j, k, fancy, tdim, dtype = run(src)
    x = torch.arange(6.0).reshape(2, 3)
    assert torch.equal(a, x.sum(-1))
    assert torch.allclose(b, x.t() @ torch.ones(2))
    assert torch.allclose(c, x @ torch.ones(3))
    assert d == torch.Size([4, 3]) and e == torch.Size([4, 2, 3])
    assert torch.equal(f, torch.where(x > 2, x, torch.zeros_like(x)).cumsum(-1))
    assert torch.allclose(g, torch.nn.functional.softplus(x).sigmoid().tanh())
    assert torch.allclose(h, torch.linalg.cholesky(torch.eye(3) * 2.0))
    assert torch.equal(i, x.max(-1).values) and torch.equal(j, x.sum(-1))
    assert torch.equal(k, x[:, 0] + x[1].sum() + x[0, 1:].sum())
    assert torch.equal(fancy, x[torch.tensor([1, 0])])
    assert tdim == 3 and dtype == torch.int64


def test_sample_obs_mask_infer_and_deterministic():
    src = """
def model(y, mask):
    loc = pyro.sample("loc", dist.Normal(0.0, 1.0), infer={"is_auxiliary": False})
    with pyro.plate("n", y.shape[0]):
        pyro.sample("y", dist.Normal(loc, 1.0), obs=y, obs_mask=mask)
    pyro.deterministic("twice", 2 * loc)
    pyro.factor("penalty", -loc ** 2)
"""
    y = torch.tensor([0.5, 1.0, 2.0])
    mask = torch.tensor([True, False, True])
    tr = trace(src, y, mask)
    assert tr.nodes["y"]["infer"] == {} or "enumerate" not in tr.nodes["y"]["infer"]
    assert torch.equal(tr.nodes["twice"]["value"], 2 * tr.nodes["loc"]["value"])
    assert "penalty" in tr.nodes and "y_unobserved" in tr.nodes


def test_param_with_constraint_event_dim_and_lazy_init():
    src = """
def model():
    a = pyro.param("a", torch.ones(3), constraint=constraints.positive)
    b = pyro.param("b", 0.5)
    c = pyro.param("c", lambda: torch.zeros(2, 2) + 0.1, constraint=constraints.simplex, event_dim=1)
    return a, b, c
"""
    a, b, c = run(src)
    assert (
        torch.equal(a, torch.ones(3)) and float(b.detach()) == 0.5 and c.shape == (2, 2)
    )
    assert (
        pyro.get_param_store().get_state()["constraints"]["a"]
        == torch.distributions.constraints.positive
    )


def test_plate_variants_subsample_dim_and_iarange():
    src = """
def model(data):
    with pyro.plate("outer", 4, dim=-2):
        with pyro.iarange("inner", 3, dim=-1):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
    with pyro.plate("data", len(data), subsample_size=2) as idx:
        pyro.sample("obs", dist.Normal(0.0, 1.0), obs=data[idx])
    for i in pyro.plate("seq", 2):
        pyro.sample(f"s_{i}", dist.Normal(0.0, 1.0))
    return z.shape, idx.shape
"""
    program = compile_source(src)
    tr = poutine.trace(program).get_trace(torch.arange(10.0))
    assert tr.nodes["z"]["value"].shape == (4, 3)
    assert tr.nodes["obs"]["value"].shape == (2,)
    assert "s_0" in tr.nodes and "s_1" in tr.nodes


def test_markov_loop_and_context_manager_and_history():
    src = """
def model(T):
    x = torch.tensor(0.0)
    for t in pyro.markov(range(T), history=2):
        x = pyro.sample(f"x_{t}", dist.Normal(x, 1.0))
    with pyro.markov():
        pyro.sample("last", dist.Normal(x, 1.0))
"""
    tr = trace(src, 4)
    assert [n for n in tr.nodes if n.startswith("x_")] == ["x_0", "x_1", "x_2", "x_3"]


def test_config_enumerate_decorator_forms():
    for deco in (
        "@config_enumerate",
        '@config_enumerate(default="parallel")',
        "@pyro.infer.config_enumerate",
    ):
        src = f"""
{deco}
def model():
    pyro.sample("k", dist.Categorical(torch.ones(3) / 3))
"""
        tr = trace(src)
        assert tr.nodes["k"]["infer"].get("enumerate") == "parallel", deco


def test_poutine_handlers_in_source():
    src = """
def helper():
    return pyro.sample("hidden", dist.Normal(0.0, 1.0))

def model():
    with poutine.scale(scale=2.0):
        a = pyro.sample("a", dist.Normal(0.0, 1.0))
    with poutine.mask(mask=False):
        pyro.sample("b", dist.Normal(0.0, 1.0))
    poutine.block(helper)()
    return poutine.condition(helper, data={"hidden": torch.tensor(3.0)})()
"""
    program = compile_source(src)
    tr = poutine.trace(program).get_trace()
    assert tr.nodes["a"]["scale"] == 2.0
    assert tr.nodes["b"]["mask"] is False
    assert tr.nodes["hidden"]["value"].item() == 3.0  # the conditioned (unblocked) call


def test_nn_modules_gru_tuple_unpacking_and_pyro_module():
    src = """
import torch.nn as nn
net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2), nn.Softmax(dim=-1))
rnn = nn.GRU(3, 5, batch_first=True)
emb = nn.Embedding(4, 3)

def model(x, tokens):
    pyro.module("net", net)
    pyro.module("rnn", rnn)
    out, h = rnn(x.unsqueeze(0))
    probs = net(x + emb(tokens))
    pyro.sample("c", dist.Categorical(probs).to_event(1))
    return out.shape, h.shape
"""
    out_shape, h_shape = run(src, torch.randn(6, 3), torch.tensor([0, 1, 2, 3, 0, 1]))
    assert out_shape == (1, 6, 5) and h_shape == (1, 1, 5)
    assert any(k.startswith("net$$$") for k in pyro.get_param_store())


def test_distribution_methods_and_families():
    src = """
def model():
    d = dist.Normal(torch.zeros(3), 1.0)
    a = d.to_event(1).log_prob(torch.zeros(3))
    b = d.expand([2, 3]).independent(1).batch_shape
    c = d.mask(False).log_prob(torch.zeros(3))
    mix = dist.MixtureSameFamily(dist.Categorical(torch.ones(2)), dist.Normal(torch.zeros(2), 1.0))
    mm = dist.MaskedMixture(torch.tensor([True, False]), dist.Normal(0.0, 1.0), dist.Normal(5.0, 1.0))
    delta = dist.Delta(torch.tensor(1.0))
    imp = dist.ImproperUniform(constraints.real, (), ())
    mvn = dist.MultivariateNormal(torch.zeros(2), scale_tril=torch.eye(2))
    lkj = dist.LKJCholesky(3, 1.0)
    td = dist.TransformedDistribution(dist.Normal(0.0, 1.0), [dist.transforms.ExpTransform()])
    return a, b, c, mix.log_prob(torch.tensor(0.0)), mm.batch_shape, delta.mean, imp.support, mvn.event_shape, lkj.event_shape, td.support, d.mean, d.stddev
"""
    a, b, c, mix, mm, delta, imp, mvn, lkj, td, mean, sd = run(src)
    assert torch.allclose(
        a, dist.Normal(torch.zeros(3), 1.0).to_event(1).log_prob(torch.zeros(3))
    )
    assert b == (2,) and torch.equal(c, torch.zeros(3)) and mm == (2,)
    assert delta.item() == 1.0 and mvn == (2,) and lkj == (3, 3)
    assert torch.allclose(mix, dist.Normal(0.0, 1.0).log_prob(torch.tensor(0.0)))
    assert imp is torch.distributions.constraints.real
    assert td == torch.distributions.constraints.positive
    assert torch.equal(mean, torch.zeros(3)) and torch.equal(sd, torch.ones(3))


def test_helpers_closures_lambdas_and_comprehensions():
    src = """
SCALE = 2.0

def make_adder(k):
    def add(x):
        return x + k
    return add

def model(n):
    add3 = make_adder(3)
    sq = lambda v: v * v
    xs = [sq(i) for i in range(n) if i != 2]
    pairs = {i: add3(i) for i in range(2)}
    total = sum(x for x in xs)
    return xs, pairs, total, max(xs), min(3, 4), list(zip([1, 2], [3, 4])), list(enumerate("ab")), SCALE
"""
    assert run(src, 4) == (
        [0, 1, 9],
        {0: 3, 1: 4},
        10,
        9,
        3,
        [(1, 3), (2, 4)],
        [(0, "a"), (1, "b")],
        2.0,
    )


def test_print_is_captured_and_bounded():
    src = """
def model(n):
    for i in range(n):
        print("step", i, f"{i * 0.5:.2f}")
"""
    program = compile_source(src)
    program(3)
    assert program.print_log == ["step 0 0.00", "step 1 0.50", "step 2 1.00"]
    program(5000)
    assert len(program.print_log) <= 1001 and "dropped" in program.print_log[-1]


def test_imports_are_bindings_of_whitelisted_namespaces():
    src = """
import torch
import pyro
import pyro.distributions as dist
from pyro.infer import config_enumerate
import torch.nn as nn
from torch.distributions import constraints
import pyro.poutine as poutine
from torch.nn import functional as F
from pyro.distributions import Normal, Gamma
import math

def model():
    return Normal(0.0, 1.0).log_prob(torch.tensor(0.0)).item(), math.pi, constraints.positive
"""
    lp, pi, positive = run(src)
    assert abs(lp - dist.Normal(0.0, 1.0).log_prob(torch.tensor(0.0)).item()) < 1e-6
    assert pi == pytest.approx(3.141592653589793)
    assert positive is torch.distributions.constraints.positive


def test_guide_in_same_source_shares_modules_and_positional_calls():
    src = """
def model(x):
    pyro.sample("z", dist.Normal(0.0, 1.0))

def guide(x):
    loc = pyro.param("loc", torch.tensor(0.0))
    pyro.sample("z", dist.Normal(loc, 1.0))
"""
    model = compile_source(src)
    guide = compile_source(src, entry="guide")
    assert model.function("guide").parameters == [("x", False)]
    elbo = pyro.infer.Trace_ELBO()
    assert torch.isfinite(torch.tensor(elbo.loss(model, guide, torch.zeros(1))))


def test_parameters_defaults_and_keyword_only():
    program = compile_source("def model(a, b=1, *, c=2):\n    return a + b + c")
    assert program.parameters == [("a", False), ("b", True), ("c", True)]
    assert program(1) == 4 and program(1, 2, c=3) == 6 and program(a=1) == 4


def test_bad_call_arguments_are_data_binding_errors():
    program = compile_source("def model(a):\n    return a")
    with pytest.raises(ModelLanguageError) as err:
        program()
    assert err.value.kind == "data-binding"
    with pytest.raises(ModelLanguageError):
        program(1, b=2)


def test_runtime_errors_carry_user_line():
    src = """
def model():
    x = torch.ones(3)
    y = torch.ones(4)
    return x + y
"""
    with pytest.raises(ModelRuntimeError) as err:
        run(src)
    assert err.value.line == 5 and err.value.kind == "runtime-error"
    assert "x + y" in str(err.value)


def test_runtime_error_inside_helper_points_at_helper_line():
    src = """
def helper(x):
    return dist.Normal(x, -1.0).log_prob(x)

def model():
    return helper(torch.zeros(2))
"""
    with pytest.raises(ModelRuntimeError) as err:
        run(src)
    assert err.value.line == 3


def test_unknown_names_are_reported_at_compile_time():
    with pytest.raises(UnknownName) as err:
        compile_source("def model():\n    return pyro.sampel('x', dist.Normal(0, 1))")
    assert "pyro.sample" in str(err.value)
    with pytest.raises(UnknownName) as err:
        compile_source("def model():\n    return undefined_thing")
    assert err.value.line == 2 and err.value.col == 12


def test_entry_must_exist():
    with pytest.raises(UnknownName) as err:
        compile_source("def guide():\n    pass")
    assert "guide" in str(err.value)


def test_assert_failure_is_runtime_error():
    with pytest.raises(ModelRuntimeError) as err:
        run("def model(n):\n    assert n > 0, 'n must be positive'", 0)
    assert "n must be positive" in str(err.value) and err.value.line == 2


def test_loop_limit_names_limit_and_line():
    from inference.language import Limits

    program = compile_source(
        "def model():\n    for i in range(1000):\n        pass",
        limits=Limits(max_loop_iterations=100),
    )
    with pytest.raises(LimitExceeded) as err:
        program()
    assert "max_loop_iterations=100" in str(err.value) and err.value.line == 2


def test_error_to_dict():
    with pytest.raises(ModelLanguageError) as err:
        compile_source("def model():\n    while True:\n        pass")
    d = err.value.to_dict()
    assert d["kind"] == "forbidden-construct" and d["line"] == 2 and d["col"] == 5
    assert "while" in d["message"] and "for i in range" in d["message"]


def test_item_assignment_on_tensors_and_lists():
    src = """
def model():
    x = torch.zeros(3)
    x[1] = 2.0
    xs = [0, 0]
    xs[0] += 5
    xs.append(7)
    return x, xs
"""
    x, xs = run(src)
    assert x.tolist() == [0.0, 2.0, 0.0] and xs == [5, 0, 7]


def test_program_reusable_and_nested_program_calls():
    program = compile_source("def model(x):\n    return x * 2")
    assert [program(i) for i in range(3)] == [0, 2, 4]


def test_pyro_control_flow_exceptions_pass_through_untouched():
    from pyro.poutine.runtime import NonlocalExit

    program = compile_source(
        "def model():\n    a = pyro.sample('a', dist.Normal(0.0, 1.0))\n    with pyro.plate('p', 2):\n        pyro.sample('b', dist.Normal(a, 1.0))"
    )
    escaped = poutine.escape(program, escape_fn=lambda msg: msg["name"] == "b")
    with pytest.raises(NonlocalExit):
        escaped()
    assert pyro.poutine.runtime._PYRO_STACK == []


def test_sequential_enumeration_in_guide_uses_escape_machinery():
    src = """
def model():
    k = pyro.sample("k", dist.Categorical(torch.ones(3) / 3))
    pyro.sample("y", dist.Normal(k.float(), 1.0), obs=torch.tensor(1.0))

@config_enumerate(default="sequential")
def guide():
    probs = pyro.param("probs", torch.ones(3) / 3, constraint=constraints.simplex)
    pyro.sample("k", dist.Categorical(probs))
"""
    model = compile_source(src)
    guide = model.function("guide")
    loss = pyro.infer.TraceEnum_ELBO(max_plate_nesting=0).loss(model, guide)
    assert torch.isfinite(torch.tensor(loss))


def test_errors_inside_handlers_leave_pyro_stack_clean():
    src = """
def model():
    with pyro.plate("p", 3):
        for t in pyro.markov(range(3)):
            pyro.sample(f"x_{t}", dist.Normal(torch.zeros(2), 1.0))
            torch.ones(2) + torch.ones(5)
"""
    with pytest.raises(ModelRuntimeError):
        run(src)
    assert pyro.poutine.runtime._PYRO_STACK == []


def test_break_out_of_markov_loop_closes_its_context():
    src = """
def model():
    for t in pyro.markov(range(10)):
        pyro.sample(f"x_{t}", dist.Normal(0.0, 1.0))
        if t == 2:
            break
"""
    tr = trace(src)
    assert [n for n in tr.nodes if n.startswith("x_")] == ["x_0", "x_1", "x_2"]
    assert pyro.poutine.runtime._PYRO_STACK == []


def test_str_format_plain_fields_work():
    assert (
        run("def model(i):\n    return 'obs_{}_{name}'.format(i, name='a')", 3)
        == "obs_3_a"
    )


def test_errors_survive_pickling_for_process_pools():
    import pickle

    with pytest.raises(ModelLanguageError) as err:
        run("def model():\n    return torch.zeros(10**12)")
    copy = pickle.loads(pickle.dumps(err.value))
    assert type(copy) is LimitExceeded
    assert (copy.kind, copy.line, copy.col, str(copy)) == (
        "limit-exceeded",
        2,
        5,
        str(err.value),
    )
    assert copy.to_dict()["limit"] == "max_tensor_elements"


def test_device_follows_existing_tensors_only():
    out = run(
        "def model(x):\n    return torch.zeros(3, device=x.device)", torch.ones(1)
    )
    assert out.device == torch.device("cpu")


def test_limits_validate_their_fields():
    from inference.language import Limits

    with pytest.raises(ValueError):
        Limits(max_loop_iterations=0)


def test_uninitialised_memory_is_never_exposed():
    x, y, z = run(
        "def model():\n    x = torch.empty(1000)\n    return x, torch.empty_like(x), x.new_empty(1000)"
    )
    assert not x.any() and not y.any() and not z.any()


def test_the_checker_reports_the_first_violation_in_the_file():
    import pytest

    from inference.language import ForbiddenConstruct

    source = "def model():\n    while True:\n        pass\n    x = {1, 2}\n    del x\n"
    with pytest.raises(ForbiddenConstruct) as err:
        compile_source(source)
    assert err.value.line == 2 and "while" in str(err.value)
