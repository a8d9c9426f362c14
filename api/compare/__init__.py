"""Comparing fitted jobs (``/v1/compare``) and posterior predictive checks (``/v1/jobs/{id}/ppc``)."""
