"""Blobs as objects in an S3-protocol bucket (AWS S3, MinIO, Ceph, moto), via boto3.

``upload_file`` / ``download_file`` switch to multipart transfers above 8 MiB and never
hold a whole object in memory. Path-style addressing, so MinIO and moto work with a
plain ``http://host:port`` endpoint.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from store.blobs.base import CHUNK, BlobNotFound, BlobStore, check_key

_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


class S3BlobStore(BlobStore):
    name = "s3"

    def __init__(self, bucket: str, *, prefix: str = "", endpoint_url: str | None = None,
                 region: str = "us-east-1", access_key_id: str | None = None,
                 secret_access_key: str | None = None, create_bucket: bool = False) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        self.region = region
        self._credentials = (access_key_id, secret_access_key)
        self._create_bucket = create_bucket
        self._lock = threading.Lock()
        self._client: Any = None

    @property
    def client(self) -> Any:
        # Made lazily (and per process: a boto3 client must not cross a fork).
        with self._lock:
            pid = os.getpid()
            if self._client is None or self._client[0] != pid:
                import boto3
                from botocore.config import Config

                key_id, secret = self._credentials
                client = boto3.session.Session().client(
                    "s3", endpoint_url=self.endpoint_url, region_name=self.region,
                    aws_access_key_id=key_id, aws_secret_access_key=secret,
                    config=Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                                  retries={"max_attempts": 5, "mode": "standard"}),
                )
                if self._create_bucket:
                    _ensure_bucket(client, self.bucket, self.region)
                self._client = (pid, client)
            return self._client[1]

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def put_file(self, key: str, path: Path | str) -> None:
        self.client.upload_file(str(path), self.bucket, self._key(key))

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get_bytes(self, key: str) -> bytes:
        return b"".join(self.iter_chunks(key))

    def download(self, key: str, path: Path | str) -> None:
        target = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        os.close(fd)
        try:
            try:
                self.client.download_file(self.bucket, self._key(key), tmp)
            except Exception as exc:
                if _is_not_found(exc):
                    raise BlobNotFound(key) from None
                raise
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def iter_chunks(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except Exception as exc:
            if _is_not_found(exc):
                raise BlobNotFound(key) from None
            raise
        return _chunks(body, chunk_size)

    def size(self, key: str) -> int | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            if _is_not_found(exc):
                return None
            raise
        return int(head["ContentLength"])

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def delete_prefix(self, prefix: str) -> int:
        full = self._key(prefix) + "/"
        count = 0
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
                count += len(keys)
        return count


def _chunks(body: Any, chunk_size: int) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(chunk_size)
    finally:
        body.close()


def _is_not_found(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    return str((response.get("Error") or {}).get("Code")) in _NOT_FOUND


def _ensure_bucket(client: Any, bucket: str, region: str) -> None:
    try:
        client.head_bucket(Bucket=bucket)
        return
    except Exception as exc:
        if not _is_not_found(exc):
            raise
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        client.create_bucket(**kwargs)
    except Exception as exc:  # another process made it first
        code = str(((getattr(exc, "response", None) or {}).get("Error") or {}).get("Code"))
        if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
