"""vihub's store: settings, SQLAlchemy models, repositories and artifact storage.

Shared by the API and the worker; the schema is created by Alembic (``migrations/``,
``store.migrate.upgrade``). Entry points:

- ``store.settings``: ``Settings``, ``get_settings``, ``override_settings``, ``celery_config``
- ``store.db``: ``make_engine``, ``get_engine``, ``session_factory``, ``dispose_engines``
- ``store.models``: ``Tenant``, ``ApiKey``, ``Dataset``, ``Job``, ``LossPoint``, ``Artifact``,
  ``ArtifactKind``, ``WebhookDelivery``
- ``store.job_states``: ``JobState``, the transition table, ``InvalidTransition``
- ``store.repositories``: one repository per table (all SQL lives there)
- ``store.arrays``: canonical NPZ encoding of datasets
- ``store.security``: API key generation and hashing
- ``store.problems``: problem+json documents for job errors
- ``store.migrate``: run Alembic programmatically
"""
