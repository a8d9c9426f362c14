"""Webhooks: the tenant's signing secret (read, made on first use; rotate) and the
submission-time check of a job's webhook URL."""

from __future__ import annotations

from sqlalchemy.orm import Session

from api.errors import Unprocessable
from api.runtime import TenantRef
from api.webhooks.schemas import WebhookSecretOut
from common.settings import Settings
from common.webhooks.events import previous_secret_valid_until
from common.webhooks.urls import WebhookUrlRefused, validate_webhook_url
from store.models import utcnow
from store.repositories.webhooks import WebhookRepository


def get_secret(session: Session, settings: Settings, tenant: TenantRef) -> WebhookSecretOut:
    repo = WebhookRepository(session)
    repo.get_or_create_secret(tenant.id)
    return _secret_out(repo, settings, tenant)


def rotate_secret(session: Session, settings: Settings, tenant: TenantRef) -> WebhookSecretOut:
    repo = WebhookRepository(session)
    repo.rotate_secret(tenant.id)
    return _secret_out(repo, settings, tenant)


def _secret_out(repo: WebhookRepository, settings: Settings, tenant: TenantRef) -> WebhookSecretOut:
    state = repo.secret_state(tenant.id)
    assert state.secret is not None
    until = previous_secret_valid_until(state.rotated_at, settings.webhooks.rotation_overlap_s)
    if not state.previous or (until is not None and until <= utcnow()):
        until = None
    return WebhookSecretOut(secret=state.secret, previous_valid_until=until)


def check_webhook_url(settings: Settings, url: str | None) -> None:
    """A submitted job's ``webhook.url``: 422 (pointer ``/webhook/url``) when it can never
    be delivered (bad scheme, credentials, a loopback/private address)."""
    if url is None:
        return
    try:
        validate_webhook_url(url, allow_private=settings.webhooks.allow_private)
    except WebhookUrlRefused as exc:
        raise InvalidWebhookUrl(
            f"webhook.url: {exc.reason}.", pointer="/webhook/url",
            errors=[{"pointer": "/webhook/url", "detail": exc.reason}],
        ) from exc


class InvalidWebhookUrl(Unprocessable):
    slug, title = "invalid-webhook-url", "Webhook URL not allowed"
