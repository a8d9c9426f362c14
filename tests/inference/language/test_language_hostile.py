"""Hostile input: every case is refused with ModelLanguageError and has no side effect.

Each source tries to reach outside the language (imports, dunders, reflection,
file access, resource exhaustion, formatting tricks, decorator tricks, ...). A case
passes when compiling or calling the program raises ``ModelLanguageError`` and nothing
else, and the marker file the attack would create does not exist.
"""

from __future__ import annotations

import time

import pyro
import pytest
import torch

from inference import ModelLanguageError, compile_source
from inference.language import Limits

M = "{marker}"  # replaced by a per-test path

HOSTILE: dict[str, str] = {
    # imports
    "import_os": "import os\ndef model():\n    os.system('touch {marker}')",
    "import_sys": "import sys\ndef model():\n    return sys.modules",
    "import_subprocess": "import subprocess\ndef model():\n    subprocess.run(['touch', '{marker}'])",
    "from_os_import": "from os import system\ndef model():\n    system('touch {marker}')",
    "import_in_function": "def model():\n    import os\n    os.system('touch {marker}')",
    "import_builtins": "import builtins\ndef model():\n    builtins.open('{marker}', 'w')",
    "import_numpy": "import numpy as np\ndef model():\n    np.save('{marker}', [1])",
    "import_torch_submodule": "import torch.utils\ndef model():\n    pass",
    "from_os_import_star": "from os import *\ndef model():\n    system('touch {marker}')",
    "relative_import": "from . import secrets\ndef model():\n    pass",
    "from_torch_import_load": "from torch import load\ndef model():\n    load('{marker}')",
    "import_importlib": "import importlib\ndef model():\n    importlib.import_module('os')",
    # __import__ and dunders
    "dunder_import": "def model():\n    __import__('os').system('touch {marker}')",
    "dunder_subclasses": "def model():\n    return ().__class__.__bases__[0].__subclasses__()",
    "dunder_globals_of_function": "def f():\n    pass\ndef model():\n    return f.__globals__",
    "dunder_builtins_name": "def model():\n    return __builtins__",
    "dunder_class_of_tensor": "def model():\n    return torch.ones(1).__class__",
    "dunder_init_of_dist": "def model():\n    return dist.Normal.__init__",
    "dunder_dict_param_store": "def model():\n    return pyro.get_param_store().__dict__",
    "dunder_name_binding": "__x__ = 1\ndef model():\n    pass",
    "dunder_param_name": "def model(__class__=1):\n    pass",
    "dunder_keyword": "def model():\n    return dict(__class__=1)",
    "private_attribute": "def model():\n    return torch._C",
    "private_namespace_member": "def model():\n    return pyro._PYRO_STACK",
    # reflection builtins
    "getattr": "def model():\n    return getattr(torch, 'load')",
    "setattr": "def model():\n    setattr(torch, 'x', 1)",
    "open_write": "def model():\n    open('{marker}', 'w').write('x')",
    "exec": 'def model():\n    exec(\'open("{marker}", "w")\')',
    "eval": "def model():\n    return eval('1+1')",
    "compile_builtin": "def model():\n    return compile('1', 'x', 'eval')",
    "globals_builtin": "def model():\n    return globals()",
    "vars_builtin": "def model():\n    return vars(torch)",
    "type_builtin": "def model():\n    return type(torch.ones(1))",
    "breakpoint": "def model():\n    breakpoint()",
    "isinstance_builtin": "def model():\n    return isinstance(1, int)",
    # lambda escapes
    "lambda_code": "def model():\n    return (lambda: 0).__code__",
    "lambda_globals": "def model():\n    f = lambda: 0\n    return f.__globals__['__builtins__']",
    "lambda_closure": "def model():\n    x = 1\n    f = lambda: x\n    return f.func_closure",
    "lambda_recursion": "def model():\n    f = lambda n: f(n + 1)\n    return f(0)",
    # attribute access on non-whitelisted objects
    "torch_load": "def model():\n    return torch.load('{marker}')",
    "torch_save": "def model():\n    torch.save(torch.ones(1), '{marker}')",
    "torch_hub": "def model():\n    return torch.hub.load('x', 'y')",
    "torch_ops": "def model():\n    return torch.ops.aten",
    "torch_classes": "def model():\n    return torch.classes",
    "torch_utils": "def model():\n    return torch.utils.data",
    "torch_from_file": "def model():\n    return torch.from_file('{marker}', True, 10)",
    "torch_set_default": "def model():\n    torch.set_default_dtype(torch.float64)",
    "torch_manual_seed": "def model():\n    torch.manual_seed(0)",
    "tensor_storage": "def model():\n    return torch.ones(2).storage()",
    "tensor_numpy": "def model():\n    return torch.ones(2).numpy()",
    "tensor_data_ptr": "def model():\n    return torch.ones(2).data_ptr()",
    "tensor_register_hook": "def model():\n    return torch.ones(2).register_hook",
    "tensor_inplace_resize": "def model():\n    x = torch.ones(2)\n    x.resize_(10**9)",
    "tensor_to_cuda": "def model():\n    return torch.ones(2).to('cuda')",
    "module_forward_hook": "net = nn.Linear(2, 2)\ndef model():\n    return net.register_forward_hook",
    "module_class_attr": "def model():\n    return nn.Module.register_forward_hook",
    "pyro_get_param_store": "def model():\n    return pyro.get_param_store()",
    "pyro_clear_param_store": "def model():\n    pyro.clear_param_store()",
    "pyro_settings": "def model():\n    return pyro.settings",
    "poutine_trace": "def model():\n    return poutine.trace",
    "dist_class_attribute": "def model():\n    return dist.Normal.arg_constraints",
    "function_attribute": "def f():\n    pass\ndef model():\n    return f.func_globals",
    "namespace_indexing": "def model():\n    return torch['load']",
    "plate_attribute": "def model():\n    p = pyro.plate('x', 2)\n    return p.frame",
    "attribute_assignment": "def model():\n    torch.load = 1",
    # string formatting tricks
    "format_class": "def model():\n    return '{0.__class__}'.format(torch.ones(1))",
    "format_attribute": "def model():\n    return '{0.shape}'.format(torch.ones(1))",
    "format_index": "def model():\n    return '{0[0]}'.format([1])",
    "format_nested_width": "def model():\n    return '{0:{1}}'.format(1, 10**9)",
    "format_huge_width": "def model():\n    return '{:>999999999}'.format(1)",
    "percent_format_huge_width": "def model():\n    return '%999999999s' % (1,)",
    "percent_format_star_width": "def model():\n    s = '%*d'\n    return s % (10**9, 1)",
    "fstring_huge_width": "def model():\n    x = 1\n    return f'{x:>999999999}'",
    "fstring_nested_spec": "def model():\n    w = 10**9\n    return f'{1:{w}}'",
    "str_join_attr": "def model():\n    return ''.maketrans",
    # forbidden statements
    "while_true": "def model():\n    while True:\n        pass",
    "try_except": "def model():\n    try:\n        pass\n    except Exception:\n        pass",
    "class_metaclass": "class A(nn.Module, metaclass=type):\n    pass\ndef model():\n    pass",
    "class_dunder_method": "class A:\n    def __getattr__(self, n):\n        return 1\ndef model():\n    pass",
    "class_object_base": "class A(object):\n    pass\ndef model():\n    pass",
    "global_module_level": "global x\ndef model():\n    pass",
    "nonlocal_stmt": "def model():\n    x = 1\n    def f():\n        nonlocal x\n    f()",
    "delete": "def model():\n    x = 1\n    del x",
    "raise": "def model():\n    raise SystemExit(1)",
    "yield_generator": "def model():\n    yield 1",
    "async_def": "async def model():\n    pass",
    "walrus": "def model():\n    if (x := 1):\n        pass",
    "star_args": "def model(*args):\n    pass",
    "star_target": "def model():\n    a, *b = [1, 2]",
    "double_star_dunder_key": "def model():\n    return dict(**{'__class__': 1})",
    "set_literal": "def model():\n    return {1, 2}",
    "match_stmt": "def model(x=1):\n    match x:\n        case 1:\n            pass",
    "with_on_tensor": "def model():\n    with torch.ones(1):\n        pass",
    "with_open": "def model():\n    with open('{marker}', 'w') as f:\n        pass",
    "bytes_literal": "def model():\n    return b'abc'",
    "pyro_sample_at_module_level": "x = pyro.sample('x', dist.Normal(0.0, 1.0))\ndef model():\n    pass",
    # decorator tricks
    "decorator_print": "@print\ndef model():\n    pass",
    "decorator_lambda": "@(lambda f: f)\ndef model():\n    pass",
    "decorator_torch_load": "@torch.load\ndef model():\n    pass",
    "decorator_on_nested": "def model():\n    @config_enumerate\n    def g():\n        pass",
    "decorator_with_expression_arg": "@config_enumerate(open('{marker}', 'w'))\ndef model():\n    pass",
    # generator / comprehension abuse
    "comprehension_billion": "def model():\n    return [i for i in range(10**9)]",
    "generator_sum_billion": "def model():\n    return sum(i for i in range(10**9))",
    "nested_comprehension": "def model():\n    return [[j for j in range(10**5)] for i in range(10**5)]",
    "set_comprehension": "def model():\n    return {i for i in range(3)}",
    "list_of_range": "def model():\n    return list(range(10**12))",
    "sorted_range": "def model():\n    return sorted(range(10**12))",
    "dict_of_zip": "def model():\n    return dict(zip(range(10**9), range(10**9)))",
    # resource exhaustion
    "for_billion": "def model():\n    for i in range(10**9):\n        pass",
    "deep_recursion": "def f(n):\n    return f(n + 1)\ndef model():\n    return f(0)",
    "mutual_recursion": "def f(n):\n    return g(n)\ndef g(n):\n    return f(n)\ndef model():\n    return f(0)",
    "torch_zeros_huge": "def model():\n    return torch.zeros(10**12)",
    "torch_ones_tuple_huge": "def model():\n    return torch.ones((10**6, 10**6))",
    "torch_randn_huge": "def model():\n    return torch.randn(10**5, 10**5)",
    "torch_full_huge": "def model():\n    return torch.full((10**6, 10**6), 1.0)",
    "torch_empty_huge": "def model():\n    return torch.empty(10**12)",
    "torch_arange_huge": "def model():\n    return torch.arange(0, 10**12)",
    "torch_linspace_huge": "def model():\n    return torch.linspace(0, 1, 10**12)",
    "torch_eye_huge": "def model():\n    return torch.eye(10**6)",
    "torch_tensor_range": "def model():\n    return torch.tensor(range(10**10))",
    "expand_huge": "def model():\n    return torch.ones(1).expand(10**6, 10**6)",
    "repeat_huge": "def model():\n    return torch.ones(10).repeat(10**9)",
    "repeat_interleave_huge": "def model():\n    return torch.ones(1000).repeat_interleave(10**8)",
    "new_zeros_huge": "def model():\n    return torch.ones(1).new_zeros(10**6, 10**6)",
    "broadcast_huge": "def model():\n    return torch.ones(10**5, 1) * torch.ones(1, 10**5)",
    "compare_broadcast_huge": "def model():\n    return torch.ones(10**5, 1) == torch.ones(1, 10**5)",
    "matmul_huge": "def model():\n    return torch.ones(10**5, 1) @ torch.ones(1, 10**5)",
    "outer_huge": "def model():\n    x = torch.ones(10**5)\n    return torch.outer(x, x)",
    "cdist_huge": "def model():\n    x = torch.ones(10**5, 1)\n    return torch.cdist(x, x)",
    "einsum_huge": "def model():\n    x = torch.ones(10**5)\n    return torch.einsum('i,j->ij', x, x)",
    "index_broadcast_huge": "def model():\n    x = torch.ones(10)\n    i = torch.zeros(10**5, 1).long()\n    return x[i, torch.zeros(1, 10**5).long()] if False else x[i, i.t()]",
    "one_hot_huge": "def model():\n    return F.one_hot(torch.tensor([10**9]))",
    "dist_sample_huge": "def model():\n    return dist.Normal(0.0, 1.0).sample((10**6, 10**6))",
    "dist_expand_huge": "def model():\n    return dist.Normal(0.0, 1.0).expand([10**6, 10**6])",
    "nn_linear_huge": "net = nn.Linear(10**6, 10**6)\ndef model():\n    pass",
    "nn_module_output_huge": "net = nn.Linear(1, 10**4)\ndef model():\n    return net(torch.ones(10**5, 1))",
    "plate_huge": "def model():\n    with pyro.plate('n', 10**12):\n        pass",
    "plate_subsample_huge": "def model():\n    with pyro.plate('n', 10, subsample_size=10**12):\n        pass",
    "power_tower": "def model():\n    return 10**10**10",
    "power_big": "def model():\n    return 2**100000",
    "shift_big": "def model():\n    return 1 << 10**9",
    "int_squaring": "def model():\n    x = 3\n    for i in range(64):\n        x = x * x\n    return x",
    "string_multiplication": "def model():\n    return 'a' * 10**10",
    "list_multiplication": "def model():\n    return [0] * 10**10",
    "string_doubling": "def model():\n    s = 'ab'\n    for i in range(64):\n        s = s + s\n    return s",
    "tensor_from_nested_lists_huge": "def model():\n    return torch.tensor([[0.0] * 10**5] * 10**5)",
    "str_of_nested_lists_huge": "def model():\n    return str([[0] * 10**5] * 10**5)",
    "fstring_of_nested_lists_huge": "def model():\n    x = [[0] * 10**5] * 10**5\n    return f'{x}'",
    "print_nested_lists_huge": "def model():\n    print([[0] * 10**5] * 10**5)",
    "cat_of_repeated_list_huge": "def model():\n    x = torch.ones(10**6)\n    return torch.cat([x] * 1000)",
    "diag_huge": "def model():\n    return torch.diag(torch.ones(10**5))",
    "diag_embed_method_huge": "def model():\n    return torch.ones(10**5).diag_embed()",
    "enumerable_support_huge": "def model():\n    return pyro.sample('k', dist.Binomial(10**9, 0.5))",
    "combinatorial_distribution": "def model():\n    return dist.SpanningTree(torch.zeros(45))",
    "device_string": "def model():\n    return torch.zeros(3, device='cuda')",
    "pin_memory": "def model():\n    return torch.ones(3, pin_memory=True)",
    "plate_use_cuda": "def model():\n    with pyro.plate('p', 3, use_cuda=True):\n        pass",
    "size_multiplication": "def model():\n    return torch.ones(2).shape * 10**10",
    "size_doubling": "def model():\n    s = torch.ones(2).shape\n    for i in range(64):\n        s = s + s\n    return s",
    "round_huge_ndigits": "def model():\n    return round(5, -10**9)",
    "print_flood": "def model():\n    for i in range(10**7):\n        print('x' * 1000)",
    "very_long_source": "def model():\n    pass\n" + "x = 1\n" * 30000,
    "many_nodes": "def model():\n    return " + "+".join(["1"] * 30000),
    "deep_nesting_parens": "def model():\n    return " + "(" * 400 + "1" + ")" * 400,
    "deep_nesting_unary": "def model():\n    return " + "-" * 3000 + "1",
    "deep_nesting_blocks": "def model():\n"
    + "".join("    " * (i + 1) + "if True:\n" for i in range(150))
    + "    " * 151
    + "pass",
    "null_byte": "def model():\n    return 1\x00",
    "syntax_error": "def model(:\n    pass",
    "not_text": b"def model(): pass",
    "unknown_entry": "def other():\n    pass",
}


@pytest.fixture(autouse=True)
def _clean():
    pyro.clear_param_store()
    yield
    pyro.clear_param_store()


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_source_is_refused_without_side_effects(case, tmp_path):
    marker = tmp_path / "pwned"
    source = HOSTILE[case]
    if isinstance(source, str):
        source = source.replace(M, str(marker))
    before = torch.get_default_dtype()
    started = time.monotonic()
    with pytest.raises(ModelLanguageError) as err:
        program = compile_source(source)
        program()
    assert err.value.kind in {
        "syntax-error",
        "forbidden-construct",
        "unknown-name",
        "limit-exceeded",
        "runtime-error",
        "data-binding",
    }
    assert str(err.value)  # a message for people
    assert not marker.exists()
    assert torch.get_default_dtype() == before
    # refused quickly: the limits stop work early (generous bound; speed lives in bench/)
    assert time.monotonic() - started < 30


def test_hostile_suite_is_large_enough():
    assert len(HOSTILE) >= 60


def test_limits_are_configurable_and_named_in_messages():
    tight = Limits(max_call_steps=50)
    program = compile_source(
        "def model():\n    x = 0\n    for i in range(100):\n        x = x + i\n",
        limits=tight,
    )
    with pytest.raises(ModelLanguageError) as err:
        program()
    assert "max_call_steps=50" in str(err.value) and err.value.kind == "limit-exceeded"
    with pytest.raises(ModelLanguageError) as err:
        compile_source(
            "def model():\n    pass\n" + "#" * 200, limits=Limits(max_source_bytes=100)
        )
    assert "max_source_bytes=100" in str(err.value)
    with pytest.raises(ModelLanguageError) as err:
        compile_source(
            "def model():\n    return 1 + 2 + 3", limits=Limits(max_ast_nodes=5)
        )
    assert "max_ast_nodes=5" in str(err.value)
    with pytest.raises(ModelLanguageError) as err:
        compile_source(
            "def model():\n    return torch.zeros(101)",
            limits=Limits(max_tensor_elements=100),
        )()
    assert "max_tensor_elements=100" in str(err.value) and err.value.line == 2
    with pytest.raises(ModelLanguageError) as err:
        compile_source(
            "def model():\n    with pyro.plate('n', 11):\n        pass",
            limits=Limits(max_plate_size=10),
        )()
    assert "max_plate_size=10" in str(err.value)
    with pytest.raises(ModelLanguageError) as err:
        compile_source(
            "def f(n):\n    return f(n - 1) if n else 0\ndef model():\n    return f(5)",
            limits=Limits(max_recursion_depth=3),
        )()
    assert "max_recursion_depth=3" in str(err.value)


def test_print_flood_is_bounded_in_the_log():
    program = compile_source(
        "def model():\n    for i in range(50000):\n        print('x' * 5000)"
    )
    program()
    assert len(program.print_log) <= 1001
    assert all(len(line) <= 2100 for line in program.print_log)
