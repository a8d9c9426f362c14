"""Attacks on the class support of the model language (outside-attacker review).

Each test is the minimal reproduction of a finding, kept as a regression test."""

from __future__ import annotations

import pytest

from inference import ModelLanguageError, compile_source
from inference.language.errors import ForbiddenConstruct

TAIL = "\ndef model():\n    return 1\n"


def _fib_chain(n: int) -> str:
    # C_i(C_{i-1}, C_{i-2}): a valid C3 hierarchy whose base graph, walked recursively
    # without memoisation, has Fibonacci(n) paths
    lines = ["class C0:\n    pass\n", "class C1(C0):\n    pass\n"]
    lines += [f"class C{i}(C{i - 1}, C{i - 2}):\n    pass\n" for i in range(2, n)]
    return "".join(lines)


def test_diamond_chain_method_lookup_is_linear():
    # before: linearized() recursed over every path of the base graph (exponential) on
    # each attribute lookup and instance creation, outside the step budget (C31: ~20 s;
    # C60 would run for years, bounded only by the sandbox's CPU rlimit)
    # (C45 alone has ~1e9 paths: the old walk never finished)
    src = _fib_chain(48) + "class D(C47):\n    def f(self):\n        return 7\nd = D()\nx = d.f()\n" + TAIL
    program = compile_source(src)
    assert program() == 1
    unit_classes = program._unit.classes
    order = [c.name for c in unit_classes["D"].linearized()]
    # the Python MRO: D, C47, C46, ..., C0 (each class once)
    assert order == ["D"] + [f"C{i}" for i in range(47, -1, -1)]


def test_class_hierarchy_depth_and_width_are_bounded():
    # before: a 3,300-deep chain of `class Ci(Ci-1):pass` (100 kB) spent 13 s of CPU in
    # class creation (quadratic in the depth) at compile time, outside every budget
    from inference.language import LimitExceeded

    chain = "class C0(nn.Module):pass\n" + "".join(f"class C{i}(C{i - 1}):pass\n" for i in range(1, 3300))
    with pytest.raises(LimitExceeded, match="inherit from more than"):
        compile_source(chain + TAIL)
    many = "".join(f"class B{i}:pass\n" for i in range(40))
    many += "class X(" + ", ".join(f"B{i}" for i in range(40)) + "):pass\n"
    with pytest.raises(LimitExceeded, match="bases"):
        compile_source(many + TAIL)
    ok = "class C0(nn.Module):pass\n" + "".join(f"class C{i}(C{i - 1}):pass\n" for i in range(1, 60))
    assert compile_source(ok + "c = C59()\n" + TAIL)() == 1


def test_method_resolution_follows_python_mro():
    src = """
class A:
    def who(self):
        return "A"
class B(A):
    pass
class C(A):
    def who(self):
        return "C"
class D(B, C):
    pass
d = D()
def model():
    return d.who()
"""
    # Python's MRO of D is D, B, C, A: C.who wins (a depth-first walk would pick A.who)
    assert compile_source(src)() == "C"


@pytest.mark.parametrize(
    ("layer", "args", "attr", "value"),
    [
        ("Conv1d", "1, 1, 1", "padding", "[10**8]"),
        ("GRU", "1, 1", "num_layers", "10**8"),
        ("Linear", "1, 1", "out_features", "10**9"),
        ("Embedding", "2, 2", "embedding_dim", "1"),
        ("Conv2d", "1, 1, 1", "dilation", "(0, 0)"),
    ],
)
def test_builtin_layer_configuration_is_read_only(layer, args, attr, value):
    # before: `self.padding = [10**8]` on a PyroModule[nn.Conv1d] subclass made the
    # layer's forward allocate 200M elements past max_tensor_elements (the output-size
    # guard reads a tuple `padding` only); `self.num_layers = 10**8` on a GRU subclass
    # allocated its hidden state until the process ran out of memory
    src = f"""
from pyro.nn import PyroModule
class C(PyroModule[nn.{layer}]):
    def __init__(self):
        super().__init__({args})
        self.{attr} = {value}
c = C()
""" + TAIL
    with pytest.raises(ForbiddenConstruct, match="configuration"):
        compile_source(src)


def test_layer_configuration_set_before_super_init_is_still_read_only():
    src = """
from pyro.nn import PyroModule
class C(PyroModule[nn.Conv1d]):
    def __init__(self):
        self.padding = 3
        super().__init__(1, 1, 1)
        self.padding = [10**8]
c = C()
""" + TAIL
    with pytest.raises(ForbiddenConstruct, match="configuration"):
        compile_source(src)


def test_layer_configuration_cannot_be_changed_through_a_swapped_self():
    src = """
from pyro.nn import PyroModule
class B(PyroModule[nn.Conv1d]):
    def __init__(self):
        super().__init__(1, 1, 1)
class A(nn.Module):
    def __init__(self, other):
        def g(self):
            super().__init__()
        g(other)
        other.padding = [10**8]
b = B()
a = A(b)
""" + TAIL
    with pytest.raises(ForbiddenConstruct, match="configuration"):
        compile_source(src)


def test_layer_configuration_register_buffer_name_refused():
    src = """
from pyro.nn import PyroModule
class C(PyroModule[nn.Conv1d]):
    def __init__(self):
        super().__init__(1, 1, 1)
        self.register_buffer("padding", torch.ones(1))
c = C()
""" + TAIL
    with pytest.raises(ModelLanguageError):
        compile_source(src)


def test_training_flag_only_takes_a_bool():
    src = """
class C(nn.Module):
    def __init__(self):
        super().__init__()
        self.training = [1]
c = C()
""" + TAIL
    with pytest.raises(ForbiddenConstruct, match="training"):
        compile_source(src)


def test_subclassed_layers_keep_working():
    src = """
from pyro.nn import PyroModule
class L(PyroModule[nn.Linear]):
    def __init__(self):
        super().__init__(3, 2)
        self.extra = 2.0
        self.training = False
    def forward(self, x):
        return self.extra * x + self.in_features
class Enc(nn.Module):
    def __init__(self, z):
        super().__init__()
        self.fc = nn.Linear(4, z)
        self.z = z
    def forward(self, x):
        return self.fc(x).shape[-1] + self.z
l = L()
e = Enc(2)
def model():
    return (float(l(torch.ones(2))[0]), e(torch.ones(4)))
"""
    assert compile_source(src)() == (5.0, 4)


def test_data_record_is_not_changed_by_in_place_union():
    # before: `cfg |= {...}` ran dict's in-place union on the bound (read-only) record,
    # so every later call (the guide, the next SVI step) saw the changed data
    from inference import bind_data

    program = compile_source(
        """
def model(cfg):
    x = cfg.b
    x |= {"c": 7}
    cfg |= {"a": 5}
    return (cfg["a"], x["c"])
"""
    )
    bound = bind_data(program, {"cfg": {"a": 1, "b": {"c": 2}}})
    assert program(**bound.kwargs) == (5, 7)
    record = bound.kwargs["cfg"]
    assert record["a"] == 1 and record["b"]["c"] == 2 and "z" not in record
    assert program(**bound.kwargs) == (5, 7)


def test_reparam_config_cannot_be_swapped_after_the_check():
    # before: Pyro kept the user's dict; putting a plain object with a user `apply` in it
    # after poutine.reparam(...) checked it made Pyro call user code with its messages
    src = """
from pyro.infer.reparam import LocScaleReparam
class R:
    pass
def spy(msg):
    print("spy called")
    return {"fn": msg.get("fn"), "value": None, "is_observed": False}
def inner():
    return pyro.sample("x", dist.Normal(0., 1.))
def model():
    cfg = {"x": LocScaleReparam(centered=0.0)}
    r = R()
    r.apply = spy
    h = poutine.reparam(inner, config=cfg)
    cfg["x"] = r
    return h()
"""
    program = compile_source(src)
    value = program()
    assert value.shape == ()
    assert not any("spy called" in line for line in program.print_log)


def test_super_init_belongs_to_the_defining_class_not_its_name():
    # before: super().__init__() looked its class up by name, so redefining the name
    # (`class A(A)`) made the base's __init__ dispatch back to the subclass: endless
    # recursion (stopped only by max_recursion_depth) instead of the Python behaviour
    src = """
class A(nn.Module):
    def __init__(self):
        super().__init__()
        self.v = 1
class A(A):
    def __init__(self):
        super().__init__()
        self.w = 2
a = A()
def model():
    return (a.v, a.w)
"""
    assert compile_source(src)() == (1, 2)


@pytest.mark.parametrize(("orders", "n", "terms"), [(30000, 1, 30000), (0, 2000, 10**5)])
def test_log_i1_intermediates_are_bounded(orders, n, terms):
    # before: only log_I1's (orders+1) x N result was bounded; its lgamma table
    # ((orders+1) x (terms+orders+1)) tried to allocate 1.8e9 elements, and
    # terms=10**5 built a 2e8-element table (8 s of CPU) past max_tensor_elements
    from inference.language import LimitExceeded

    src = f"""
from pyro.ops.special import log_I1
def model():
    return log_I1({orders}, torch.ones({n}), terms={terms})
"""
    with pytest.raises(LimitExceeded, match="log_I1"):
        compile_source(src)()


def test_log_i1_still_matches_pyro():
    import torch
    from pyro.ops.special import log_I1

    src = """
from pyro.ops.special import log_I1
def model(x):
    return log_I1(3, x, terms=50)
"""
    x = torch.tensor([0.5, 2.0, 7.0])
    assert torch.allclose(compile_source(src)(x=x), log_I1(3, x, terms=50))


@pytest.mark.parametrize(
    "layer",
    [
        # sizes as one-element tensors (torch takes them through __index__) were not
        # counted: 4e8 parameters allocated past max_tensor_elements
        "nn.Linear(torch.tensor(20000), torch.tensor(20000))",
        "nn.Embedding(torch.tensor(100000), 1000)",
        "nn.Conv2d(1, 1, (torch.tensor(10**4), torch.tensor(10**4)))",
        # sizes given by keyword that the bound did not know (Conv's *_channels/kernel_size)
        "nn.Conv2d(in_channels=1000, out_channels=1000, kernel_size=(10, 10))",
        "PyroModule[nn.Linear](torch.tensor(20000), torch.tensor(20000))",
    ],
)
def test_layer_sizes_are_bounded_however_given(layer):
    from inference.language import LimitExceeded

    src = f"from pyro.nn import PyroModule\nm = {layer}\n" + TAIL
    with pytest.raises(LimitExceeded, match="parameters"):
        compile_source(src)


def test_layer_sizes_in_a_subclass_super_init_are_bounded():
    from inference.language import LimitExceeded

    src = """
from pyro.nn import PyroModule
class L(PyroModule[nn.Linear]):
    def __init__(self):
        super().__init__(torch.tensor(20000), torch.tensor(20000))
l = L()
""" + TAIL
    with pytest.raises(LimitExceeded, match="parameters"):
        compile_source(src)


def test_recurrent_layer_count_is_bounded():
    # before: nn.GRU(1, 1, num_layers=10000) (a few parameters each) took 10 s to build
    # and 33 s to run once, num_layers=100000 ran past any time limit: no budget counted it
    from inference.language import LimitExceeded

    with pytest.raises(LimitExceeded, match="layers"):
        compile_source("g = nn.GRU(1, 1, num_layers=10000)\n" + TAIL)
    with pytest.raises(LimitExceeded, match="layers"):
        compile_source("g = nn.LSTM(1, 1, torch.tensor(1000))\n" + TAIL)


def test_recurrent_layers_within_bounds_still_work():
    src = """
g = nn.GRU(3, 5, 2, True, True, 0.0, True)
h = nn.LSTM(input_size=3, hidden_size=4, num_layers=2)
def model():
    return (tuple(g(torch.ones(2, 4, 3))[0].shape), tuple(h(torch.ones(4, 2, 3))[0].shape))
"""
    assert compile_source(src)() == ((2, 4, 10), (4, 2, 4))


def test_reading_a_constant_named_like_a_layer_setting_does_not_list_the_instance(monkeypatch):
    # before: reading `self.p` (a class constant named like a layer setting) ran
    # dir(instance) on every read, sorting its ~1,000 attributes: a 100k-iteration loop
    # took 12.5 s instead of 0.7 s within the same budgets
    from inference.language import classes

    calls = []

    def counting_dir(*args):
        calls.append(args)
        return dir(*args)

    monkeypatch.setattr(classes, "dir", counting_dir, raising=False)
    src = """
from pyro.nn import PyroModule
class M(nn.Module):
    p = 1
    def __init__(self):
        super().__init__()
        for i in range(900):
            self.register_buffer(f"b{i}", None)
    def run(self):
        t = 0
        for i in range(100):
            t += self.p
        return t
class C(PyroModule[nn.Conv1d]):
    def __init__(self):
        super().__init__(1, 1, 3, padding=2)
m = M()
c = C()
def model():
    return (m.run(), c.padding, c.kernel_size)
"""
    assert compile_source(src)() == (100, (2,), (3,))
    assert calls == []


_MANY_MODULES = """
from pyro.nn import PyroModule
class M(PyroModule):
    def __init__(self):
        super().__init__()
        self.many = nn.ModuleList([nn.Identity() for i in range(40000)])
    def forward(self, x):
        return x
m = M()
"""


def test_module_call_scan_is_counted_outside_a_run():
    # before: every call of a PyroModule walked all its sub-modules (to refuse sampling
    # outside a model run), uncounted: 40 ms per call with 50,000 sub-modules, so a
    # 100k-iteration loop of calls ran for an hour within the budgets
    from inference.language import LimitExceeded

    src = _MANY_MODULES + "y = m(torch.ones(1))\ny = m(y)\n" + TAIL
    with pytest.raises(LimitExceeded, match="max_loop_iterations"):
        compile_source(src)


def test_module_call_in_a_model_run_does_not_scan():
    src = _MANY_MODULES + """
def model():
    x = torch.ones(1)
    for i in range(2000):
        x = m(x)
    return x
"""
    # 2,000 calls x 40,001 modules would be 8e7 loop iterations if each call scanned
    assert compile_source(src)().tolist() == [1.0]


def test_pyro_sample_module_still_refused_at_top_level():
    src = """
from pyro.nn import PyroModule, PyroSample
class M(PyroModule):
    def __init__(self):
        super().__init__()
        self.w = PyroSample(dist.Normal(0., 1.))
    def forward(self, x):
        return x
m = M()
y = m(torch.ones(1))
""" + TAIL
    with pytest.raises(ForbiddenConstruct, match="while the model or guide runs"):
        compile_source(src)


def test_plain_module_attributes_stay_assignable():
    src = """
class M(nn.Module):
    def __init__(self):
        self.early = 1
        super().__init__()
        self.early = 2
        self.hidden_size = 3
        self.hidden_size = 4
m = M()
def model():
    return (m.early, m.hidden_size)
"""
    assert compile_source(src)() == (2, 4)
