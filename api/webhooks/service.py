"""Webhooks: the tenant's signing secret (read, made on first use; rotate) and the
submission-time check of a job's webhook URL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from api.deps import TenantRef
from api.errors import Unprocessable
from api.webhooks.schemas import WebhookSecretOut
from store.models import utcnow
from store.repositories.webhooks import WebhookRepository
from store.webhook_urls import WebhookUrlRefused, validate_webhook_url


def get_secret(session: Session, settings: Any, tenant: TenantRef) -> WebhookSecretOut:
    repo = WebhookRepository(session)
    repo.get_or_create_secret(tenant.id)
    return _secret_out(repo, settings, tenant)


def rotate_secret(session: Session, settings: Any, tenant: TenantRef) -> WebhookSecretOut:
    repo = WebhookRepository(session)
    repo.rotate_secret(tenant.id)
    return _secret_out(repo, settings, tenant)


def _secret_out(repo: WebhookRepository, settings: Any, tenant: TenantRef) -> WebhookSecretOut:
    state = repo.secret_state(tenant.id)
    assert state.secret is not None
    until = None
    if state.previous and state.rotated_at is not None:
        until = state.rotated_at + timedelta(seconds=settings.webhooks.rotation_overlap_s)
        if until <= utcnow():
            until = None
    return WebhookSecretOut(secret=state.secret, previous_valid_until=until)


def check_webhook_url(settings: Any, url: str | None) -> None:
    """A submitted job's ``webhook.url``: 422 (pointer ``/webhook/url``) when it can never
    be delivered (bad scheme, credentials, a loopback/private address)."""
    if url is None:
        return
    try:
        validate_webhook_url(url, allow_private=settings.webhooks_allow_private)
    except WebhookUrlRefused as exc:
        raise InvalidWebhookUrl(
            f"webhook.url: {exc.reason}.", pointer="/webhook/url",
            errors=[{"pointer": "/webhook/url", "detail": exc.reason}],
        ) from exc


class InvalidWebhookUrl(Unprocessable):
    slug, title = "invalid-webhook-url", "Webhook URL not allowed"
