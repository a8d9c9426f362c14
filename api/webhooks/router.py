"""``/v1/webhooks/secret``: the secret that signs this account's job webhooks."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CurrentTenant, RuntimeDep, SessionDep
from api.errors import problem_responses
from api.webhooks import service
from api.webhooks.schemas import WebhookSecretOut

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


@router.get("/secret", response_model=WebhookSecretOut,
            summary="This account's webhook signing secret (made on first use)",
            responses=problem_responses(401, 500))
def get_secret(runtime: RuntimeDep, session: SessionDep, tenant: CurrentTenant) -> WebhookSecretOut:
    return service.get_secret(session, runtime.settings, tenant)


@router.post("/secret/rotate", response_model=WebhookSecretOut,
             summary="Replace the signing secret (the previous one keeps signing for a while)",
             responses=problem_responses(401, 500))
def rotate_secret(runtime: RuntimeDep, session: SessionDep, tenant: CurrentTenant) -> WebhookSecretOut:
    return service.rotate_secret(session, runtime.settings, tenant)
