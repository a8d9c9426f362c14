"""The client package's version, in a module of its own so that every module of the
package can read it without importing the package ``__init__`` (an import cycle)."""

__version__ = "0.1.0"
