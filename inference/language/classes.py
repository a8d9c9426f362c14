"""Class definitions: what models need of them, interpreted by our code.

A ``class`` statement of the source makes a :class:`UserClass`. Its methods are
``UserFunction``s run by the interpreter; the instances are objects of a real Python
class that we create (``types.new_class``) with a fixed body of our own: at most a
``forward`` that dispatches to the user's ``forward``, nothing else. So an instance can
be an ``nn.Module`` / ``PyroModule`` (Pyro and torch call it, register its parameters,
sample its ``PyroSample`` attributes), while user code sees only:

- the attributes it set itself (``self.x = ...``), the parameters, buffers and
  sub-modules registered on it, ``PyroSample``/``PyroParam`` attributes, class-level
  constants and its own methods (bound to the instance);
- ``register_buffer(name, tensor)`` and ``training``.

Bases are whitelisted: none (a plain object), ``nn.Module``, ``PyroModule``,
``PyroModule[nn.<Layer>]`` and classes of the same source. No metaclass, no decorators,
no dunder methods but ``__init__``; ``super().__init__(...)`` is the only use of
``super``. Attribute names starting with ``_`` are refused by the checker, so
``__dict__``, ``__class__``, ``mro`` and friends are unreachable; names the real class
already has (``state_dict``, ``parameters``, ...) cannot be assigned.
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Any

import torch
from pyro.nn import PyroModule, PyroParam, PyroSample

from . import guards
from .errors import ForbiddenConstruct, UnknownName

if TYPE_CHECKING:
    from .functions import UserFunction

#: "no such method/constant" (not None: a constant may be None)
MISSING = object()

#: attributes (parameters, buffers, sub-modules and plain values) one instance may hold
MAX_INSTANCE_ATTRIBUTES = 1000
#: bases of one class statement, and classes of the source in one class's MRO
MAX_CLASS_BASES = 16
MAX_CLASS_ANCESTORS = 100

#: attributes of built-in nn layers a model may read besides parameters/buffers/sub-modules
MODULE_CONFIG_ATTRS = frozenset(
    {
        "in_features",
        "out_features",
        "in1_features",
        "in2_features",
        "hidden_size",
        "input_size",
        "num_layers",
        "bidirectional",
        "batch_first",
        "embedding_dim",
        "num_embeddings",
        "normalized_shape",
        "num_features",
        "in_channels",
        "out_channels",
        "kernel_size",
        "stride",
        "padding",
        "dilation",
        "groups",
        "p",
        "training",
    }
)


class UserObject:
    """Real base of classes that subclass nothing (plain objects with attributes)."""


class ModuleClassRef:
    """A whitelisted base class as user code sees it: ``nn.Module``, ``PyroModule``,
    ``PyroModule[nn.Linear]``. Calling it builds an instance (parameter sizes checked);
    ``PyroModule[...]`` of a whitelisted layer gives another reference."""

    __slots__ = ("cls", "label", "layer_name", "layers")

    def __init__(self, cls: type, label: str, layer_name: str = "", layers: dict | None = None) -> None:
        self.cls = cls
        self.label = label
        self.layer_name = layer_name
        self.layers = layers

    def __repr__(self) -> str:
        return f"<model-language class {self.label}>"

    def __getitem__(self, layer: Any) -> ModuleClassRef:
        if self.cls is not PyroModule or self.layers is None:
            raise TypeError(f"{self.label} cannot be indexed")
        cls = self.layers.get(layer)
        if cls is None:
            raise ForbiddenConstruct(
                "PyroModule[...] takes an nn layer of the model language, e.g. PyroModule[nn.Linear]"
            )
        return ModuleClassRef(PyroModule[cls], f"PyroModule[{cls.__name__}]", cls.__name__)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        guards.check_placement(kwargs)
        if self.layer_name:
            guards.check_elements(
                guards.module_parameter_bound(self.layer_name, args, kwargs),
                f"{self.label}(...) parameters",
            )
        return self.cls(*args, **kwargs)


#: the class attribute (in the real class's own ``__dict__``, set only by ``UserClass``)
#: naming its ``UserClass``; user code cannot read names starting with `_`
_OWNER = "_vihub_user_class"
#: the instance attribute (in ``obj.__dict__``) naming the attributes a built-in layer
#: base set in its ``__init__`` (read-only for user code)
_LAYER_ATTRS = "_vihub_layer_attrs"


def user_class_of(value: Any) -> UserClass | None:
    owner = type(value).__dict__.get(_OWNER)
    return owner if type(owner) is UserClass else None


def _dispatch(name: str) -> Any:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        uc = type(self).__dict__[_OWNER]
        fn = uc.lookup(name)
        return fn(self, *args, **kwargs)

    method.__name__ = name
    return method


class BoundUserMethod:
    """``obj.method`` for a method defined in the source: calling it passes ``obj``."""

    __slots__ = ("function", "instance")

    def __init__(self, instance: Any, function: UserFunction) -> None:
        self.instance = instance
        self.function = function

    @property
    def __name__(self) -> str:  # Pyro names guides/models after their function
        return self.function.__name__

    def __repr__(self) -> str:
        return f"<model-language method {self.function.__name__}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(self.instance, *args, **kwargs)


class UserClass:
    """A class defined in the source."""

    def __init__(
        self,
        name: str,
        bases: list[Any],
        methods: dict[str, UserFunction],
        constants: dict[str, Any],
    ) -> None:
        self.name = name
        self.user_bases: list[UserClass] = [b for b in bases if type(b) is UserClass]
        real_bases: list[type] = []
        for b in bases:
            if type(b) is UserClass:
                real_bases.append(b.real)
            elif type(b) is ModuleClassRef:
                real_bases.append(b.cls)
            else:
                raise ForbiddenConstruct(
                    f"class {name} may only subclass nn.Module, PyroModule, PyroModule[nn.<layer>] "
                    "or another class of this source"
                )
        if not real_bases:
            real_bases = [UserObject]
        # creating a class costs Python time in the length of its MRO, which no budget
        # counts: a 3,300-deep chain took 13 s to compile; bound the hierarchy first
        if len(bases) > MAX_CLASS_BASES:
            raise guards.LimitExceeded(
                f"class {name} has {len(bases)} bases; at most {MAX_CLASS_BASES}",
                limit="max_class_bases",
            )
        ancestors = 1 + sum(len(b.linearized()) for b in self.user_bases)
        if ancestors > MAX_CLASS_ANCESTORS:
            raise guards.LimitExceeded(
                f"class {name} would inherit from more than {MAX_CLASS_ANCESTORS} classes of the "
                "source (a deeper hierarchy than models need)",
                limit="max_class_ancestors",
            )
        self.methods = methods
        self.constants = constants
        self.whitelisted_bases = [b for b in bases if type(b) is ModuleClassRef]
        body: dict[str, Any] = {"__module__": "vihub_model", _OWNER: self}
        if "forward" in methods:
            body["forward"] = _dispatch("forward")
        try:
            self.real = types.new_class(name, tuple(real_bases), {}, lambda ns: ns.update(body))
        except TypeError as exc:
            raise ForbiddenConstruct(f"class {name}: these bases cannot be combined ({exc})") from None
        # the source's classes in method-resolution order, computed once from the real
        # class's C3 MRO (a recursive walk of the bases is exponential in diamond chains)
        self._linear: list[UserClass] = [
            owner
            for c in self.real.__mro__
            if type(owner := c.__dict__.get(_OWNER)) is UserClass
        ]

    def __repr__(self) -> str:
        return f"<model-language class {self.name}>"

    def linearized(self) -> list[UserClass]:
        return self._linear

    def lookup(self, name: str) -> Any:
        for c in self.linearized():
            if name in c.methods:
                return c.methods[name]
        return MISSING

    def constant(self, name: str) -> Any:
        for c in self.linearized():
            if name in c.constants:
                return c.constants[name]
        return MISSING

    def is_module(self) -> bool:
        return issubclass(self.real, torch.nn.Module)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        obj = self.real.__new__(self.real)
        init = self.lookup("__init__")
        if init is MISSING:
            self.base_init(self, obj, args, kwargs)
        else:
            init(obj, *args, **kwargs)
        if self.is_module() and "_parameters" not in obj.__dict__:
            raise ForbiddenConstruct(
                f"{self.name}.__init__ must call super().__init__() before the instance is used "
                "(as nn.Module requires)"
            )
        return obj

    def base_init(self, owner: UserClass, obj: Any, args: Any, kwargs: dict) -> None:
        """``super().__init__(...)`` in a method of ``owner``."""
        for base in owner.user_bases:
            init = base.lookup("__init__")
            if init is not MISSING:
                init(obj, *args, **kwargs)
                return
            base.base_init(base, obj, args, kwargs)
            return
        refs = owner.whitelisted_bases
        if not refs:
            if args or kwargs:
                raise TypeError(f"{owner.name}() takes no arguments")
            return
        ref = refs[0]
        guards.check_placement(kwargs)
        if ref.layer_name:
            guards.check_elements(
                guards.module_parameter_bound(ref.layer_name, args, kwargs),
                f"{ref.label}.__init__ parameters",
            )
        ref.cls.__init__(obj, *args, **kwargs)
        # the configuration the layer's __init__ set (`padding`, `hidden_size`,
        # `num_layers`, `in_features`, ...): its forward reads them and the size guards
        # trust them, so user code may read but not replace them (every plain attribute
        # present now: one set before super().__init__() may have been overwritten by it)
        d = obj.__dict__
        if not ref.layer_name:  # nn.Module / PyroModule: no layer configuration
            return
        d[_LAYER_ATTRS] = frozenset(
            k for k in d if not k.startswith("_") and k != "training"
        ) | d.get(_LAYER_ATTRS, frozenset())


# ----------------------------------------------------------------------------------
# attributes of instances


def _registered(obj: Any) -> list[dict]:
    d = obj.__dict__
    return [
        d.get(k) or {}
        for k in ("_parameters", "_buffers", "_modules", "_pyro_samples", "_pyro_params")
    ]


def require_run_for_pyro_attribute(obj: Any, name: str) -> None:
    """Reading a ``PyroSample``/``PyroParam`` attribute samples / creates a param: like the
    Pyro primitives, only while the model or guide runs (not in top-level code)."""
    d = obj.__dict__
    if name in (d.get("_pyro_samples") or {}) or name in (d.get("_pyro_params") or {}):
        from .handlers import require_model_run

        require_model_run(f"reading the PyroSample/PyroParam attribute `.{name}`")


def get_instance_attribute(uc: UserClass, obj: Any, name: str) -> Any:
    require_run_for_pyro_attribute(obj, name)
    fn = uc.lookup(name)
    if fn is not MISSING:
        return BoundUserMethod(obj, fn)
    if name in obj.__dict__ or any(name in d for d in _registered(obj)):
        return getattr(obj, name)
    if name == "register_buffer" and uc.is_module():
        return _register_buffer(obj)
    # (a class-level attribute of the real class; the instance's own were found above.
    # Not `dir(obj)`: it lists and sorts every attribute, on every read)
    if name in MODULE_CONFIG_ATTRS and hasattr(type(obj), name):
        return getattr(obj, name)
    value = uc.constant(name)
    if value is not MISSING:
        return value
    if hasattr(type(obj), name):
        raise UnknownName(
            f"`.{name}` of a `{uc.name}` instance is not available in the model language: an "
            "instance offers its own attributes, parameters, sub-modules and methods"
        )
    raise UnknownName(
        f"`{uc.name}` instance has no attribute `{name}` (set it in __init__ with `self.{name} = ...`)"
    )


def _register_buffer(obj: Any) -> Any:
    def register_buffer(name: Any, tensor: Any, persistent: bool = True) -> None:
        check_attribute_name(obj, name)
        if tensor is not None and not isinstance(tensor, torch.Tensor):
            raise TypeError("register_buffer(name, tensor) takes a tensor")
        _check_count(obj)
        obj.register_buffer(name, tensor, persistent=persistent)

    return register_buffer


def check_attribute_name(obj: Any, name: Any) -> None:
    if type(name) is not str or not name.isidentifier() or name.startswith("_"):
        raise ForbiddenConstruct(
            f"attribute name {str(name)[:40]!r} is not allowed: use a name not starting with `_`"
        )
    if hasattr(type(obj), name) and name != "forward":
        raise ForbiddenConstruct(
            f"`self.{name} = ...` would replace the built-in `{name}` of the class; choose another name"
        )
    if name in (obj.__dict__.get(_LAYER_ATTRS) or ()):
        raise ForbiddenConstruct(
            f"`self.{name} = ...` would change the configuration `{name}` of the built-in layer "
            "this class extends; pass it to super().__init__(...) instead"
        )


def _check_count(obj: Any) -> None:
    n = len(obj.__dict__) + sum(len(d) for d in _registered(obj))
    if n >= MAX_INSTANCE_ATTRIBUTES:
        raise guards.LimitExceeded(
            f"an instance may hold at most {MAX_INSTANCE_ATTRIBUTES} attributes",
            limit="max_instance_attributes",
        )


def set_attribute(obj: Any, name: str, value: Any) -> None:
    """``obj.name = value``: on instances of classes of the source; on a built-in layer
    only to replace a parameter (``PyroModule[nn.Linear]``'s ``.weight = PyroSample(...)``)."""
    if user_class_of(obj) is None and isinstance(obj, torch.nn.Module):
        params = obj.__dict__.get("_parameters") or {}
        pyro_attrs = [obj.__dict__.get(k) or {} for k in ("_pyro_samples", "_pyro_params")]
        replaceable = name in params or any(name in d for d in pyro_attrs)
        if replaceable and (
            isinstance(value, (PyroSample, PyroParam, torch.nn.Parameter))
            and (isinstance(obj, PyroModule) or isinstance(value, torch.nn.Parameter))
        ):
            setattr(obj, name, value)
            return
        raise ForbiddenConstruct(
            f"`.{name} = ...` on {type(obj).__name__}: a built-in layer's attributes can only be "
            "replaced by PyroSample/PyroParam (on a PyroModule) or nn.Parameter"
        )
    if user_class_of(obj) is None:
        raise ForbiddenConstruct(
            "assigning to an attribute is only allowed on instances of classes defined in the "
            "source (`self.x = ...` in a method); use a local variable"
        )
    check_attribute_name(obj, name)
    if name == "training" and isinstance(obj, torch.nn.Module) and type(value) is not bool:
        raise ForbiddenConstruct("`self.training` may only be set to True or False")
    if not (name in obj.__dict__ or any(name in d for d in _registered(obj))):
        _check_count(obj)
    setattr(obj, name, value)


# ----------------------------------------------------------------------------------
# nn / pyro.nn members


def _pyro_sample(prior: Any) -> PyroSample:
    if not (isinstance(prior, torch.distributions.Distribution) or callable(prior)):
        raise TypeError("PyroSample(prior) takes a distribution or a function of the module")
    return PyroSample(prior)


def _pyro_param(init_value: Any = None, constraint: Any = None, event_dim: Any = None) -> PyroParam:
    if isinstance(init_value, torch.Tensor):
        guards.check_elements(guards.numel(init_value), "PyroParam(...)")
    elif init_value is not None and not callable(init_value):
        raise TypeError("PyroParam(init_value) takes a tensor or a function returning one")
    kwargs: dict = {}
    if constraint is not None:
        kwargs["constraint"] = constraint
    if event_dim is not None:
        kwargs["event_dim"] = event_dim
    return PyroParam(init_value, **kwargs)


def _parameter(data: Any = None, requires_grad: bool = True) -> torch.nn.Parameter:
    if data is None:
        data = torch.empty(0)
    if not isinstance(data, torch.Tensor):
        raise TypeError("nn.Parameter(data) takes a tensor")
    return torch.nn.Parameter(data, requires_grad=bool(requires_grad))


PYRO_SAMPLE = guards.named(_pyro_sample, "PyroSample")
PYRO_PARAM = guards.named(_pyro_param, "PyroParam")
PARAMETER = guards.named(_parameter, "Parameter")

#: nn.init functions: in place on an existing tensor, so no size can grow
NN_INIT_FUNCTIONS = [
    "uniform_",
    "normal_",
    "constant_",
    "ones_",
    "zeros_",
    "eye_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "trunc_normal_",
    "orthogonal_",
    "calculate_gain",
]
