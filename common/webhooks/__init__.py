"""What vihub's job-end webhooks are, in one place (see docs/webhooks.md).

- ``common.webhooks.events``: the message — event type per final state, the thin JSON
  payload, the ``webhook-id``, the retry schedule and how long a rotated secret still signs;
- ``common.webhooks.signing``: Standard Webhooks secrets and signatures (server side);
- ``common.webhooks.urls``: the URL policy (syntax, public addresses only, DNS pinning),
  checked by the API at submission and by the sender at every attempt.

Who does what with them: ``store.repositories.webhooks`` (secrets and the delivery log,
SQL only), ``api.webhooks`` (the secret resource; the submission-time URL check),
``worker.webhooks`` (the sender) and ``worker.hooks`` (when it is called).
"""
