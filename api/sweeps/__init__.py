"""Sweeps (``/v1/sweeps``): many normal jobs from one base body, followed and compared together."""
