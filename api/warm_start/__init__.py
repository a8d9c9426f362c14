"""Warm starts: ``inference.init_from`` checks and ``POST /v1/jobs/{id}/continue``."""
