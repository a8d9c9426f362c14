"""vihub: hosted variational inference. This package holds the server-side ``vihub``
commands (``vihub.cli``: ``up``, ``api``, ``worker``, ``migrate``, ``keys``) and the
version (read from the installed distribution's metadata by ``common.version``)."""

from common.version import VERSION as __version__

__all__ = ["__version__"]
