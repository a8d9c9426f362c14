"""Sweeps and comparisons in the SDK: ``Client.sweep(...)``, ``Client.compare([...])``.

``Client.sweep`` posts ``/v1/sweeps`` and returns a :class:`Sweep` handle: ``refresh()``,
``wait()``, ``jobs()`` (the member ``Job`` handles), ``comparison()`` (a pandas
``DataFrame``, one row per succeeded member), ``to_arviz()`` (``{job_id: InferenceData}``),
``cancel()``, ``delete()``. ``Client.compare`` is the comparison table of any jobs fitted
on the same data, also as a ``DataFrame`` (``df.attrs`` holds the recommended job, the
rule that chose it and the notes). pandas is optional (``pip install vihub-client[pandas]``):
``comparison(raw=True)`` returns the JSON table without it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from vihub_client._http import Call

if TYPE_CHECKING:  # pragma: no cover
    from vihub_client.client import Client, Job

# Columns first in the DataFrame, in this order (the rest follow).
COLUMNS = ("recommended", "trusted", "guide", "lr", "elbo", "elbo_se", "k_hat", "k_hat_reading", "elpd_loo",
           "elpd_loo_se", "elpd_diff", "elpd_diff_se", "loo_weight", "p_loo", "steps", "wall_s", "converged")


# ---------------------------------------------------------------------------------------
# Calls


def _sweep_path(sweep_id: str, *rest: str) -> str:
    return "/".join(["/v1/sweeps", quote(str(sweep_id), safe=""), *rest])


def create_call(body: dict[str, Any], idempotency_key: str | None) -> Call:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    return Call("POST", "/v1/sweeps", json=body, headers=headers, idempotent=bool(idempotency_key))


def get_call(sweep_id: str) -> Call:
    return Call("GET", _sweep_path(sweep_id))


def comparison_call(sweep_id: str, sort: str, order: str) -> Call:
    return Call("GET", _sweep_path(sweep_id, "comparison"), params={"sort": sort, "order": order})


def compare_call(job_ids: Sequence[str], sort: str, order: str) -> Call:
    return Call("GET", "/v1/compare", params={"jobs": ",".join(job_ids), "sort": sort, "order": order})


def cancel_call(sweep_id: str) -> Call:
    return Call("POST", _sweep_path(sweep_id, "cancel"))


def delete_call(sweep_id: str) -> Call:
    return Call("DELETE", _sweep_path(sweep_id))


def continue_call(job_id: str, steps: int, labels: Mapping[str, str] | None, idempotency_key: str | None) -> Call:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    return Call("POST", f"/v1/jobs/{quote(str(job_id), safe='')}/continue",
                json={"steps": int(steps), "labels": dict(labels or {})}, headers=headers,
                idempotent=bool(idempotency_key))


def ppc_call(job_id: str, quantiles: Sequence[float] | None) -> Call:
    params = {"quantiles": ",".join(f"{q:g}" for q in quantiles)} if quantiles else None
    return Call("GET", f"/v1/jobs/{quote(str(job_id), safe='')}/ppc", params=params)


def sweep_body(base: Mapping[str, Any], *, axes: Mapping[str, Sequence[Any]] | None,
               points: Sequence[Mapping[str, Any]] | None, name: str | None,
               labels: Mapping[str, str] | None) -> dict[str, Any]:
    if (axes is None) == (points is None):
        raise ValueError("give exactly one of axes (a grid) or points (a list of overrides)")
    body: dict[str, Any] = {"base": dict(base)}
    if axes is not None:
        body["axes"] = {path: list(values) for path, values in axes.items()}
    else:
        body["points"] = [dict(point) for point in points or []]
    if name is not None:
        body["name"] = name
    if labels:
        body["labels"] = dict(labels)
    return body


# ---------------------------------------------------------------------------------------
# Tables


def comparison_frame(table: Mapping[str, Any]) -> Any:
    """The comparison table as a pandas ``DataFrame`` indexed by job id, rows in the
    server's order; ``attrs``: ``recommended``, ``rule``, ``notes``."""
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("comparison tables as DataFrames need pandas: pip install 'vihub-client[pandas]' "
                          "(or pass raw=True for the JSON table)") from exc
    rows = []
    for row in table.get("rows", []):
        flat = {k: v for k, v in row.items() if k not in ("point", "model", "labels")}
        for path, value in (row.get("point") or {}).items():
            flat[f"point:{path}"] = value
        model = row.get("model") or {}
        flat["model"] = f"catalog:{model['catalog']}" if "catalog" in model else model.get("entry", "source")
        rows.append(flat)
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame = frame.set_index("job_id")
        first = [c for c in COLUMNS if c in frame.columns]
        frame = frame[first + [c for c in frame.columns if c not in first]]
    frame.attrs.update({"recommended": table.get("recommended"), "rule": table.get("rule"),
                        "notes": list(table.get("notes") or [])})
    return frame


# ---------------------------------------------------------------------------------------
# The handle


class Sweep:
    """A sweep on the server. Attributes (``state``, ``done``, ``counts``, ``progress``,
    ``members``) are as of the last ``refresh()``/``wait()``."""

    def __init__(self, client: Client, data: dict[str, Any]) -> None:
        self._client = client
        self._update(data)

    def _update(self, data: dict[str, Any]) -> None:
        self.raw = data
        self.id: str = data["id"]
        self.name: str | None = data.get("name")
        self.state: str = data.get("state", "queued")
        self.done: bool = bool(data.get("done"))
        self.counts: dict[str, int] = dict(data.get("counts") or {})
        self.progress: float = float(data.get("progress") or 0.0)
        self.members: list[dict[str, Any]] = list(data.get("members") or [])

    def __repr__(self) -> str:
        return f"<Sweep {self.id} {self.state} {self.counts}>"

    def refresh(self) -> Sweep:
        self._update(self._client._run(get_call(self.id)))
        return self

    def wait(self, timeout: float | None = None, *, poll_interval: float = 2.0) -> Sweep:
        """Poll until every member has ended (``TimeoutError`` after ``timeout`` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.refresh().done:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"sweep {self.id} not done after {timeout} s: {self.counts}")
            self._client._transport.sleep(poll_interval)
        return self

    def jobs(self) -> list[Job]:
        """The member jobs (normal ``Job`` handles), in point order."""
        return [self._client.job_handle(member["job"]) for member in self.members]

    def comparison(self, *, sort: str = "elbo", order: str = "desc", raw: bool = False) -> Any:
        table = self._client._run(comparison_call(self.id, sort, order))
        return table if raw else comparison_frame(table)

    def to_arviz(self) -> dict[str, Any]:
        """``{job_id: InferenceData}`` of the succeeded members."""
        return {job.id: job.to_arviz() for job in self.jobs() if job.state == "succeeded"}

    def cancel(self) -> Sweep:
        self._update(self._client._run(cancel_call(self.id)))
        return self

    def delete(self) -> None:
        self._client._run(delete_call(self.id))


def new_key(idempotency_key: Any) -> str | None:
    from vihub_client._ops import AutoKey

    return uuid.uuid4().hex if isinstance(idempotency_key, AutoKey) else idempotency_key
