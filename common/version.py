"""vihub's version, read once from the installed distribution's metadata.

``pyproject.toml`` is the only place the number is written; the API's OpenAPI document,
``vihub --version`` and the CLI's status line all read ``VERSION``. (``inference`` reads
the same metadata itself: the library may not import this package.)
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "vihub"

try:
    VERSION = version(DISTRIBUTION)
except PackageNotFoundError:  # a source tree run without installing it
    VERSION = "0+unknown"
