"""Property-based fuzzing: random sources and random syntax trees.

Whatever the input, ``compile_source`` returns a ``Program`` or raises
``ModelLanguageError``; calling a compiled program (with small limits) returns or
raises ``ModelLanguageError`` -- never any other exception.
"""

from __future__ import annotations

import ast

import pyro
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference import ModelLanguageError, compile_source
from inference.language import Limits

SMALL = Limits(
    max_loop_iterations=500,
    max_call_steps=5_000,
    max_tensor_elements=100_000,
    max_plate_size=1_000,
    max_recursion_depth=8,
)

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    derandomize=True,
)

TOKENS = [
    "def",
    "model",
    "(",
    ")",
    ":",
    "x",
    "=",
    "return",
    "for",
    "in",
    "range",
    "if",
    "else",
    "while",
    "import",
    "os",
    "from",
    "torch",
    ".",
    "zeros",
    "pyro",
    "sample",
    "dist",
    "Normal",
    "plate",
    "with",
    "as",
    "lambda",
    "__class__",
    "__import__",
    "[",
    "]",
    "{",
    "}",
    ",",
    "+",
    "*",
    "**",
    "10",
    "0",
    "1.5",
    "'s'",
    "\n",
    "\n    ",
    "yield",
    "class",
    "getattr",
    "open",
    "print",
    "@",
    "config_enumerate",
    "not",
    "and",
    "or",
    "%",
    "f'{x}'",
    "try",
    "except",
    "global",
    "del",
    "async",
    "await",
    "None",
    "True",
    "...",
    ";",
    "#",
]


def _call(program):
    try:
        program(torch.ones(3))
    except ModelLanguageError:
        pass


@pytest.fixture(autouse=True)
def _clean():
    pyro.clear_param_store()
    yield
    pyro.clear_param_store()


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=40), st.booleans())
def test_token_soup_yields_program_or_language_error(tokens, wrap):
    text = " ".join(tokens)
    if wrap:
        text = "def model(x):\n    " + text
    pyro.clear_param_store()
    try:
        program = compile_source(text, limits=SMALL)
    except ModelLanguageError as err:
        assert err.kind and str(err)
        return
    _call(program)


# ----------------------------------------------------------------- random syntax trees

NAMES = [
    "x",
    "i",
    "torch",
    "dist",
    "pyro",
    "F",
    "nn",
    "math",
    "model",
    "helper",
    "open",
    "__class__",
    "len",
    "range",
    "print",
    "sum",
]
ATTRS = [
    "sum",
    "exp",
    "shape",
    "sample",
    "Normal",
    "zeros",
    "plate",
    "T",
    "__class__",
    "__globals__",
    "load",
    "storage",
    "format",
    "to_event",
    "log_prob",
    "item",
    "expand",
    "ones",
    "append",
    "numpy",
    "mean",
]
CONSTANTS = st.one_of(
    st.integers(-3, 10),
    st.sampled_from([10**12, 2**64, -1, 0]),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from(["s", "{0.__class__}", "%s", "a" * 10, ""]),
    st.none(),
    st.booleans(),
)
BINOPS = [
    ast.Add(),
    ast.Sub(),
    ast.Mult(),
    ast.Div(),
    ast.Pow(),
    ast.Mod(),
    ast.FloorDiv(),
    ast.MatMult(),
    ast.LShift(),
    ast.BitAnd(),
]
CMPOPS = [ast.Eq(), ast.Lt(), ast.Gt(), ast.In(), ast.Is(), ast.NotEq()]


def _expr_extend(children):
    return st.one_of(
        st.builds(ast.BinOp, children, st.sampled_from(BINOPS), children),
        st.builds(
            ast.UnaryOp,
            st.sampled_from([ast.USub(), ast.Not(), ast.Invert()]),
            children,
        ),
        st.builds(
            lambda a, op, b: ast.Compare(a, [op], [b]),
            children,
            st.sampled_from(CMPOPS),
            children,
        ),
        st.builds(
            lambda f, args: ast.Call(f, args, []),
            children,
            st.lists(children, max_size=3),
        ),
        st.builds(
            lambda v, a: ast.Attribute(v, a, ast.Load()),
            children,
            st.sampled_from(ATTRS),
        ),
        st.builds(lambda v, s: ast.Subscript(v, s, ast.Load()), children, children),
        st.builds(
            lambda elts: ast.Tuple(elts, ast.Load()), st.lists(children, max_size=3)
        ),
        st.builds(
            lambda elts: ast.List(elts, ast.Load()), st.lists(children, max_size=3)
        ),
        st.builds(ast.IfExp, children, children, children),
        st.builds(
            lambda body: ast.Lambda(
                ast.arguments([], [], None, [], [], None, []), body
            ),
            children,
        ),
        st.builds(
            lambda elt, it: ast.ListComp(
                elt, [ast.comprehension(ast.Name("i", ast.Store()), it, [], 0)]
            ),
            children,
            children,
        ),
    )


EXPRS = st.recursive(
    st.one_of(
        st.builds(lambda n: ast.Name(n, ast.Load()), st.sampled_from(NAMES)),
        st.builds(ast.Constant, CONSTANTS),
    ),
    _expr_extend,
    max_leaves=6,
)


def _stmt_extend(children):
    block = st.lists(children, min_size=1, max_size=3)
    return st.one_of(
        st.builds(ast.If, EXPRS, block, st.lists(children, max_size=2)),
        st.builds(
            lambda it, body: ast.For(ast.Name("i", ast.Store()), it, body, []),
            EXPRS,
            block,
        ),
        st.builds(lambda test, body: ast.While(test, body, []), EXPRS, block),
        st.builds(
            lambda ctx, body: ast.With(
                [ast.withitem(ctx, ast.Name("i", ast.Store()))], body
            ),
            EXPRS,
            block,
        ),
    )


STMTS = st.recursive(
    st.one_of(
        st.builds(
            lambda n, v: ast.Assign([ast.Name(n, ast.Store())], v),
            st.sampled_from(["x", "i", "y"]),
            EXPRS,
        ),
        st.builds(ast.Expr, EXPRS),
        st.builds(ast.Return, EXPRS),
        st.just(ast.Pass()),
        st.just(ast.Break()),
    ),
    _stmt_extend,
    max_leaves=5,
)


def _module(body):
    fn = ast.FunctionDef(
        name="model",
        args=ast.arguments([], [ast.arg("x")], None, [], [], None, []),
        body=body,
        decorator_list=[],
        returns=None,
        type_comment=None,
    )
    helper = ast.FunctionDef(
        name="helper",
        args=ast.arguments([], [ast.arg("i")], None, [], [], None, []),
        body=[ast.Return(ast.Name("i", ast.Load()))],
        decorator_list=[],
        returns=None,
        type_comment=None,
    )
    return ast.fix_missing_locations(ast.Module(body=[helper, fn], type_ignores=[]))


@FUZZ
@given(st.lists(STMTS, min_size=1, max_size=4))
def test_random_syntax_trees_yield_program_or_language_error(body):
    try:
        source = ast.unparse(_module(body))
    except Exception:  # noqa: BLE001 - an unrenderable tree is the generator's problem, not ours
        return
    pyro.clear_param_store()
    try:
        program = compile_source(source, limits=SMALL)
    except ModelLanguageError as err:
        assert err.kind and str(err)
        return
    _call(program)


def test_fuzz_generators_reach_compiled_programs():
    # guard against a fuzzer that only ever produces syntax errors
    example = ast.unparse(
        _module(
            [
                ast.Return(
                    ast.BinOp(ast.Name("x", ast.Load()), ast.Add(), ast.Constant(1))
                )
            ]
        )
    )
    program = compile_source(example, limits=SMALL)
    assert torch.equal(program(torch.ones(3)), torch.full((3,), 2.0))
