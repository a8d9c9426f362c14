"""Loading what ``inference.init_from`` names: another job's params and final checkpoint.

``load_warm_start(session, job_id, init_from, has_own_checkpoint)`` returns
``(init_params, resume_from)`` for ``inference.fit``:

- ``init_params``: the source job's ``params_safetensors`` artifact (constrained guide and
  model params); the engine checks names and shapes against the new job's model/guide.
- ``resume_from``: with ``init_from.optimizer`` (``POST /v1/jobs/{id}/continue``), the
  source job's ``final_checkpoint`` (params, optimizer state, RNG, loss curve), when it
  has one (jobs finished before warm starts existed have none: they start from the
  params with a fresh optimizer). A job that has a checkpoint of its own (an earlier
  attempt died) resumes that instead.

The source job must be this job's tenant's, not deleted, and succeeded; otherwise
``WarmStartFailed`` carries the problem the job fails with (``spec-error``, pointer
``/inference/init_from/job``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from common import problems
from store.blobs import BlobNotFound
from store.job_states import JobState
from store.models import ArtifactKind
from store.repositories import ArtifactRepository, JobRepository


class WarmStartFailed(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.problem = problems.problem("spec-error", "Invalid warm start", detail,
                                        pointer="/inference/init_from/job")


def load_warm_start(session: Session, job_id: str, init_from: dict[str, Any],
                    has_own_checkpoint: bool) -> tuple[bytes | None, bytes | None]:
    jobs = JobRepository(session)
    job = jobs.get(job_id)
    source_id = str(init_from.get("job") or "")
    source = jobs.get_for_tenant(job.tenant_id, source_id) if job is not None else None
    if source is None:
        raise WarmStartFailed(f"inference.init_from: no job {source_id!r} in this account")
    if source.state != JobState.SUCCEEDED.value:
        raise WarmStartFailed(f"inference.init_from: job {source_id} is {source.state}; only a succeeded "
                              "job can be a warm start")
    artifacts = ArtifactRepository(session)
    try:
        init_params = artifacts.get_content(source.id, ArtifactKind.PARAMS_SAFETENSORS)
        resume_from = None
        if init_params is not None and init_from.get("optimizer") and not has_own_checkpoint:
            resume_from = artifacts.get_content(source.id, ArtifactKind.FINAL_CHECKPOINT)
    except BlobNotFound as exc:  # a lost blob fails this job now, not after every attempt
        raise WarmStartFailed(f"inference.init_from: job {source_id}'s stored results are missing") from exc
    if init_params is None:
        raise WarmStartFailed(f"inference.init_from: job {source_id} has no stored params")
    return init_params, resume_from
