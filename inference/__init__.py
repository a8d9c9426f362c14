"""vihub's inference library: the model language, the catalog, the job spec and SVI.

Usable without any server: ``inference.fit(spec, data) -> FitResult`` runs in a notebook.
This package never imports web, database or queue code.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _distribution_version

from inference._lazy import lazy_exports

# pyproject.toml is the one place the number is written. (The server reads the same
# metadata in ``common.version``; the library may not import that package.)
try:
    __version__ = _distribution_version("vihub")
except PackageNotFoundError:  # a source tree used without installing it
    __version__ = "0+unknown"

# Public names and the module each lives in. Imported lazily so that using the
# language alone does not pay for importing the whole engine (and so `import
# inference` stays cheap in the API process, which only validates).
_EXPORTS = {
    "compile_source": "inference.language",
    "bind_data": "inference.language",
    "Limits": "inference.language",
    "ModelLanguageError": "inference.language",
    "Program": "inference.language",
    "catalog": "inference.catalog",
    "JobSpec": "inference.spec",
    "fit": "inference.fitting",
    "validate": "inference.fitting",
    "predict": "inference.fitting",
    "FitCallbacks": "inference.fitting",
    "Progress": "inference.fitting",
    "FitResult": "inference.results",
    "InferenceError": "inference.errors",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
