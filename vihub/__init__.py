"""vihub: hosted variational inference. This package holds the version and the
server-side ``vihub`` commands (``vihub.cli``: ``up``, ``api``, ``worker``, ``migrate``,
``keys``)."""

__version__ = "0.1.0"
