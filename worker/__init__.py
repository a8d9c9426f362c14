"""vihub's worker: the Celery app, the ``vihub.run_job`` task and the sweeper.

- ``worker.celery_app``: the Celery app (``celery -A worker.celery_app worker``)
- ``worker.tasks``: ``run_job(job_id)``, a thin Celery wrapper around ``worker.runner``
- ``worker.runner``: ``JobRunner`` — claim, load, fit with store-wired callbacks, write
  results, end the job in exactly one final state
- ``worker.sweeper``: republish stuck ``queued`` jobs, reclaim expired leases
- ``worker.hooks``: ``on_job_finished`` (the first webhook attempt) and the sweeper's
  webhook pass
- ``worker.webhooks``: ``WebhookSender`` — signed POSTs, retries from the delivery log

This package imports ``inference``, ``common`` (settings, the broker's publisher) and
``store``; never ``api``.
"""
