"""An offline store on S3-compatible object storage: where it is (:class:`ObjectRoot`) and the few calls it needs.

``FEAST_DATA_DIR=s3://bucket/prefix`` puts the offline store (part files, quarantine, coverage, watermarks) under
that prefix on any S3-compatible server, reached with the standard variables: ``AWS_ENDPOINT_URL`` (unset: AWS),
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``, ``AWS_REGION``/``AWS_DEFAULT_REGION``).
They are read when a root is first used, never at import, and never appear in a ``repr``, a log line or an error.

Two clients, each for what it does best, both configured from those variables:

* **boto3** for every write and every small read: S3 has no rename, so each object is written once, whole, under its
  final name by one ``PUT`` (a reader sees the old object or the new one, never part of one), and the two
  *conditional* forms of ``PUT`` replace the local OS file lock: ``If-None-Match: *`` (write only if absent: batch
  manifests) and ``If-Match: <etag>`` (compare-and-swap: coverage and watermark records).
* **pyarrow's S3 filesystem** (it ships in pyarrow) for Parquet scans: ranged reads of footers and row groups, which
  DuckDB scans as an Arrow dataset. DuckDB's own ``httpfs`` extension would need a download at run time or the
  ``duckdb-extension-httpfs`` wheel, which exists only up to DuckDB 1.5.5.

Local data dirs never come here: ``Root`` is ``Path | ObjectRoot`` and every caller keeps its local code as it was.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import pyarrow.fs as pafs

SCHEMES = ("s3://",)
DEFAULT_REGION = "us-east-1"
CAS_ATTEMPTS = 50
"""Compare-and-swap retries before giving up: each retry means another writer committed in between."""


def is_object_url(value: str) -> bool:
    """Whether ``value`` names object storage (``s3://bucket[/prefix]``) rather than a local folder."""
    return value.strip().lower().startswith(SCHEMES)


class ObjectStoreError(RuntimeError):
    """An object-store call failed; the message names the object and the server's error code, never a credential."""


class Conflict(ObjectStoreError):
    """A conditional write lost: the object exists (``If-None-Match``) or changed (``If-Match``)."""


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def endpoint_url() -> str | None:
    """``AWS_ENDPOINT_URL`` (an S3-compatible server), or None for AWS itself."""
    return _env("AWS_ENDPOINT_URL_S3") or _env("AWS_ENDPOINT_URL")


def region() -> str:
    return _env("AWS_REGION") or _env("AWS_DEFAULT_REGION") or DEFAULT_REGION


@dataclass
class _Clients:
    """The clients of one root, made on first use (creating a boto3 client costs tens of milliseconds)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    s3: Any = None
    fs: pafs.FileSystem | None = None


@dataclass(frozen=True)
class ObjectRoot:
    """``s3://bucket/prefix``: the object-storage twin of a local data dir. ``root / "a" / "b"`` joins like a Path."""

    url: str
    _clients: _Clients = field(default_factory=_Clients, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not is_object_url(self.url):
            raise ValueError(f"{self.url!r} is not an s3:// URL")
        parts = urlsplit(self.url)
        if not parts.netloc or parts.query or parts.fragment or "@" in parts.netloc:
            # A credential in the URL would end up in logs and registry paths: refuse it rather than carry it.
            raise ValueError("an object-store URL is s3://bucket[/prefix], with credentials only in AWS_* variables")
        object.__setattr__(self, "url", f"s3://{parts.netloc}/{parts.path.strip('/')}".rstrip("/"))

    def __str__(self) -> str:
        return self.url

    def __truediv__(self, part: str) -> ObjectRoot:
        return ObjectRoot(f"{self.url}/{part.strip('/')}", self._clients)

    @property
    def bucket(self) -> str:
        return urlsplit(self.url).netloc

    @property
    def key(self) -> str:
        """The object key (or key prefix) of this location, without a leading slash."""
        return urlsplit(self.url).path.strip("/")

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def fs_path(self) -> str:
        """``bucket/key``: how pyarrow's S3 filesystem names this location."""
        return f"{self.bucket}/{self.key}".rstrip("/")

    # ------------------------------------------------------------------------------------------------ clients

    def client(self) -> Any:
        """The boto3 S3 client (path-style addressing on a custom endpoint, as MinIO, SeaweedFS and moto expect)."""
        with self._clients.lock:
            if self._clients.s3 is None:
                import boto3
                from botocore.config import Config

                endpoint = endpoint_url()
                style = {"addressing_style": "path"} if endpoint else {}
                config = Config(s3=style, retries={"max_attempts": 5, "mode": "standard"})
                self._clients.s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region(), config=config)
            return self._clients.s3

    def filesystem(self) -> pafs.FileSystem:
        """pyarrow's S3 filesystem, for Parquet scans (credentials from the same variables as boto3)."""
        with self._clients.lock:
            if self._clients.fs is None:
                import pyarrow.fs as pafs

                endpoint = endpoint_url()
                kwargs: dict[str, Any] = {"region": region()}
                if endpoint:
                    parts = urlsplit(endpoint)
                    kwargs.update(endpoint_override=parts.netloc + parts.path, scheme=parts.scheme or "https")
                key, secret = _env("AWS_ACCESS_KEY_ID"), _env("AWS_SECRET_ACCESS_KEY")
                if key and secret:
                    kwargs.update(access_key=key, secret_key=secret, session_token=_env("AWS_SESSION_TOKEN"))
                self._clients.fs = pafs.S3FileSystem(**kwargs)
            return self._clients.fs

    # ------------------------------------------------------------------------------------------------ objects

    def put(self, data: bytes, *, if_none_match: bool = False, if_match: str | None = None) -> str:
        """Write this object whole in one ``PUT`` and return its ETag. ``if_none_match`` writes only when it does
        not exist yet; ``if_match`` only when its ETag is still that one. A lost condition raises :class:`Conflict`."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key, "Body": data}
        if if_none_match:
            kwargs["IfNoneMatch"] = "*"
        if if_match is not None:
            kwargs["IfMatch"] = if_match
        response = self._call("put", lambda: self.client().put_object(**kwargs))
        return str(response["ETag"])

    def get(self) -> tuple[bytes, str] | None:
        """The object's bytes and ETag, or None when it does not exist."""
        response = self._call("get", lambda: self.client().get_object(Bucket=self.bucket, Key=self.key), missing=True)
        if response is None:
            return None
        return bytes(response["Body"].read()), str(response["ETag"])

    def head(self) -> str | None:
        """The object's ETag, or None when it does not exist (no body is read)."""
        response = self._call("head", lambda: self.client().head_object(Bucket=self.bucket, Key=self.key), missing=True)
        return None if response is None else str(response["ETag"])

    def delete(self, *, if_match: str | None = None) -> None:
        """Delete this object; ``if_match`` only while its ETag is still that one (else :class:`Conflict`)."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key}
        if if_match is not None:
            kwargs["IfMatch"] = if_match
        self._call("delete", lambda: self.client().delete_object(**kwargs))

    def list(self) -> list[ObjectRoot]:
        """Every object below this prefix (recursively), sorted by key."""
        prefix = f"{self.key}/" if self.key else ""
        found: list[str] = []

        def pages() -> None:
            paginator = self.client().get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                found.extend(str(item["Key"]) for item in page.get("Contents", []))

        self._call("list", pages)
        return [ObjectRoot(f"s3://{self.bucket}/{k}", self._clients) for k in sorted(found)]

    def _call(self, verb: str, call: Callable[[], Any], *, missing: bool = False) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return call()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "")) or "error"
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if missing and (code in ("NoSuchKey", "404", "NotFound") or status == 404):
                return None
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
                raise Conflict(f"{verb} {self.url}: {code}") from None
            raise ObjectStoreError(f"{verb} {self.url}: {code} (HTTP {status})") from None
        except BotoCoreError as exc:
            # botocore's own messages name the endpoint and the operation, never the key or secret.
            raise ObjectStoreError(f"{verb} {self.url}: {type(exc).__name__}: {exc}") from None

    # ------------------------------------------------------------------------------------------------ JSON state

    def read_json(self) -> Any:
        """The decoded object, or None when there is none."""
        found = self.get()
        return None if found is None else json.loads(found[0])

    def update_json(self, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Read-modify-write of a JSON object by compare-and-swap: what the OS lock does locally, across machines.

        ``change`` edits the dict in place; the write is conditional on the version read (``If-Match``, or
        ``If-None-Match`` for a new object), and a lost race re-reads and applies ``change`` again, so two writers
        never lose each other's update. Returns the dict as written.
        """
        for _ in range(CAS_ATTEMPTS):
            found = self.get()
            data: dict[str, Any] = {} if found is None else json.loads(found[0])
            if not isinstance(data, dict):
                raise ObjectStoreError(f"{self.url} does not hold a JSON object")
            before = json.dumps(data, sort_keys=True)
            change(data)
            after = json.dumps(data, sort_keys=True)
            if after == before:
                return data
            try:
                if found is None:
                    self.put(after.encode(), if_none_match=True)
                else:
                    self.put(after.encode(), if_match=found[1])
            except Conflict:
                continue
            return data
        raise ObjectStoreError(f"{self.url}: gave up after {CAS_ATTEMPTS} concurrent updates")


Root: TypeAlias = Path | ObjectRoot
"""Where an offline store lives: a local folder or an object-storage prefix."""


def as_root(value: str | os.PathLike[str]) -> Root:
    """``s3://...`` as an :class:`ObjectRoot`, anything else as a local ``Path``."""
    text = os.fspath(value)
    return ObjectRoot(text) if is_object_url(text) else Path(text)


__all__ = [
    "Conflict",
    "ObjectRoot",
    "ObjectStoreError",
    "Root",
    "as_root",
    "endpoint_url",
    "is_object_url",
    "region",
]
