"""The ``jobs`` resource."""
