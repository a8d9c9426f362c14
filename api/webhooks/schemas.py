"""Response models of ``/v1/webhooks``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class WebhookSecretOut(BaseModel):
    """The tenant's Standard Webhooks signing secret."""

    secret: str = Field(description="`whsec_` + base64; pass it to `verify_webhook(headers, body, secret)`",
                        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])
    previous_valid_until: datetime | None = Field(
        None, description="After a rotation, deliveries are also signed with the previous secret until then"
    )
