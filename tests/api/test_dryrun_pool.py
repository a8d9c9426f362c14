"""The dry-run pool: a fresh process per call, time limits inside the child and from the parent.

Child functions live in this module (importable by the forked child: the forkserver
sends ``sys.path`` along). They follow the pool's calling convention
``fn(*args, time_limit_s)``.
"""

from __future__ import annotations

import signal
import time

import pytest

from api.dryrun import DryRunPool, DryRunTimedOut, _run_guarded


def spin_forever(time_limit_s: float) -> dict:
    def body() -> dict:
        while True:
            pass

    return _run_guarded(body, time_limit_s)


def ignore_alarm_and_sleep(seconds: float, time_limit_s: float) -> dict:
    # Stands for a child stuck in native code, where SIGALRM cannot interrupt it.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(seconds)
    return {"ok": True}


def answer(value: int, time_limit_s: float) -> dict:
    return {"ok": True, "value": value}


def leave_a_mark(time_limit_s: float) -> dict:
    # What a hostile model would try: leave state behind for the next call in this process.
    import os

    import pyro

    previous = pyro.get_param_store().get_param("planted").item() if "planted" in pyro.get_param_store() else None
    pyro.param("planted", lambda: __import__("torch").tensor(1.0))
    return {"ok": True, "pid": os.getpid(), "previous": previous}


@pytest.fixture
def pool():
    # Generous wait while the child starts (it imports torch); tests shorten it after.
    pool = DryRunPool(max_workers=1, time_limit_s=0.5, queue_wait_s=60.0)
    assert pool.run(answer, 0) == {"ok": True, "value": 0}
    yield pool
    pool.shutdown()


def test_a_runaway_model_is_stopped_by_the_child_alarm(pool):
    start = time.monotonic()
    assert pool.run(spin_forever) == {"ok": False, "timeout": True}
    assert pool.run(answer, 7) == {"ok": True, "value": 7}  # the next call is served
    assert time.monotonic() - start < 30


def test_every_call_runs_in_a_fresh_process_that_starts_clean(pool):
    first, second = pool.run(leave_a_mark), pool.run(leave_a_mark)
    assert first["ok"] and second["ok"]
    assert first["pid"] != second["pid"]
    assert second["previous"] is None  # nothing the first call did is visible to the second


def test_a_wedged_child_is_killed_and_the_pool_replaced(pool):
    pool.queue_wait_s = 1.0
    start = time.monotonic()
    with pytest.raises(DryRunTimedOut):
        pool.run(ignore_alarm_and_sleep, 120.0)
    assert time.monotonic() - start < 60  # did not wait for the sleeping child
    pool.queue_wait_s = 60.0  # the replacement child starts cold
    assert pool.run(answer, 3) == {"ok": True, "value": 3}


def test_revoked_keys_stop_working_after_the_cache_ttl(api_sqlite):
    from api.runtime import TenantCache
    from common.keys import hash_api_key
    from store.repositories.api_keys import ApiKeyRepository

    tenant, key = api_sqlite.new_tenant()
    headers = {"Authorization": f"Bearer {key}"}
    runtime = api_sqlite.runtime
    saved, runtime.tenants = runtime.tenants, TenantCache(ttl_s=0.0)
    try:
        assert api_sqlite.client.get("/v1/jobs", headers=headers).status_code == 200
        with api_sqlite.session() as session:
            repo = ApiKeyRepository(session)
            key_id = repo.find_active_by_hash(hash_api_key(key)).id
            assert repo.revoke(tenant.id, key_id)
        assert api_sqlite.client.get("/v1/jobs", headers=headers).status_code == 401
    finally:
        runtime.tenants = saved
