"""Auth header providers: the key travels in a header, so no URL, log line or cache key ever carries it."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ingestion.http.redaction import key_fingerprint, register_secret

AuthProvider = Callable[[], Mapping[str, str]]
"""Returns the headers that authenticate one request (called per attempt, so a rotated key is picked up)."""


class BearerAuth:
    """``Authorization: Bearer <key>``. The key is registered for redaction when the provider is built.

    ``repr`` shows only a fingerprint, so printing a client or its config never prints the key.
    """

    def __init__(self, key: str) -> None:
        if not key or not key.strip():
            raise ValueError("an API key is required for bearer auth")
        self._key = key.strip()
        register_secret(self._key)

    @property
    def fingerprint(self) -> str:
        """16 hex chars of a keyed hash of the key (:func:`key_fingerprint`): a safe name for buckets and logs."""
        return key_fingerprint(self._key)

    def __call__(self) -> Mapping[str, str]:
        return {"Authorization": f"Bearer {self._key}"}

    def __repr__(self) -> str:
        return f"BearerAuth(fingerprint={self.fingerprint})"
