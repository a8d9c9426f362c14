"""The synchronous client: ``Client`` and the ``Job`` handle it returns."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from vihub_client import _common, _formats, _inputs, _ops
from vihub_client import sweeps as _sweeps
from vihub_client._http import Call, Settings, SyncTransport
from vihub_client._ops import AUTO, AutoKey
from vihub_client._wait import ProgressDisplay, Waiter
from vihub_client.errors import VihubError
from vihub_client.models import Dataset, JobData


# Data files from this size on go up through the resumable chunked protocol (``upload``).
CHUNKED_UPLOAD_BYTES = 8 * 1024 * 1024


class Client:
    """A connection to a vihub server.

    ``base_url`` defaults to ``$VIHUB_URL`` (else ``http://127.0.0.1:8000``), ``api_key`` to
    ``$VIHUB_API_KEY``. Requests answered 429/503 (and connection failures) are retried up
    to ``retries`` times with exponential backoff, honouring ``Retry-After``.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout | None = None,
        retries: int | None = None,
        backoff: float | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = Settings.resolve(base_url, api_key, timeout, retries, backoff)
        self._transport = SyncTransport(self.settings, transport=transport)

    # -- plumbing ----------------------------------------------------------------------
    def _run(self, call: Call) -> Any:
        return self._transport.run(call)

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Client {self.settings.base_url}>"

    def _resolve_data(self, plan: dict[str, Any] | _inputs.UploadFile | None) -> dict[str, Any] | None:
        if isinstance(plan, _inputs.UploadFile):
            if plan.path.stat().st_size >= CHUNKED_UPLOAD_BYTES:  # too big for one request body
                return {"dataset_id": self.upload(plan.path, progress=False).id}
            return {"dataset_id": self.upload_dataset(plan.path).id}
        return plan

    # -- jobs --------------------------------------------------------------------------
    def submit(
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
    ) -> Job:
        """Submit a job and return its handle (state ``queued``).

        ``model``: source text, a ``.py`` path, ``"catalog:NAME"`` (or a bare catalog name),
        or the REST dict. ``data``: a dict of arrays, a DataFrame, a CSV/NPZ/Parquet/JSON
        path (uploaded first), a dataset id or ``Dataset``; omit it for a catalog model's
        example data. ``idempotency_key``: a fresh key per call by default, so a retried
        request never creates a second job; pass your own to deduplicate across calls, or
        ``None`` to send none.
        """
        body, plan = _common.prepare_submit(
            model=model, entry=entry, guide=guide, data=data, inference=inference,
            outputs=outputs, labels=labels, webhook=webhook,
        )
        body = _common.with_data(body, self._resolve_data(plan))
        return Job(self, self._run(_ops.submit(body, idempotency_key)))

    def job(self, job_id: str) -> Job:
        """The job with this id (``NotFound`` if there is none in this account)."""
        return Job(self, self._run(_ops.get_job(job_id)))

    get_job = job

    def jobs_page(
        self,
        *,
        state: str | list[str] | None = None,
        label: Mapping[str, str] | list[str] | None = None,
        page_token: str | None = None,
        page_size: int | None = None,
    ) -> tuple[list[Job], str | None]:
        """One page of jobs, newest first, and the token of the next page (``None`` at the end)."""
        body = self._run(_ops.list_jobs(state=state, label=_label_arg(label), page_token=page_token, page_size=page_size))
        return [Job(self, item) for item in body.get("items", [])], body.get("next_page_token")

    def list_jobs(
        self,
        *,
        state: str | list[str] | None = None,
        label: Mapping[str, str] | list[str] | None = None,
        page_size: int | None = None,
        limit: int | None = None,
    ) -> Iterator[Job]:
        """Every matching job, newest first, fetching pages lazily via the opaque page token."""
        token: str | None = None
        yielded = 0
        while True:
            jobs, token = self.jobs_page(state=state, label=label, page_token=token, page_size=page_size)
            for job in jobs:
                if limit is not None and yielded >= limit:
                    return
                yielded += 1
                yield job
            if not token:
                return

    def cancel(self, job_id: str) -> Job:
        return Job(self, self._run(_ops.cancel_job(job_id)))

    def delete_job(self, job_id: str) -> None:
        self._run(_ops.delete_job(job_id))

    # -- datasets, catalog, validation -------------------------------------------------------
    def upload_dataset(self, source: str | Path | Mapping[str, Any] | Any, *, name: str | None = None) -> Dataset:
        """Upload a CSV/NPZ/Parquet/JSON file, or a dict of arrays / a DataFrame as JSON."""
        return self._run(_upload_call(source, name))

    def upload(self, source: str | Path | Any, *, name: str | None = None, progress: bool | Callable[..., None] = True,
               part_bytes: int | None = None) -> Dataset:
        """Upload a file (CSV/NPZ/Parquet/JSON, any size), a numpy array (field ``x``), a dict
        of arrays or a DataFrame (both sent as NPZ) through the resumable chunked protocol.

        ``progress``: True shows a progress bar on stderr, a callable gets
        ``(phase, done_bytes, total_bytes)``. A dropped connection is retried part by part;
        calling ``upload`` again with the same file resumes where the last call stopped.
        """
        from vihub_client import _upload

        close: Callable[[], None] | None = None
        callback: Any = None
        if progress is True:
            callback, close = _upload.rich_progress()
        elif callable(progress):
            callback = progress
        try:
            with _upload.as_file(source) as (path, filename):
                return _upload.ChunkedUpload(self._run, self.settings.base_url, path, filename=filename, name=name,
                                             part_bytes=part_bytes, progress=callback)()
        finally:
            if close is not None:
                close()

    def dataset(self, dataset_id: str) -> Dataset:
        return self._run(_ops.get_dataset(dataset_id))

    def list_datasets(self, *, limit: int | None = None) -> list[Dataset]:
        return self._run(_ops.list_datasets(limit))

    def catalog(self) -> list[dict[str, Any]]:
        """The built-in models: ``[{"name", "description", "href"}, ...]``."""
        return self._run(_ops.catalog())

    def catalog_entry(self, name: str) -> dict[str, Any]:
        """A catalog model with its source, data schema, example data and a ready job body."""
        return self._run(_ops.catalog_entry(name))

    def capabilities(self) -> dict[str, Any]:
        """What the server offers: its ELBOs, guides and optimizers with their options,
        result formats per resource, and the k-hat readings (``GET /v1/capabilities``)."""
        return self._run(_ops.capabilities())

    def validate(
        self,
        model: Any,
        *,
        guide: Any = None,
        data: Any = None,
        inference: Mapping[str, Any] | None = None,
        outputs: Mapping[str, Any] | None = None,
        entry: str | None = None,
    ) -> dict[str, Any]:
        """The validation pass without a run; a model that cannot run raises ``InvalidRequest``."""
        body, plan = _common.prepare_submit(
            model=model, entry=entry, guide=guide, data=data, inference=inference,
            outputs=outputs, labels=None, webhook=None,
        )
        return self._run(_ops.validate(_common.with_data(body, self._resolve_data(plan))))

    def health(self) -> dict[str, Any]:
        return self._run(_ops.health())

    # -- sweeps and comparisons (vihub_client.sweeps) ------------------------------------
    def sweep(
        self,
        model: Any = None,
        *,
        axes: Mapping[str, Any] | None = None,
        points: list[Mapping[str, Any]] | None = None,
        base: Mapping[str, Any] | None = None,
        guide: Any = None,
        data: Any = None,
        inference: Mapping[str, Any] | None = None,
        outputs: Mapping[str, Any] | None = None,
        entry: str | None = None,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
        idempotency_key: str | AutoKey | None = AUTO,
    ) -> _sweeps.Sweep:
        """Start a sweep: one job per point of ``axes`` (a grid: ``{"guide.auto": [...],
        "inference.optimizer.lr": [...]}``) or of ``points`` (a list of such overrides).
        The base job is ``base`` (a REST job body) or built like ``submit``'s arguments."""
        if base is None:
            body, plan = _common.prepare_submit(model=model, entry=entry, guide=guide, data=data,
                                                inference=inference, outputs=outputs, labels=None, webhook=None)
            base = _common.with_data(body, self._resolve_data(plan))
        call = _sweeps.create_call(_sweeps.sweep_body(base, axes=axes, points=points, name=name, labels=labels),
                                   _sweeps.new_key(idempotency_key))
        return _sweeps.Sweep(self, self._run(call))

    def job_handle(self, job: dict[str, Any]) -> Job:
        """A ``Job`` handle for a job document this client already has (a sweep's member)."""
        return Job(self, job)

    def get_sweep(self, sweep_id: str) -> _sweeps.Sweep:
        return _sweeps.Sweep(self, self._run(_sweeps.get_call(sweep_id)))

    def compare(self, jobs: list[Any], *, sort: str = "elbo", order: str = "desc", raw: bool = False) -> Any:
        """The comparison table of succeeded jobs on the same data, as a pandas DataFrame
        (``raw=True``: the JSON table). ``df.attrs["recommended"]`` is the chosen job id."""
        ids = [job if isinstance(job, str) else job.id for job in jobs]
        table = self._run(_sweeps.compare_call(ids, sort, order))
        return table if raw else _sweeps.comparison_frame(table)


def _label_arg(label: Mapping[str, str] | list[str] | None) -> Any:
    if label is None or isinstance(label, Mapping):
        return dict(label) if label else None
    return list(label)


def _upload_call(source: Any, name: str | None) -> Call:
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist")
        return _ops.upload_dataset_file(path, name)
    plan = _inputs.plan_data(source)
    if not isinstance(plan, dict) or "inline" not in plan:
        raise TypeError("upload_dataset takes a file path, a dict of arrays or a DataFrame")
    return _ops.upload_dataset_json(plan["inline"], name)


class Job(JobData):
    """A handle on one job. Attributes (``state``, ``progress``, ...) are as of the last
    ``refresh()``/``wait()``; result methods fetch from the server each time."""

    def __init__(self, client: Client, data: dict[str, Any]) -> None:
        super().__init__(data)
        self._client = client

    def refresh(self) -> Job:
        self._update(self._client._run(_ops.get_job(self.id)))
        return self

    def wait(
        self,
        timeout: float | None = None,
        *,
        progress: bool | Callable[[Job], Any] = True,
        poll_interval: float = 1.0,
        raise_on_failure: bool = True,
        sse: bool = True,
    ) -> Job:
        """Block until the job ends; return it.

        ``progress``: a rich bar on stderr (step/steps, loss, it/s, ETA; outside a terminal
        rich prints it once at the end), ``False`` for none, or a callable called with the
        job on each update.
        Raises ``JobFailed``/``JobCancelled`` for those final states (unless
        ``raise_on_failure=False``) and ``WaitTimeout`` after ``timeout`` seconds.
        """
        waiter = Waiter(self, timeout=timeout, poll_interval=poll_interval, sse=sse)
        transport = self._client._transport
        with ProgressDisplay(progress) as display:
            display.update(self)
            while not self.done:
                waiter.check_timeout()
                if waiter.use_sse:
                    self._follow_stream(waiter, display)
                    if not self.done and waiter.use_sse:
                        transport.sleep(waiter.reconnect_delay())
                else:
                    transport.sleep(waiter.next_poll_delay())
                    waiter.check_timeout()
                    self.refresh()
                    display.update(self)
            self.refresh()  # the final record: timings, error
            display.update(self)
        waiter.finish(raise_on_failure)
        return self

    def _follow_stream(self, waiter: Waiter, display: ProgressDisplay) -> None:
        call = _ops.events(self.id, waiter.parser.last_event_id, waiter.stream_read_timeout())
        try:
            with self._client._transport.stream(call) as response:
                if response.status_code != 200:
                    response.read()
                    waiter.stream_response_error(response)
                    return
                for line in response.iter_lines():
                    if waiter.feed(line):
                        display.update(self)
                    if self.done:
                        return
                    waiter.check_timeout()
        except httpx.TransportError:
            waiter.stream_failed()

    def cancel(self) -> Job:
        """Ask the server to cancel (a running job stops at the worker's next check)."""
        self._update(self._client._run(_ops.cancel_job(self.id)))
        return self

    def delete(self) -> None:
        self._client._run(_ops.delete_job(self.id))

    # -- results -----------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """``{"guide_params": {name: {"value", "shape", "dtype", "constraint"}}, "model_params": {...}}``."""
        return self._client._run(_ops.params_call(self.id))

    def loss(self, max_points: int | None = None) -> dict[str, Any]:
        """``{"steps", "loss", "elbo_terms", "grad_norms", "num_points", "state"}``; partial while running."""
        return self._client._run(_ops.loss_call(self.id, max_points))

    def samples(self) -> dict[str, Any]:
        """Posterior draws by site (draws first); predictive sites as ``predictive/<site>``.
        numpy arrays when numpy is installed, else nested lists."""
        return self._client._run(_ops.samples_call(self.id))

    def log_probs(self) -> dict[str, Any]:
        """Per draw: ``log_joint``, ``log_q``, ``log_weight``, ``model_sites/<s>``, ``guide_sites/<s>``, ``pointwise/<s>``."""
        return self._client._run(_ops.log_probs_call(self.id))

    def diagnostics(self) -> dict[str, Any]:
        """``k_hat``, ``k_hat_reading``, ``warnings``, ``converged``, ``stopped_early``, ``validation``, ``meta``."""
        return self._client._run(_ops.diagnostics_call(self.id))

    def summary(self) -> dict[str, Any]:
        """Per latent site: ``{"mean", "sd", "q05", "q50", "q95"}``."""
        return self._client._run(_ops.summary_call(self.id))

    def to_arviz(self) -> Any:
        """ArviZ ``InferenceData``: posterior, posterior_predictive, log_likelihood, sample_stats."""
        return _formats.inference_data(self.samples(), self.log_probs(), {"vihub_job_id": self.id})

    def fetch(self, resource: str, format: str = "json", **params: Any) -> Any:  # noqa: A002
        """One result resource in one format: parsed JSON, or the raw bytes of a binary format."""
        return self._client._run(_ops.result(self.id, resource, format, **params))

    def download(self, directory: str | Path, format: str | None = None) -> dict[str, Path]:  # noqa: A002
        """Write the job and its results into ``directory``; returns ``{file name: path}``.

        Without ``format``: params (json, safetensors, pt), loss, samples (npz, netCDF),
        log-probs (npz), diagnostics and summary. With one: every resource in that format
        where offered, JSON otherwise.
        """
        out = Path(directory)
        written = _common.write_job(out, self.refresh().raw)
        for step in _common.download_steps(self.id, format):
            try:
                content = self._client._run(step.call)
            except VihubError as error:
                if step.skip(error):
                    continue
                raise
            (out / step.filename).write_bytes(content)
            written[step.filename] = out / step.filename
        return written

    def continue_fit(self, steps: int, *, labels: Mapping[str, str] | None = None,
                     idempotency_key: str | AutoKey | None = AUTO) -> Job:
        """A new job: this (succeeded) one run ``steps`` further, resuming its optimizer state."""
        call = _sweeps.continue_call(self.id, steps, labels, _sweeps.new_key(idempotency_key))
        return Job(self._client, self._client._run(call))

    def ppc(self, quantiles: list[float] | None = None) -> dict[str, Any]:
        """Posterior predictive checks per observed site (needs ``outputs.predictive``)."""
        return self._client._run(_sweeps.ppc_call(self.id, quantiles))

    def predict(self, new_data: Any, num_samples: int = 100) -> dict[str, Any]:
        """Posterior predictive draws for new data (same forms as ``submit``'s ``data``)."""
        data = self._client._resolve_data(_inputs.plan_data(new_data))
        if data is None:
            raise ValueError("predict needs new_data")
        return self._client._run(_ops.predict(self.id, data, num_samples))
