"""The validation pass without a run: same data resolution and dry run as a submission.

The data is read in a short session of its own, closed before the dry run: no database
connection is held while the model is traced.
"""

from __future__ import annotations

from api.datasets import service as datasets_service
from api.jobs import service as jobs_service
from api.jobs.schemas import JobCreate
from api.runtime import Runtime, TenantRef
from api.validate.schemas import ValidateOut


def validate(runtime: Runtime, tenant: TenantRef, body: JobCreate) -> ValidateOut:
    with runtime.sessionmaker() as session:
        fields, _ = datasets_service.resolve_job_data(session, tenant, body, runtime.settings)
    report = jobs_service.dry_run(runtime, body, fields, tenant)
    return ValidateOut(valid=True, report=report)
