"""Resource ids in URLs and bodies: job and dataset ids are UUIDs (``store.models.new_id``).

A string that is not one names no resource: the routes answer ``404`` at once, without a
query (an arbitrary string never reaches the database).
"""

from __future__ import annotations

import uuid


def is_resource_id(value: object) -> bool:
    """True for the canonical text form of a UUID (``str(uuid.uuid4())``)."""
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False
