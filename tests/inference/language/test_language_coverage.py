"""Constructs added for code pasted from Pyro's tutorials and examples (issue 11)."""

from __future__ import annotations

import numpy as np
import pyro
import pytest
import torch
from pyro import poutine

from inference.language import ModelLanguageError, UnknownName, bind_data, compile_source


@pytest.fixture(autouse=True)
def _clean():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()


CLASSES = '''
import torch
import torch.nn as nn
import pyro
import pyro.distributions as dist
from pyro.nn import PyroModule, PyroSample, PyroParam
from torch.distributions import constraints


class Encoder(nn.Module):
    """docstring"""
    scale = 2.0

    def __init__(self, n, hidden):
        super(Encoder, self).__init__()
        self.fc = nn.Linear(n, hidden)
        self.calls = 0
        nn.init.zeros_(self.fc.bias)

    def forward(self, x):
        self.calls += 1
        return self.helper(self.fc(x)) * self.scale

    def helper(self, h):
        return torch.tanh(h)


class Deeper(Encoder):
    def forward(self, x):
        return self.fc(x) + 1.0


class Regression(PyroModule):
    def __init__(self, d):
        super().__init__()
        self.linear = PyroModule[nn.Linear](d, 1)
        self.linear.weight = PyroSample(dist.Normal(0.0, 1.0).expand([1, d]).to_event(2))
        self.sigma = PyroParam(torch.tensor(1.0), constraint=constraints.positive)
        self.register_buffer("zero", torch.tensor(0.0))
        self.w = nn.Parameter(torch.ones(d))

    def forward(self, x, y=None):
        mean = self.linear(x).squeeze(-1) + self.zero + (x * self.w).sum(-1) * 0.0
        with pyro.plate("data", x.shape[0]):
            return pyro.sample("obs", dist.Normal(mean, self.sigma), obs=y)


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = Encoder(3, 2)

    def model(self, x):
        pyro.module("vae", self)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(x.shape[0], 2), 1.0).to_event(1))
            return z

    def guide(self, x):
        pyro.module("vae", self)
        loc = self.encoder(x)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(loc, 1.0).to_event(1))


enc = Encoder(3, 2)
deeper = Deeper(3, 2)
regression = Regression(3)
vae = VAE()


def model(x):
    return enc(x), deeper(x), enc.calls
'''


def test_nn_module_classes_methods_attributes_and_inheritance():
    program = compile_source(CLASSES)
    x = torch.randn(4, 3)
    a, b, calls = program(x)
    assert a.shape == (4, 2) and b.shape == (4, 2) and calls == 1
    # the same weights as Python builds them
    assert torch.allclose(a, torch.tanh(torch.nn.functional.linear(x, *_linear_params(program, "enc"))) * 2.0)


def _linear_params(program, name):
    fc = program._unit.globals[name].fc
    return fc.weight, fc.bias


def test_pyro_module_with_pyro_sample_and_param_is_an_entry():
    program = compile_source(CLASSES, "regression")
    assert [p for p, _ in program.parameters] == ["x", "y"]
    trace = poutine.trace(program).get_trace(torch.randn(5, 3), torch.randn(5))
    assert "linear.weight" in trace.nodes and trace.nodes["linear.weight"]["type"] == "sample"
    assert "sigma" in pyro.get_param_store()


def test_method_entries_share_the_instance():
    model = compile_source(CLASSES, "vae.model")
    guide = model.function("vae.guide")
    assert [p for p, _ in guide.parameters] == ["x"]
    x = torch.randn(2, 3)
    guide_trace = poutine.trace(guide).get_trace(x)
    poutine.trace(poutine.replay(model, guide_trace)).get_trace(x)
    names = set(pyro.get_param_store().keys())
    assert "vae$$$encoder.fc.weight" in names


def test_instance_attributes_are_limited_to_what_the_source_set():
    with pytest.raises(UnknownName):
        compile_source(CLASSES + "\ndef bad():\n    return enc.missing\n", "bad")()


def test_builtins_and_helpers_from_pasted_code():
    source = '''
import logging
import torch
import pyro
import pyro.distributions as dist
from pyro.distributions import *
from pyro.distributions.util import scalar_like, broadcast_shape
from pyro.ops.indexing import Vindex
from pyro.util import ignore_jit_warnings
from pyro.ops.special import safe_log

log = logging.getLogger()
counter = 0


def helper(input, filter=2):
    return input * filter


def model(x, cfg):
    global counter
    counter += 1
    with ignore_jit_warnings():
        n, d = map(int, x.shape)
    log.info("n=%d d=%d", n, d)
    name = "site_%d_%s" % (n, cfg.kind)
    parts = "a-b-c".split("-")
    shape = broadcast_shape((n, 1), (1, d))
    one = scalar_like(x, 1.0)
    idx = torch.LongTensor([0, 1])
    p = Vindex(torch.ones(3, 4, 5))[idx, :, idx[:, None]]
    args = [n, d]
    kwargs = {"dtype": torch.float32}
    z = torch.zeros(*args, **kwargs)
    with torch.no_grad():
        w = safe_log(x.abs() + one)
    y = pyro.sample("y", Normal(z, 1.0).to_event(2), obs=x)
    return name, parts, shape, p.shape, idx.type(torch.float).dtype, helper(2), counter, list(filter(None, [0, 1, 2]))
'''
    program = compile_source(source)
    bound = bind_data(program, {"x": np.ones((2, 3), np.float32), "cfg": {"kind": "test"}})
    name, parts, shape, pshape, dtype, h, counter, filtered = program(**bound.kwargs)
    assert name == "site_2_test" and parts == ["a", "b", "c"] and shape == (2, 3)
    assert pshape == (2, 2, 4) and dtype == torch.float32 and h == 4 and counter == 1
    assert filtered == [1, 2]
    assert program.print_log == ["INFO: n=2 d=3"]


def test_nested_data_fields_bind_to_read_only_records():
    program = compile_source("def model(args):\n    return args.sizes.n + args['offset'], args.name, args.note")
    bound = bind_data(program, {"args": {"sizes": {"n": 3}, "offset": 1.5, "name": "x", "note": None}})
    assert program(**bound.kwargs) == (4.5, "x", None)
    arrays = bind_data(program, {"args": {"sizes": {"n": np.arange(3)}, "offset": 0, "name": "", "note": None}})
    assert isinstance(arrays.kwargs["args"]["sizes"]["n"], torch.Tensor)


def test_condition_and_reparam():
    source = '''
import pyro
import pyro.distributions as dist
from pyro import poutine
from pyro.infer.reparam import LocScaleReparam

def inner():
    return pyro.sample("z", dist.Normal(0.0, 1.0))

@poutine.reparam(config={"x": LocScaleReparam(centered=0.0)})
def model():
    loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
    x = pyro.sample("x", dist.Normal(loc, 2.0))
    return pyro.condition(inner, data={"z": torch.tensor(1.5)})()
'''
    program = compile_source(source)
    trace = poutine.trace(program).get_trace()
    assert trace.nodes["_RETURN"]["value"].item() == 1.5
    assert "x_decentered" in trace.nodes


def test_contrib_is_refused_with_what_to_write_instead():
    with pytest.raises(ModelLanguageError, match="write the model as a function"):
        compile_source("from pyro.contrib.forecast import ForecastingModel\ndef model():\n    pass")


def test_training_imports_are_accepted_and_their_use_points_to_the_settings():
    head = (
        "import pyro.optim as optim\n"
        "from pyro.infer import SVI, Trace_ELBO, config_enumerate\n"
        "from pyro.infer.autoguide import AutoNormal\n"
        "from pyro.optim import Adam\n"
        "def model():\n    return 1\n"
    )
    assert compile_source(head)() == 1
    for use in ("guide = AutoNormal(model)", "svi = SVI(model, None, None, Trace_ELBO())",
                "opt = optim.Adam({'lr': 0.1})"):
        with pytest.raises(ModelLanguageError, match="job's settings") as err:
            compile_source(head + use + "\n")
        assert err.value.line == 7
    with pytest.raises(ModelLanguageError):
        compile_source("from pyro.optim import *\ndef model():\n    pass\n")
