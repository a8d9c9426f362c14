"""The client package's version, in a module of its own so that every module of the
package can read it without importing the package ``__init__`` (an import cycle).

client/pyproject.toml is the one place the number is written; this reads the installed
distribution's metadata."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vihub-client")
except PackageNotFoundError:  # a source tree used without installing it
    __version__ = "0+unknown"
