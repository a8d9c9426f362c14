"""Comparison tables and posterior predictive checks of a tenant's succeeded jobs.

``compare_jobs``: every job must be this tenant's (404), succeeded (409
``results-not-ready``) and fitted on the same data (one dataset id; 422
``different-data``): a table across datasets compares nothing. The numbers are
computed from the stored results by ``api.compare.table`` (read its docstring for the
recommendation rule). ``ppc``: ``api.compare.ppc`` on the job's ``observed_npz`` and
predictive draws (409 ``no-predictive`` for a job fitted without ``outputs.predictive``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from api.compare import ppc as ppc_stats
from api.compare.table import Member, comparison
from api.runtime import TenantRef
from api.errors import Conflict, QuotaExceeded, Unprocessable
from api.jobs.results import load_result, require_succeeded, stored_blob
from api.jobs.service import get_job
from inference.results.formats import read_npz, read_samples
from store.models import ArtifactKind, Job
from store.repositories.artifacts import ArtifactRepository

MAX_COMPARED = 64
# The table is computed in the API process from each job's whole result JSON, which a
# tenant can make hundreds of MB (num_samples x observations of pointwise log-lik); parsed,
# it takes ~7x its size. 64 such jobs in one request would take the API process (every
# tenant's) down, so the stored size is checked before anything is read.
MAX_COMPARED_RESULT_BYTES = 256 * 1024 * 1024


class DifferentData(Unprocessable):
    slug, title = "different-data", "The jobs were not fitted on the same data"


class NoPredictive(Conflict):
    slug, title = "no-predictive", "The job has no posterior predictive draws"


def parse_job_ids(values: Sequence[str]) -> list[str]:
    """``jobs=a,b`` and ``jobs=a&jobs=b`` alike, duplicates dropped, order kept."""
    ids: list[str] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if part and part not in ids:
                ids.append(part)
    if not ids:
        raise Unprocessable("Give the jobs to compare: ?jobs=<id>,<id>...", errors=[{"parameter": "jobs"}])
    if len(ids) > MAX_COMPARED:
        raise Unprocessable(f"At most {MAX_COMPARED} jobs can be compared at once.",
                            errors=[{"parameter": "jobs", "detail": f"{len(ids)} given"}])
    return ids


def members_for(session: Session, tenant: TenantRef, job_ids: Sequence[str],
                points: dict[str, Any] | None = None) -> list[Member]:
    jobs = [get_job(session, tenant, job_id) for job_id in job_ids]
    for job in jobs:
        require_succeeded(job)
    datasets = {job.dataset_id for job in jobs}
    if len(datasets) > 1:
        raise DifferentData("The jobs were fitted on different datasets; compare fits of the same data.",
                            datasets={job.id: job.dataset_id for job in jobs})
    _check_result_bytes(session, jobs)
    return [Member(job_id=job.id, spec=job.spec or {}, result=load_result(session, job), labels=job.labels or {},
                   created_at=job.created_at.isoformat() if job.created_at else None,
                   point=(points or {}).get(job.id)) for job in jobs]


def _check_result_bytes(session: Session, jobs: Sequence[Job]) -> None:
    artifacts = ArtifactRepository(session)
    sizes = {}
    for job in jobs:
        meta = artifacts.get(job.id, ArtifactKind.RESULT_JSON)
        sizes[job.id] = int(meta.size_bytes) if meta is not None else 0
    total = sum(sizes.values())
    if total > MAX_COMPARED_RESULT_BYTES:
        raise QuotaExceeded(
            f"The stored results of these jobs are {total} bytes; a comparison reads at most "
            f"{MAX_COMPARED_RESULT_BYTES}. Compare fewer jobs, or fits with fewer outputs.num_samples / "
            "log_prob_draws.", limit=MAX_COMPARED_RESULT_BYTES, result_bytes=sizes)


def compare_jobs(session: Session, tenant: TenantRef, job_ids: Sequence[str], *, sort: str = "elbo",
                 order: str = "desc", points: dict[str, Any] | None = None,
                 notes: Sequence[str] = ()) -> dict[str, Any]:
    members = members_for(session, tenant, job_ids, points)
    table = comparison(members, sort=sort, descending=order == "desc")
    table["notes"] = list(notes) + table["notes"]
    return table


def job_ppc(session: Session, tenant: TenantRef, job_id: str, quantiles: Sequence[float]) -> dict[str, Any]:
    job = get_job(session, tenant, job_id)
    require_succeeded(job)
    _, predictive = read_samples(load_result(session, job))
    blob = stored_blob(session, job, ArtifactKind.OBSERVED_NPZ)
    if not predictive or blob is None:
        raise NoPredictive(f"Job {job.id} was fitted without outputs.predictive (or before /ppc existed); "
                           "submit it again with outputs.predictive: true.")
    observed = read_npz(blob)
    return {"job_id": job.id, **ppc_stats.ppc(observed, predictive, quantiles)}
