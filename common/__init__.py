"""vihub's kernel: what the API, the worker, the store and the CLI share, and nothing else.

- ``common.settings``: ``Settings`` (one pydantic-settings class, ``VIHUB_`` env),
  ``get_settings``, ``override_settings``
- ``common.version``: ``VERSION``, read from the installed distribution's metadata
- ``common.problems``: problem types (RFC 9457): the base URI, titles, job error documents
- ``common.broker``: the broker contract: ``JOB_TASK_NAME``, ``QUEUES``, ``celery_config``
  and the one ``JobPublisher`` (one retry policy)
- ``common.webhooks``: the job-end message, Standard Webhooks signing, the URL policy
- ``common.keys``: API key generation and hashing
- ``common.arrays``: the canonical NPZ encoding of datasets

It imports no project package but ``inference.limits`` (a torch-free dataclass: the
``limits`` settings section is the language's own type), and no FastAPI, Celery (except
lazily, to publish), SQLAlchemy or torch: ``api`` and ``worker`` both import it and still never import each other.
"""
