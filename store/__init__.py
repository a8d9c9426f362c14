"""vihub's store: persistence only — SQLAlchemy models, repositories and artifact storage.

Shared by the API and the worker; the schema is created by Alembic (``migrations/``,
``store.migrate.upgrade``). Settings, problem types, key hashing, webhook signing and
the array encoding live in ``common`` (the kernel), which this package imports. Entry points:

- ``store.db``: ``make_engine``, ``get_engine``, ``session_factory``, ``dispose_engines``
- ``store.models``: ``Tenant``, ``ApiKey``, ``Dataset``, ``Job``, ``LossPoint``, ``Artifact``,
  ``ArtifactKind``, ``WebhookDelivery``
- ``store.job_states``: ``JobState``, the transition table, ``InvalidTransition``
- ``store.repositories``: one repository per table (all SQL lives there)
- ``store.migrate``: run Alembic programmatically
"""
