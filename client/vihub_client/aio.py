"""The asyncio client: ``AsyncClient`` and ``AsyncJob``, the same surface as ``Client`` and
``Job`` with coroutines. Requests, parsing, retries and wait decisions are the shared ones
(``_ops``, ``_http``, ``_wait``); only the awaiting differs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from vihub_client import _common, _formats, _inputs, _ops
from vihub_client._http import AsyncTransport, Call, Settings
from vihub_client._ops import AUTO, AutoKey
from vihub_client._wait import ProgressDisplay, Waiter
from vihub_client.client import _label_arg, _upload_call
from vihub_client.errors import VihubError
from vihub_client.models import Dataset, JobData


class AsyncClient:
    """``Client`` for asyncio. Use ``async with AsyncClient() as client: ...``."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout | None = None,
        retries: int | None = None,
        backoff: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = Settings.resolve(base_url, api_key, timeout, retries, backoff)
        self._transport = AsyncTransport(self.settings, transport=transport)

    async def _run(self, call: Call) -> Any:
        return await self._transport.run(call)

    async def close(self) -> None:
        await self._transport.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<AsyncClient {self.settings.base_url}>"

    async def _resolve_data(self, plan: dict[str, Any] | _inputs.UploadFile | None) -> dict[str, Any] | None:
        if isinstance(plan, _inputs.UploadFile):
            return {"dataset_id": (await self.upload_dataset(plan.path)).id}
        return plan

    # -- jobs --------------------------------------------------------------------------
    async def submit(
        self,
        model: Any,
        *,
        guide: Any = None,
        data: Any = None,
        inference: Mapping[str, Any] | None = None,
        outputs: Mapping[str, Any] | None = None,
        labels: Mapping[str, str] | list[str] | None = None,
        webhook: str | Mapping[str, Any] | None = None,
        entry: str | None = None,
        idempotency_key: str | AutoKey | None = AUTO,
    ) -> AsyncJob:
        """See ``Client.submit``."""
        body, plan = _common.prepare_submit(
            model=model, entry=entry, guide=guide, data=data, inference=inference,
            outputs=outputs, labels=labels, webhook=webhook,
        )
        body = _common.with_data(body, await self._resolve_data(plan))
        return AsyncJob(self, await self._run(_ops.submit(body, idempotency_key)))

    async def job(self, job_id: str) -> AsyncJob:
        return AsyncJob(self, await self._run(_ops.get_job(job_id)))

    get_job = job

    async def jobs_page(
        self,
        *,
        state: str | list[str] | None = None,
        label: Mapping[str, str] | list[str] | None = None,
        page_token: str | None = None,
        page_size: int | None = None,
    ) -> tuple[list[AsyncJob], str | None]:
        body = await self._run(
            _ops.list_jobs(state=state, label=_label_arg(label), page_token=page_token, page_size=page_size)
        )
        return [AsyncJob(self, item) for item in body.get("items", [])], body.get("next_page_token")

    async def list_jobs(
        self,
        *,
        state: str | list[str] | None = None,
        label: Mapping[str, str] | list[str] | None = None,
        page_size: int | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[AsyncJob]:
        """``async for job in client.list_jobs(...)``: every matching job, pages fetched lazily."""
        token: str | None = None
        yielded = 0
        while True:
            jobs, token = await self.jobs_page(state=state, label=label, page_token=token, page_size=page_size)
            for job in jobs:
                if limit is not None and yielded >= limit:
                    return
                yielded += 1
                yield job
            if not token:
                return

    async def cancel(self, job_id: str) -> AsyncJob:
        return AsyncJob(self, await self._run(_ops.cancel_job(job_id)))

    async def delete_job(self, job_id: str) -> None:
        await self._run(_ops.delete_job(job_id))

    # -- datasets, catalog, validation -------------------------------------------------------
    async def upload_dataset(self, source: str | Path | Mapping[str, Any] | Any, *, name: str | None = None) -> Dataset:
        return await self._run(_upload_call(source, name))

    async def dataset(self, dataset_id: str) -> Dataset:
        return await self._run(_ops.get_dataset(dataset_id))

    async def list_datasets(self, *, limit: int | None = None) -> list[Dataset]:
        return await self._run(_ops.list_datasets(limit))

    async def catalog(self) -> list[dict[str, Any]]:
        return await self._run(_ops.catalog())

    async def catalog_entry(self, name: str) -> dict[str, Any]:
        return await self._run(_ops.catalog_entry(name))

    async def capabilities(self) -> dict[str, Any]:
        """See ``Client.capabilities``."""
        return await self._run(_ops.capabilities())

    async def validate(
        self,
        model: Any,
        *,
        guide: Any = None,
        data: Any = None,
        inference: Mapping[str, Any] | None = None,
        outputs: Mapping[str, Any] | None = None,
        entry: str | None = None,
    ) -> dict[str, Any]:
        body, plan = _common.prepare_submit(
            model=model, entry=entry, guide=guide, data=data, inference=inference,
            outputs=outputs, labels=None, webhook=None,
        )
        return await self._run(_ops.validate(_common.with_data(body, await self._resolve_data(plan))))

    async def health(self) -> dict[str, Any]:
        return await self._run(_ops.health())


class AsyncJob(JobData):
    """``Job`` for asyncio: the same attributes; I/O methods are coroutines."""

    def __init__(self, client: AsyncClient, data: dict[str, Any]) -> None:
        super().__init__(data)
        self._client = client

    async def refresh(self) -> AsyncJob:
        self._update(await self._client._run(_ops.get_job(self.id)))
        return self

    async def wait(
        self,
        timeout: float | None = None,
        *,
        progress: bool | Callable[[AsyncJob], Any] = True,
        poll_interval: float = 1.0,
        raise_on_failure: bool = True,
        sse: bool = True,
    ) -> AsyncJob:
        """See ``Job.wait``."""
        waiter = Waiter(self, timeout=timeout, poll_interval=poll_interval, sse=sse)
        transport = self._client._transport
        with ProgressDisplay(progress) as display:
            display.update(self)
            while not self.done:
                waiter.check_timeout()
                if waiter.use_sse:
                    await self._follow_stream(waiter, display)
                    if not self.done and waiter.use_sse:
                        await transport.sleep(waiter.reconnect_delay())
                else:
                    await transport.sleep(waiter.next_poll_delay())
                    waiter.check_timeout()
                    await self.refresh()
                    display.update(self)
            await self.refresh()
            display.update(self)
        waiter.finish(raise_on_failure)
        return self

    async def _follow_stream(self, waiter: Waiter, display: ProgressDisplay) -> None:
        call = _ops.events(self.id, waiter.parser.last_event_id, waiter.stream_read_timeout())
        try:
            async with self._client._transport.stream(call) as response:
                if response.status_code != 200:
                    await response.aread()
                    waiter.stream_response_error(response)
                    return
                async for line in response.aiter_lines():
                    if waiter.feed(line):
                        display.update(self)
                    if self.done:
                        return
                    waiter.check_timeout()
        except httpx.TransportError:
            waiter.stream_failed()

    async def cancel(self) -> AsyncJob:
        self._update(await self._client._run(_ops.cancel_job(self.id)))
        return self

    async def delete(self) -> None:
        await self._client._run(_ops.delete_job(self.id))

    async def params(self) -> dict[str, Any]:
        return await self._client._run(_ops.params_call(self.id))

    async def loss(self, max_points: int | None = None) -> dict[str, Any]:
        return await self._client._run(_ops.loss_call(self.id, max_points))

    async def samples(self) -> dict[str, Any]:
        return await self._client._run(_ops.samples_call(self.id))

    async def log_probs(self) -> dict[str, Any]:
        return await self._client._run(_ops.log_probs_call(self.id))

    async def diagnostics(self) -> dict[str, Any]:
        return await self._client._run(_ops.diagnostics_call(self.id))

    async def summary(self) -> dict[str, Any]:
        return await self._client._run(_ops.summary_call(self.id))

    async def to_arviz(self) -> Any:
        return _formats.inference_data(await self.samples(), await self.log_probs(), {"vihub_job_id": self.id})

    async def fetch(self, resource: str, format: str = "json", **params: Any) -> Any:  # noqa: A002
        return await self._client._run(_ops.result(self.id, resource, format, **params))

    async def download(self, directory: str | Path, format: str | None = None) -> dict[str, Path]:  # noqa: A002
        out = Path(directory)
        written = _common.write_job(out, (await self.refresh()).raw)
        for step in _common.download_steps(self.id, format):
            try:
                content = await self._client._run(step.call)
            except VihubError as error:
                if step.skip(error):
                    continue
                raise
            (out / step.filename).write_bytes(content)
            written[step.filename] = out / step.filename
        return written

    async def predict(self, new_data: Any, num_samples: int = 100) -> dict[str, Any]:
        data = await self._client._resolve_data(_inputs.plan_data(new_data))
        if data is None:
            raise ValueError("predict needs new_data")
        return await self._client._run(_ops.predict(self.id, data, num_samples))
