"""Repositories: every SQL statement of vihub lives in this package.

One class per table on the generic ``Repository`` base; each takes a caller-owned
``Session`` and never commits. The methods of each are listed in its module docstring.
"""

from store.repositories.api_keys import ApiKeyRepository
from store.repositories.artifacts import ArtifactRepository
from store.repositories.base import Repository
from store.repositories.datasets import DatasetRepository
from store.repositories.idempotency import IdempotencyRepository
from store.repositories.jobs import (
    InvalidPageToken,
    JobFilters,
    JobPage,
    JobRepository,
    LeaseLost,
)
from store.repositories.loss_points import LossPointRepository
from store.repositories.tenants import (
    DEFAULT_TENANT_NAME,
    TenantRepository,
    ensure_default_tenant,
)

__all__ = [
    "DEFAULT_TENANT_NAME",
    "ApiKeyRepository",
    "ArtifactRepository",
    "DatasetRepository",
    "IdempotencyRepository",
    "InvalidPageToken",
    "JobFilters",
    "JobPage",
    "JobRepository",
    "LeaseLost",
    "LossPointRepository",
    "Repository",
    "TenantRepository",
    "ensure_default_tenant",
]
