"""Resumable chunked dataset uploads (``/v1/datasets/uploads``), used by ``Client.upload``.

The file's sha256 and size are declared first; parts (the server fixes their size) are
sent with their own sha256 in ``X-Content-SHA256``; ``complete`` makes the dataset.

Resume: each part is an idempotent ``PUT`` (the transport retries it after a dropped
connection), and the upload's id is kept in a small state file keyed by server, file
size and sha256 (``$VIHUB_UPLOAD_STATE_DIR``, default ``~/.cache/vihub/uploads``). A
later ``upload`` of the same file to the same server asks the server which parts it
already has and sends only the missing ones. The state file is removed once the dataset
exists. Parts are read from disk one at a time: memory stays at about one part.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from vihub_client._http import Call
from vihub_client.errors import APIConnectionError, Conflict, NotFound, VihubError
from vihub_client.models import Dataset

# Progress callback: (phase, bytes done, bytes total); phase is "hashing" or "uploading".
ProgressCallback = Callable[[str, int, int], None]
_CHUNK = 1 << 20
# Assembling and decoding a multi-GB upload on the server takes a while.
COMPLETE_TIMEOUT = httpx.Timeout(30.0, read=1800.0)
PART_TIMEOUT = httpx.Timeout(30.0, write=600.0, read=600.0)
COMPLETING_POLL_S = 1.0


def state_dir() -> Path:
    return Path(os.environ.get("VIHUB_UPLOAD_STATE_DIR") or Path.home() / ".cache" / "vihub" / "uploads")


def file_sha256(path: Path, progress: ProgressCallback | None = None) -> str:
    digest, done, total = hashlib.sha256(), 0, path.stat().st_size
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
            done += len(block)
            if progress:
                progress("hashing", done, total)
    return digest.hexdigest()


@contextmanager
def as_file(source: Any) -> Iterator[tuple[Path, str | None]]:
    """(path, filename) of what to upload: a file as it is; a numpy array, a dict of
    arrays or a DataFrame written to a temporary NPZ first (an array is field ``x``)."""
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist")
        yield path, path.name
        return
    import numpy as np

    if isinstance(source, np.ndarray):
        fields = {"x": source}
    elif isinstance(source, Mapping):
        fields = {str(k): np.asarray(v) for k, v in source.items()}
    elif hasattr(source, "to_dict") and hasattr(source, "columns"):
        fields = {str(c): np.asarray(source[c]) for c in source.columns}
    else:
        raise TypeError("upload takes a file path, a numpy array, a dict of arrays or a DataFrame")
    folder = tempfile.mkdtemp(prefix="vihub-upload-")
    path = Path(folder) / "data.npz"
    try:
        np.savez(path, **fields)
        yield path, "data.npz"
    finally:
        path.unlink(missing_ok=True)
        os.rmdir(folder)


class ChunkedUpload:
    """One file's upload through ``run`` (a ``Call`` executor: ``Client._run``)."""

    def __init__(self, run: Callable[[Call], Any], base_url: str, path: Path, *, filename: str | None,
                 name: str | None, part_bytes: int | None = None, progress: ProgressCallback | None = None,
                 rounds: int = 3) -> None:
        self.run, self.base_url, self.path = run, base_url, path
        self.filename, self.name, self.part_bytes = filename, name, part_bytes
        self.progress = progress
        self.rounds = rounds
        self.parts_sent = 0  # parts this call sent (a resumed upload sends fewer)

    def __call__(self) -> Dataset:
        size = self.path.stat().st_size
        sha256 = file_sha256(self.path, self.progress)
        state = self._state_file(size, sha256)
        upload = self._resume(state)
        if upload is None:
            body: dict[str, Any] = {"size_bytes": size, "sha256": sha256}
            for key, value in (("part_bytes", self.part_bytes), ("name", self.name), ("filename", self.filename)):
                if value:
                    body[key] = value
            upload = self.run(Call("POST", "/v1/datasets/uploads", json=body, idempotent=False))
            state.parent.mkdir(parents=True, exist_ok=True)
            state.write_text(json.dumps({"upload_id": upload["id"], "base_url": self.base_url}))
        for attempt in range(self.rounds):
            try:
                self._send_missing(upload, size)
                break
            except APIConnectionError:
                if attempt == self.rounds - 1:
                    raise
                upload = self._status(upload["id"])  # the server says what arrived
        dataset = self._complete(upload["id"])
        state.unlink(missing_ok=True)
        return dataset

    def _complete(self, upload_id: str) -> Dataset:
        """``complete``; a retry that finds the first one still running (``409``, state
        ``completing``) waits for it, then answers its dataset."""
        deadline = time.monotonic() + COMPLETE_TIMEOUT.read
        while True:
            try:
                return self.run(Call("POST", f"/v1/datasets/uploads/{quote(upload_id, safe='')}/complete",
                                     idempotent=True, timeout=COMPLETE_TIMEOUT,
                                     parse=lambda r: Dataset.from_json(r.json())))
            except Conflict as exc:
                if exc.extra.get("state") != "completing" or time.monotonic() > deadline:
                    raise
            while self._status(upload_id).get("state") == "completing" and time.monotonic() < deadline:
                time.sleep(COMPLETING_POLL_S)

    def _state_file(self, size: int, sha256: str) -> Path:
        server = hashlib.sha256(self.base_url.encode()).hexdigest()[:16]
        return state_dir() / f"{server}-{size}-{sha256}.json"

    def _resume(self, state: Path) -> dict[str, Any] | None:
        try:
            saved = json.loads(state.read_text())
        except (OSError, ValueError):
            return None
        try:
            upload = self._status(str(saved["upload_id"]))
        except (NotFound, KeyError):
            state.unlink(missing_ok=True)
            return None
        if upload.get("state") not in ("open", "completing", "complete"):
            state.unlink(missing_ok=True)
            return None
        return upload

    def _status(self, upload_id: str) -> dict[str, Any]:
        return self.run(Call("GET", f"/v1/datasets/uploads/{quote(upload_id, safe='')}"))

    def _send_missing(self, upload: dict[str, Any], size: int) -> None:
        part_bytes = int(upload["part_bytes"])
        missing = set(upload.get("missing_parts") or [])
        done = size - sum(min(part_bytes, size - (n - 1) * part_bytes) for n in missing)
        if self.progress:
            self.progress("uploading", done, size)
        with open(self.path, "rb") as f:
            for number in sorted(missing):
                f.seek((number - 1) * part_bytes)
                part = f.read(part_bytes)
                self.run(Call("PUT", f"/v1/datasets/uploads/{quote(upload['id'], safe='')}/parts/{number}",
                              content=part, idempotent=True, timeout=PART_TIMEOUT,
                              headers={"X-Content-SHA256": hashlib.sha256(part).hexdigest(),
                                       "Content-Type": "application/octet-stream"}))
                self.parts_sent += 1
                done += len(part)
                if self.progress:
                    self.progress("uploading", done, size)


def rich_progress() -> tuple[ProgressCallback, Callable[[], None]]:
    """A progress bar on stderr (rich): the callback and a function that closes the bar."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, \
        TransferSpeedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   TimeRemainingColumn(), transient=False)
    tasks: dict[str, Any] = {}
    bar.start()

    def update(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            tasks[phase] = bar.add_task(phase, total=total)
        bar.update(tasks[phase], completed=done)

    return update, bar.stop


__all__ = ["ChunkedUpload", "VihubError", "as_file", "rich_progress"]
