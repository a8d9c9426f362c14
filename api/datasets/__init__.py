"""The ``datasets`` resource."""
