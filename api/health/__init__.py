"""The ``health`` resource."""
