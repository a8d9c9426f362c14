"""The ``catalog`` resource."""
