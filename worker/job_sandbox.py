"""The child side of a job: ``inference.fit`` in a disposable, limited process.

``worker.runner.JobRunner`` (the supervisor, in the Celery pool process) claims the job,
loads its spec, data and checkpoint from the store, and starts one sandbox per attempt
(``inference.sandbox``) with ``run_fit`` as its entry point. This module is the only code
of the worker that runs next to user code, so it holds no store, broker or settings
object: it talks to the supervisor over the sandbox's channel only.

Messages, child -> supervisor (``op``):

- ``progress``: the engine's progress report (step, loss, rate, new loss points);
- ``should-cancel``: a question; the supervisor answers ``{"cancel": bool}``;
- ``checkpoint``: a checkpoint blob and its step (written with the pending loss points);
- ``drop-checkpoint``: the stored checkpoint does not fit this engine; the supervisor
  drops it and answers once done;
- ``succeeded`` (the artifacts as blobs, the loss curve): the result. Its ``late``
  lists the artifact kinds still to come (``LATE_KINDS``: the netCDF file, ~70 ms of
  xarray/h5netcdf for 1,000 draws, which the API can also encode from the JSON result);
  the supervisor commits the job's success first and stores those when they arrive;
- final ``late-artifacts`` (those blobs) after a ``succeeded`` that announced them;
- final ``failed`` (an ``InferenceError`` as a dict), ``resource-limit`` or ``crashed``.
  A ``succeeded`` without ``late`` is final itself.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

from inference.results import formats
from inference.sandbox import Channel, is_out_of_memory
# Names only: the child never opens a database connection (it holds no URL or socket).
from store.models import ArtifactKind

log = logging.getLogger("vihub.worker.sandbox")

FIT_CANCELLED_KIND = "fit-cancelled"
# Optional artifacts built after the result is sent (see the module docstring).
LATE_KINDS = (ArtifactKind.NETCDF,)


class _ChannelCallbacks:
    """The engine's callbacks, forwarded to the supervisor."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.final_checkpoint: bytes | None = None

    def on_progress(self, progress: Any) -> None:
        self.channel.send({"op": "progress", "progress": {
            "step": int(progress.step), "steps": int(progress.steps), "loss": finite(progress.loss),
            "smoothed_loss": finite(progress.smoothed_loss), "steps_per_s": finite(progress.steps_per_s),
            "eta_s": finite(progress.eta_s),
            "new_losses": [[int(step), finite(value)] for step, value in progress.new_losses],
        }})

    def should_cancel(self) -> bool:
        self.channel.send({"op": "should-cancel"})
        header, _ = self.channel.recv()
        return bool(header.get("cancel"))

    def on_checkpoint(self, blob: bytes, step: int) -> None:
        self.channel.send({"op": "checkpoint", "step": int(step)}, {"checkpoint": blob})

    def drop_checkpoint(self) -> None:
        self.channel.send({"op": "drop-checkpoint"})
        self.channel.recv()

    def on_final_checkpoint(self, blob: bytes, step: int) -> None:
        # Sent with the final message (an artifact of the finished job), not on its own.
        self.final_checkpoint = blob

    def as_fit_callbacks(self) -> Any:
        from inference import FitCallbacks

        return FitCallbacks(on_progress=self.on_progress, should_cancel=self.should_cancel,
                            on_checkpoint=self.on_checkpoint, on_final_checkpoint=self.on_final_checkpoint)


def finite(value: Any) -> float | None:
    """``value`` as a float, or None when it is not a finite number (JSON has no NaN/inf)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def run_fit(channel: Channel, payload: dict[str, Any]) -> None:
    """Sandbox entry point: fit, serialise the artifacts, send the outcome."""
    from inference import InferenceError, JobSpec, fit
    from inference.language import Limits

    callbacks = _ChannelCallbacks(channel)
    spec = JobSpec.model_validate(payload["spec"])
    limits = Limits(**payload["limits"])
    resume_from = payload.get("resume_from")
    init_params = payload.get("init_params")  # warm start (inference.init_from), see worker.warm_start
    if payload.get("data_path"):
        # A blob-store dataset from the host's cache, memory-mapped (worker.dataset_cache).
        from store.blobs.npz import open_npz_mmap

        payload["data"] = open_npz_mmap(payload["data_path"])
    try:
        try:
            result = fit(spec, payload["data"], callbacks=callbacks.as_fit_callbacks(),
                         resume_from=resume_from, limits=limits, init_params=init_params)
        except InferenceError as exc:
            if resume_from is None or exc.details.get("field") != "resume_from":
                raise
            # The checkpoint does not fit this spec/engine (e.g. an upgrade in between):
            # start over rather than fail the job.
            callbacks.drop_checkpoint()
            result = fit(spec, payload["data"], callbacks=callbacks.as_fit_callbacks(), resume_from=None,
                         limits=limits, init_params=init_params)
        try:
            artifacts = serialize(result, late=False)
            if callbacks.final_checkpoint is not None:
                artifacts[ArtifactKind.FINAL_CHECKPOINT] = callbacks.final_checkpoint
            if spec.outputs.predictive:
                artifacts.update(_observed(spec, payload["data"], limits))
        except Exception as exc:  # noqa: BLE001 - e.g. a complex-valued site: the job's, not ours
            if is_out_of_memory(exc):
                raise
            channel.send({"final": True, "op": "failed", "kind": "result-error",
                          "message": f"the fit finished but its results could not be written: "
                                     f"{type(exc).__name__}: {str(exc)[:500]}",
                          "error": {}})
            return
    except InferenceError as exc:
        if is_out_of_memory(exc):
            channel.send({"final": True, "op": "resource-limit", "limit": "memory"})
            return
        channel.send({"final": True, "op": "failed", "kind": exc.kind, "message": exc.message,
                      "error": formats.jsonable(exc.to_dict())})
        return
    late = list(LATE_KINDS)
    channel.send({"final": not late, "op": "succeeded", "loss": [finite(v) for v in result.loss], "late": late},
                 artifacts)
    if late:
        # The job is committed as succeeded meanwhile; a failure here only loses these.
        # At a lower CPU priority: the client now reading the results (the API), and the
        # worker's next job, come first. The process ends right after.
        try:
            os.nice(10)
        except OSError:
            pass
        channel.send({"final": True, "op": "late-artifacts"}, _optional_artifacts(result, late))


def _observed(spec: Any, data: Any, limits: Any) -> dict[str, bytes]:
    """The observed sites' values for the posterior predictive checks (optional: a model
    that cannot be traced once more only loses its /ppc)."""
    from inference.checks import observed_npz

    try:
        return {ArtifactKind.OBSERVED_NPZ: observed_npz(spec, data, limits=limits)}
    except Exception as exc:  # noqa: BLE001
        if is_out_of_memory(exc):
            raise
        log.warning("could not record the observed values", exc_info=True)
        return {}


def serialize(result: Any, *, late: bool = True) -> dict[str, bytes]:
    """A result's artifacts as bytes, by ``ArtifactKind`` (the forms of
    ``inference.results.formats``, which the API reads back); ``late=False`` leaves out
    ``LATE_KINDS``, which ``run_fit`` sends after the result."""
    kinds = ArtifactKind
    artifacts: dict[str, bytes] = {
        kinds.RESULT_JSON: formats.encode_json(result.to_json()),
        kinds.SAMPLES_NPZ: result.samples_npz(),
        kinds.PARAMS_SAFETENSORS: result.params_safetensors(),
        kinds.LOG_PROBS_NPZ: result.log_probs_npz(),
    }
    artifacts.update(_optional_artifacts(result, [k for k in _OPTIONAL if late or k not in LATE_KINDS]))
    return artifacts


# Optional forms: a missing optional dependency (arviz for netCDF) must not fail a fit
# that succeeded; the API answers 404 for an absent artifact, or encodes it from the JSON.
_OPTIONAL: dict[str, str] = {
    ArtifactKind.NETCDF: "to_netcdf",
    ArtifactKind.PARAM_STORE_PT: "param_store_pt",
}


def _optional_artifacts(result: Any, kinds: list[str]) -> dict[str, bytes]:
    artifacts: dict[str, bytes] = {}
    for kind in kinds:
        try:
            artifacts[kind] = getattr(result, _OPTIONAL[kind])()
        except Exception:
            log.warning("could not build the %s artifact", kind, exc_info=True)
    return artifacts
