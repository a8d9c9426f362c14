"""Request dependencies as ``Annotated`` aliases: ``RuntimeDep``, ``SessionDep``, ``CurrentTenant``.

``SessionDep`` owns the request's transaction: services only ``flush()``; the dependency
commits once when the route returns (or rolls back when it raises) and *then* runs the
callbacks registered with ``after_commit`` — that is how a job id is published to the
broker only for a committed row. It is a ``scope="function"`` dependency so the commit
happens before the response is sent: a client that gets ``202`` can read its job at once.

``CurrentTenant`` authenticates ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``:
the key is hashed with sha256 and looked up through the store. With auth disabled
(embedded, single-user mode) every request acts as the default tenant.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.app import Runtime
from api.errors import Unauthorized
from store.models import Tenant
from store.repositories.api_keys import ApiKeyRepository
from store.repositories.tenants import TenantRepository, ensure_default_tenant
from store.security import hash_api_key

log = logging.getLogger("vihub.api")

_AFTER_COMMIT = "vihub_after_commit"


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(runtime: RuntimeDep) -> Iterator[Session]:
    session: Session = runtime.sessionmaker()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        callbacks = session.info.pop(_AFTER_COMMIT, [])
        session.close()
    for callback in callbacks:
        try:
            callback()
        except Exception:  # a failed side effect must not turn a committed write into a 500
            log.exception("after-commit callback failed")


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def after_commit(session: Session, callback: Callable[[], Any]) -> None:
    """Run ``callback`` after the request's transaction has committed (never on rollback)."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <api key>`")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: <api key>`")


def get_current_tenant(
    runtime: RuntimeDep,
    session: SessionDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    api_key: Annotated[str | None, Security(_api_key_header)],
) -> Tenant:
    if not runtime.settings.auth_required:
        return ensure_default_tenant(session)
    key = bearer.credentials if bearer is not None else api_key
    if not key:
        raise Unauthorized("Send an API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'.")
    api_key_row = ApiKeyRepository(session).find_active_by_hash(hash_api_key(key.strip()))
    tenant = TenantRepository(session).get(api_key_row.tenant_id) if api_key_row is not None else None
    if tenant is None:
        raise Unauthorized("The API key is not valid (unknown or revoked).")
    return tenant


CurrentTenant = Annotated[Tenant, Depends(get_current_tenant)]
