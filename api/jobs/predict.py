"""``POST /v1/jobs/{id}/predict``: the posterior predictive of a finished job for new data.

Runs the engine's ``predict`` in the API's process pool (same time limit as dry runs);
the result JSON of the job is handed to the child as bytes and parsed there.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from api import dryrun
from api.datasets import arrays
from api.datasets import service as datasets_service
from api.dryrun import jsonable
from api.errors import DryRunTimeout, ServiceUnavailable, inference_problem
from api.jobs import results
from api.jobs import service as jobs_service
from api.jobs.schemas import PredictOut, PredictRequest
from api.jobs.service import get_job
from api.runtime import Runtime, TenantRef


def predict(session: Session, runtime: Runtime, tenant: TenantRef, job_id: str, body: PredictRequest) -> PredictOut:
    job = get_job(session, tenant, job_id)
    result_json = results.result_json_bytes(session, job)
    if hasattr(body.data, "dataset_id"):
        new_data = datasets_service.load_fields(session, tenant, body.data.dataset_id, runtime.settings)
    else:
        new_data = arrays.from_json_mapping(body.data.inline, pointer="/data/inline")
    try:
        outcome = runtime.dry_runs.run(dryrun.predict, result_json.decode(), job.spec, new_data, body.num_samples,
                                       tenant=tenant.id)
    except dryrun.DryRunTenantBusy as exc:
        raise jobs_service.trial_runs_busy(runtime) from exc
    except dryrun.DryRunTimedOut as exc:
        raise DryRunTimeout(f"Prediction took longer than {runtime.dry_runs.time_limit_s:g} s.") from exc
    except dryrun.DryRunUnavailable as exc:
        raise ServiceUnavailable("The prediction pool is busy; retry shortly.", headers={"Retry-After": "5"}) from exc
    if outcome.get("ok"):
        return PredictOut(predictive=jsonable(outcome["predictive"]))
    if outcome.get("timeout"):
        raise DryRunTimeout(f"Prediction took longer than {runtime.dry_runs.time_limit_s:g} s.")
    if outcome.get("internal"):
        last = (outcome.get("message") or "").strip().splitlines()[-1:] or ["unknown error"]
        raise inference_problem({"kind": "predict-failed", "message": f"Prediction failed: {last[0]}"})
    raise inference_problem(outcome.get("error") or {}, source_pointer="/data/inline")
