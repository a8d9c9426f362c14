"""vihub's Python SDK: submit variational-inference jobs, follow them, fetch results.

    from vihub_client import Client
    with Client() as client:                      # $VIHUB_URL, $VIHUB_API_KEY
        job = client.submit("catalog:eight_schools_noncentered",
                            inference={"steps": 2000})
        job.wait()                                  # progress bar, SSE with polling fallback
        job.summary()["mu"]["mean"]
        idata = job.to_arviz()                      # needs the [arviz] extra
"""

from __future__ import annotations

from vihub_client._version import __version__  # noqa: E402

from vihub_client._ops import AUTO  # noqa: E402
from vihub_client.aio import AsyncClient, AsyncJob  # noqa: E402
from vihub_client.client import Client, Job  # noqa: E402
from vihub_client.errors import (  # noqa: E402
    APIConnectionError,
    Conflict,
    Forbidden,
    InvalidRequest,
    JobCancelled,
    JobFailed,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
    VihubError,
    WaitTimeout,
    WebhookVerificationError,
)
from vihub_client.models import Dataset, Progress  # noqa: E402
from vihub_client.sweeps import Sweep  # noqa: E402
from vihub_client.webhooks import generate_secret, sign_webhook, verify_webhook  # noqa: E402

__all__ = [
    "AUTO",
    "APIConnectionError",
    "AsyncClient",
    "AsyncJob",
    "Client",
    "Conflict",
    "Dataset",
    "Forbidden",
    "InvalidRequest",
    "Job",
    "JobCancelled",
    "JobFailed",
    "NotFound",
    "Progress",
    "RateLimited",
    "ServerError",
    "Sweep",
    "Unauthorized",
    "VihubError",
    "WaitTimeout",
    "WebhookVerificationError",
    "__version__",
    "generate_secret",
    "sign_webhook",
    "verify_webhook",
]
