"""Celery tasks: ``vihub.run_job(job_id)``.

The task is a thin wrapper: ``worker.runner.JobRunner`` does the work and is callable
without Celery (tests call ``run_job(job_id)`` in-process). Delivery guarantees come from
the configuration (``task_acks_late``, ``task_reject_on_worker_lost``): a worker killed
mid-job leaves the message to be redelivered, and the database (attempt cap, atomic
claim, leases, checkpoints) makes the redelivery safe. The task never raises for a job
that failed: the job's state carries the outcome, the message is acknowledged.
"""

from __future__ import annotations

from celery import shared_task

from common.broker import JOB_TASK_NAME


# A shared task binds to the vihub app when ``worker.celery_app`` imports this module, so
# this module need not import the app back (no import cycle).
@shared_task(name=JOB_TASK_NAME, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_job(job_id: str) -> str:
    """Run job ``job_id``; returns the outcome word of ``JobRunner.run``."""
    from worker.runner import JobRunner

    return JobRunner(job_id).run().value
