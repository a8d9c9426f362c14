"""The ``validate`` resource."""
