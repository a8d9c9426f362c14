"""Lazily resolved public names for a package (PEP 562 ``__getattr__``).

``inference`` and ``inference.results`` list their public names with the module each
lives in and import that module on first use: the language alone, or the result formats
alone (the API process), then never pay for importing torch and the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(namespace: dict[str, Any], exports: Mapping[str, str]) -> tuple[Callable[[str], Any],
                                                                                 Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for the package whose globals are ``namespace``.

    ``exports`` maps a public name to its module; a name that is the module's last
    component (``"catalog": "inference.catalog"``) is the module itself. A resolved name
    is stored in ``namespace``, so the import happens once.
    """
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        module_name = exports.get(name)
        if module_name is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = import_module(module_name)
        value = module if module_name.endswith("." + name) else getattr(module, name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__
