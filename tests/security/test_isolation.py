"""The process boundary (inference.sandbox, api.dryrun): fresh process per call, OS limits,
nothing unpickled from the child, nothing outliving its parent.

Every attack here assumes the model language has already been bypassed: the child
functions below do in Python what a hostile source would do after an escape, so these
tests hold whatever the language lets through.

Child functions live in this module (the forked child imports it by name: the
forkserver sends ``sys.path`` along) and follow the dry-run pool's calling convention
``fn(*args, time_limit_s)``, or the sandbox's ``fn(channel, payload)``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from api.dryrun import DryRunPool, DryRunTimedOut, dry_run
from inference.sandbox import _ENV_KEEP_PREFIXES, ResourceLimits, SandboxError, run_in_sandbox

MB = 1024 * 1024

VICTIM_SPEC = {
    "model": {"source": textwrap.dedent("""
        import pyro
        import pyro.distributions as dist

        def model(y):
            mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
            with pyro.plate("data", len(y)):
                pyro.sample("obs", dist.Normal(mu, 1.0), obs=y)
    """)},
    "guide": {"auto": "AutoNormal"},
    "inference": {"steps": 10, "seed": 0},
}
VICTIM_DATA = {"y": [41.5, 42.5, 42.0]}


# ---- child functions ----------------------------------------------------------------


class _Spy:
    """A Pyro messenger that records and rewrites every observed value it sees."""

    seen: list = []

    def __enter__(self):
        from pyro.poutine.runtime import _PYRO_STACK

        _PYRO_STACK.append(self)
        return self

    def _process_message(self, msg):
        if msg.get("is_observed"):
            _Spy.seen.append(msg["value"])
            msg["value"] = msg["value"] * 0

    def _postprocess_message(self, msg):
        pass


def plant_a_spy(time_limit_s: float) -> dict:
    """Leave a handler on Pyro's process-global stack, as the reported attack did."""
    _Spy().__enter__()
    from pyro.poutine.runtime import _PYRO_STACK

    return {"ok": True, "stack": len(_PYRO_STACK), "pid": os.getpid()}


def pyro_state(time_limit_s: float) -> dict:
    import pyro
    from pyro.poutine.runtime import _PYRO_STACK

    return {"ok": True, "stack": len(_PYRO_STACK), "params": list(pyro.get_param_store().keys()),
            "spied": len(_Spy.seen), "pid": os.getpid()}


def what_the_child_holds(time_limit_s: float) -> dict:
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # the directory listing's own descriptor, closed by now
            continue
    sockets = [t for t in targets if t.startswith("socket:")]
    return {"ok": True, "env": sorted(os.environ), "sockets": len(sockets), "fds": targets}


def busy_for(seconds: float, time_limit_s: float) -> dict:
    time.sleep(seconds)
    return {"ok": True, "pid": os.getpid()}


def send_garbage(channel, payload) -> None:
    channel.conn.send_bytes(b"\x80\x04not json at all")


def send_too_much(channel, payload) -> None:
    channel.send({"final": True, "op": "outcome"}, {"big": b"x" * payload})


def sleep_forever(channel, payload) -> None:
    print(os.getpid(), flush=True)
    time.sleep(3600)


# ---- tests --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pool():
    pool = DryRunPool(max_workers=2, time_limit_s=20.0, queue_wait_s=120.0, memory_bytes=512 * MB,
                      cpu_seconds=30)
    yield pool
    pool.shutdown()


def test_a_handler_left_on_pyros_stack_never_reaches_the_next_call(pool):
    planted = pool.run(plant_a_spy)
    assert planted["ok"] and planted["stack"] == 1

    report = pool.run(dry_run, VICTIM_SPEC, VICTIM_DATA, None)
    assert report["ok"], report
    after = pool.run(pyro_state)
    assert after["stack"] == 0 and after["spied"] == 0 and after["params"] == []
    assert len({planted["pid"], after["pid"]}) == 2


def test_one_tenant_cannot_hold_every_trial_run_slot():
    import threading

    from api.dryrun import DryRunTenantBusy

    pool = DryRunPool(max_workers=2, per_tenant=1, time_limit_s=30.0, queue_wait_s=120.0)
    pool.run(busy_for, 0.0, tenant="warm-up")  # the forkserver is up before timing anything
    holder = threading.Thread(target=pool.run, args=(busy_for, 4.0), kwargs={"tenant": "attacker"})
    holder.start()
    time.sleep(0.5)
    started = time.monotonic()
    with pytest.raises(DryRunTenantBusy):
        pool.run(busy_for, 0.0, tenant="attacker")  # refused at once, not queued
    assert time.monotonic() - started < 1.0
    assert pool.run(busy_for, 0.0, tenant="victim")["ok"]  # the other tenant is served
    assert time.monotonic() - started < 3.5  # ... without waiting for the attacker's run
    holder.join()
    assert pool.run(busy_for, 0.0, tenant="attacker")["ok"]  # its share is back


def test_the_child_holds_no_secrets_and_no_inherited_sockets(pool):
    held = pool.run(what_the_child_holds)
    # Only an allow-list of runtime variables survives (no VIHUB_DATABASE_URL, no keys).
    assert held["env"] and all(k.startswith(_ENV_KEEP_PREFIXES) for k in held["env"]), held["env"]
    # Only the channel back to the parent is a socket (a pipe pair may be sockets too).
    assert held["sockets"] <= 2, held


def test_memory_beyond_the_limit_is_a_resource_limit_not_a_crash():
    pool = DryRunPool(time_limit_s=20.0, queue_wait_s=120.0, memory_bytes=256 * MB, cpu_seconds=30)
    bomb = dict(VICTIM_SPEC, model={"source": textwrap.dedent("""
        import torch

        def model():
            kept = []
            for i in range(40):
                kept.append(torch.zeros(40_000_000))
            return kept
    """)})
    outcome = pool.run(dry_run, bomb, {}, None)
    assert outcome["ok"] is False
    error = outcome["error"]
    assert error["kind"] == "resource-limit" and error["limit"] == "memory" and error["limit_value"] == 256


def test_running_out_of_memory_inside_the_validation_pass_is_the_memory_limit():
    # The allocation fails inside Pyro's trace on a later model call, where the
    # validation pass would report it as a model/guide mismatch.
    pool = DryRunPool(time_limit_s=20.0, queue_wait_s=120.0, memory_bytes=256 * MB, cpu_seconds=30)
    bomb = dict(VICTIM_SPEC, model={"source": textwrap.dedent("""
        import torch
        import pyro
        import pyro.distributions as dist

        CALLS = []

        def model():
            CALLS.append(1)
            if len(CALLS) > 1:
                for i in range(40):
                    CALLS.append(torch.zeros(40_000_000))
            pyro.sample("mu", dist.Normal(0.0, 1.0))
    """)})
    outcome = pool.run(dry_run, bomb, {}, None)
    assert outcome["ok"] is False and outcome["error"]["kind"] == "resource-limit", outcome


def test_cpu_time_beyond_the_limit_is_a_resource_limit():
    pool = DryRunPool(time_limit_s=60.0, queue_wait_s=120.0, memory_bytes=1024 * MB, cpu_seconds=2)
    spin = dict(VICTIM_SPEC, model={"source": textwrap.dedent("""
        import torch

        def model():
            x = torch.ones(5_000_000)
            for i in range(100_000):
                x = x * 1.0000001
            return x
    """)})
    started = time.monotonic()
    outcome = pool.run(dry_run, spin, {}, None)
    assert outcome["error"]["kind"] == "resource-limit" and outcome["error"]["limit"] == "cpu", outcome
    assert time.monotonic() - started < 30


def test_a_timeout_inside_user_code_is_reported_as_the_timeout():
    pool = DryRunPool(time_limit_s=1.0, queue_wait_s=120.0)
    loop = dict(VICTIM_SPEC, model={"source": textwrap.dedent("""
        import torch

        def model():
            x = torch.ones(2_000_000)
            for i in range(90_000):
                x = x + 1.0
            return x
    """)})
    try:
        outcome = pool.run(dry_run, loop, {}, None)
    except DryRunTimedOut:
        return  # the parent's deadline answered: also the timeout problem
    assert outcome == {"ok": False, "timeout": True}


def test_nothing_from_the_child_is_unpickled_and_sizes_are_capped():
    with pytest.raises(SandboxError) as garbage:
        run_in_sandbox(f"{__name__}:send_garbage", None, ResourceLimits(wall_seconds=60))
    assert garbage.value.reason == "protocol"
    with pytest.raises(SandboxError) as too_much:
        run_in_sandbox(f"{__name__}:send_too_much", 2 * MB, ResourceLimits(wall_seconds=60),
                       max_message_bytes=1 * MB)
    assert too_much.value.reason == "protocol"


def test_a_sandboxed_child_dies_with_its_parent(tmp_path: Path):
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path[:0] = {[str(Path(__file__).parent), *sys.path]!r}
        from inference.sandbox import Sandbox, ResourceLimits

        if __name__ == "__main__":
            box = Sandbox("{__name__}:sleep_forever", None, ResourceLimits(wall_seconds=3600))
            box.start()
            print(box.pid, flush=True)
            import time
            time.sleep(3600)
    """))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        child_pid = int(parent.stdout.readline())
        os.kill(child_pid, 0)  # alive
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(child_pid, 0)
        except ProcessLookupError:
            return
        if _is_zombie(child_pid):
            return
        time.sleep(0.2)
    os.kill(child_pid, signal.SIGKILL)
    pytest.fail("the sandboxed child outlived its parent")


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True
