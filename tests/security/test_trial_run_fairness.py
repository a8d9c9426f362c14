"""One tenant cannot starve another's submissions through the API's trial-run slots.

Each API process runs at most ``api.dry_run_workers`` dry runs (validations, submission
checks, predictions) at once and at most ``api.dry_run_per_tenant`` for one tenant; a
tenant's extra requests wait on the event loop for that tenant's own turn (submissions)
or are refused with 429 (validations, predictions), never holding the other tenants'
slots.
"""

from __future__ import annotations

import textwrap
import threading
import time


SLOW = textwrap.dedent("""
    import torch
    import pyro
    import pyro.distributions as dist

    def model(y):
        x = torch.ones(1_000_000)
        for i in range(1500):
            x = x + 1.0
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        pyro.sample("obs", dist.Normal(mu, 1.0), obs=y)
""")
SLOW_JOB = {"model": {"source": SLOW}, "data": {"inline": {"y": [0.5, 1.5]}}, "guide": {"auto": "AutoNormal"}}
QUICK = {"model": {"catalog": "eight_schools_noncentered"}, "guide": {"auto": "AutoNormal"}}


def test_a_burst_of_slow_validations_does_not_starve_another_tenant(client, new_tenant_headers) -> None:
    attacker, victim = new_tenant_headers(), new_tenant_headers()
    assert client.post("/v1/validate", json=QUICK, headers=victim).status_code == 200  # warm
    answers: list[int] = []

    def slow() -> None:
        answers.append(client.post("/v1/validate", json=SLOW_JOB, headers=attacker).status_code)

    burst = [threading.Thread(target=slow) for _ in range(4)]
    for thread in burst:
        thread.start()
    time.sleep(1.0)
    started = time.monotonic()
    response = client.post("/v1/validate", json=QUICK, headers=victim)
    waited = time.monotonic() - started
    for thread in burst:
        thread.join()
    assert response.status_code == 200, response.text
    assert waited < 5.0, waited  # served beside the attacker's run, not after all four
    assert answers.count(429) >= 2, answers  # the attacker's extra requests were refused
    assert answers.count(200) >= 1, answers
    again = client.post("/v1/validate", json=SLOW_JOB, headers=attacker)
    assert again.status_code == 200, again.text  # its share is free again afterwards
