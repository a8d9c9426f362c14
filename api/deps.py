"""Request dependencies as ``Annotated`` aliases: ``RuntimeDep``, ``SessionDep``, ``CurrentTenant``.

``SessionDep`` owns the request's transaction: services only ``flush()``; the dependency
commits once when the route returns (or rolls back when it raises) and *then* runs the
callbacks registered with ``after_commit`` — that is how a job id is published to the
broker only for a committed row. It is a ``scope="function"`` dependency so the commit
happens before the response is sent: a client that gets ``202`` can read its job at once.

``CurrentTenant`` authenticates ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``:
the key is hashed with sha256 and looked up through the store (cached per process for a
few seconds, see ``api.runtime.TenantCache``) in a short session of its own, never the request's:
the lookup's connection goes back to the pool before the route runs. With auth disabled
(embedded, single-user mode) every request acts as the default tenant, created in a
transaction of its own that has committed before its id is cached.

Two bounded resources meet here: the threadpool (anyio's tokens) and the DB connection
pool. A request must never hold one while waiting for the other, or a burst can wedge
the process (connections held by sessions waiting for a thread to commit, threads
waiting for a connection). So the commit/rollback of ``SessionDep`` runs on a dedicated
executor with one thread per pooled connection (``Runtime.release_executor``), never on
the shared threadpool.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from api.errors import Unauthorized, UnknownQueryParameter
from api.runtime import Runtime, TenantRef
from common.keys import hash_api_key
from store.repositories.api_keys import ApiKeyRepository
from store.repositories.tenants import TenantRepository, ensure_default_tenant

log = logging.getLogger("vihub.api")

_AFTER_COMMIT = "vihub_after_commit"


# The dependencies are coroutines that hand only blocking database work to the thread
# pool: every sync dependency would cost a thread hop per request (most of the latency
# of a cheap GET, measured by bench/bench_api.py).


async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def run_release(runtime: Runtime, fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(runtime.release_executor, fn, *args)


async def get_session(runtime: RuntimeDep) -> AsyncIterator[Session]:
    # Creating a Session does no I/O; it connects on first use, in the route's thread.
    session: Session = runtime.sessionmaker()
    try:
        yield session
    except BaseException:
        await run_release(runtime, _rollback_and_close, session)
        raise
    await run_release(runtime, _commit_and_close, session)


def _rollback_and_close(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT, None)
    try:
        session.rollback()
    finally:
        session.close()


def _commit_and_close(session: Session) -> None:
    try:
        session.commit()
    except BaseException:
        _rollback_and_close(session)
        raise
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


async def get_current_tenant(
    runtime: RuntimeDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    api_key: Annotated[str | None, Security(_api_key_header)],
) -> TenantRef:
    cache = runtime.tenants
    if not runtime.settings.auth_required:
        return cache.get("") or cache.put("", await run_in_threadpool(_default_tenant, runtime))
    key = bearer.credentials if bearer is not None else api_key
    if not key:
        raise Unauthorized("Send an API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'.")
    key_hash = hash_api_key(key.strip())
    cached = cache.get(key_hash)
    if cached is not None:
        return cached
    tenant = await run_in_threadpool(_tenant_for_key, runtime, key_hash)
    if tenant is None:
        raise Unauthorized("The API key is not valid (unknown or revoked).")
    return cache.put(key_hash, tenant)


def ensure_default_tenant_committed(sessionmaker: sessionmaker[Session]) -> TenantRef:
    """The embedded default tenant, created (if missing) and committed in a transaction of
    its own: never inside a request's transaction, whose rollback would leave a cached id
    of a row that does not exist."""
    with sessionmaker.begin() as session:
        tenant = ensure_default_tenant(session)
        return TenantRef(tenant.id, tenant.name)


def _default_tenant(runtime: Runtime) -> TenantRef:
    return ensure_default_tenant_committed(runtime.sessionmaker)


def _tenant_for_key(runtime: Runtime, key_hash: str) -> TenantRef | None:
    with runtime.sessionmaker() as session:
        api_key_row = ApiKeyRepository(session).find_active_by_hash(key_hash)
        tenant = TenantRepository(session).get(api_key_row.tenant_id) if api_key_row is not None else None
        return TenantRef(tenant.id, tenant.name) if tenant is not None else None


CurrentTenant = Annotated[TenantRef, Depends(get_current_tenant)]


# ---------------------------------------------------------------------------------------
# List endpoints: AIP-158 paging and no silently ignored query parameters.

MAX_PAGE_SIZE = 500


def read_page_size(
    page_size: Annotated[int | None, Query(ge=1, le=MAX_PAGE_SIZE,
                                           description="Items per page (absent: the endpoint's default)")] = None,
    limit: Annotated[int | None, Query(ge=1, le=MAX_PAGE_SIZE, deprecated=True,
                                       description="Deprecated: the old name of page_size")] = None,
) -> int | None:
    """The ``page_size`` query parameter of a list endpoint (AIP-158), 1-500, or None.

    ``limit`` is its deprecated old name: released SDKs (vihub-client <= 0.1) and the
    dashboard still send it. ``page_size`` wins when both are given.
    """
    return page_size if page_size is not None else limit


PageSize = Annotated[int | None, Depends(read_page_size)]


async def only_known_query(request: Request) -> None:
    """400 ``unknown-query-parameter`` for a query parameter the route does not declare:
    a misspelt filter (``?sate=running``) must not silently list everything."""
    route: Any = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known = _query_names(dependant)  # a walk over a few dependencies: cheaper than a cache
    unknown = sorted(set(request.query_params.keys()) - known)
    if unknown:
        raise UnknownQueryParameter(
            f"Unknown query parameter{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}; "
            f"this endpoint takes {', '.join(sorted(known)) or 'none'}.",
            errors=[{"parameter": name, "in": "query", "detail": "unknown query parameter"} for name in unknown],
        )


def _query_names(dependant: Any) -> set[str]:
    """The query parameters a route declares, its dependencies' included."""
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


KnownQueryOnly = Depends(only_known_query)
