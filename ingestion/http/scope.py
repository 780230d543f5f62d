"""Which environment a cached value belongs to, and proof that it was written by someone holding that environment's key.

A cached vendor response is only valid for the server it came from and the key it was fetched with: the simulator's
bars are not Polygon's, and a plan with delayed data answers differently from a real-time one. So every cache key
includes a :class:`CacheScope`: the normalised base URL (scheme, host, port and path prefix) and a fingerprint of the
credential (:func:`~ingestion.http.redaction.key_fingerprint`: an HMAC under a fixed label, never the key, and not
reversible to it; ``"none"`` without a key).

Integrity: a cached value is *sealed* with HMAC-SHA256 under a secret derived from the credential, over the storage key
and the bytes stored, and a value whose seal does not verify is a miss. The threat this answers is someone who can
write to Redis (another local user of an open embedded Redis, a shared cache server) but does not hold the API key:

* rewriting a body (prices x10) or its metadata breaks the seal;
* copying a valid entry to another key (MSFT's bars under AAPL's key, a stale last-good copy into the fresh slot, one
  environment's entry into another's) breaks it too, because the storage key is part of what is signed;
* replaying an old, once-valid entry at its own key after it expired is refused by the signed ``expires_at`` that
  :class:`~ingestion.http.cache.ResponseCache` checks.

What it does not answer: deleting entries (a miss: the vendor is asked again), and forging entries of an environment
whose key the attacker knows (the simulators' published keys). A plain SHA-256 of the body stored beside it would
catch corruption but not an attacker, who would simply recompute it; hence the keyed MAC. Without a credential
(``"none"``) the secret is random per process: such entries verify only in the process that wrote them.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ingestion.http.redaction import NO_KEY_FINGERPRINT, key_fingerprint

_SEAL_LABEL = b"feast-market-data/cache-seal/v1"
_SEAL_MAGIC = b"S1"
_MAC_SIZE = hashlib.sha256().digest_size
_DEFAULT_PORTS = {"http": 80, "https": 443}


def base_url_identity(base_url: str) -> str:
    """``scheme://host:port/prefix`` of a base URL: lower-case scheme and host, explicit port, no user info.

    ``https://API.polygon.io`` and ``https://api.polygon.io:443/`` are one environment; another port, host or path
    prefix is another.
    """
    parts = urlsplit(base_url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 literal keeps its brackets, so the port stays unambiguous
        host = f"[{host}]"
    port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    return f"{scheme}://{host}:{port}{parts.path.rstrip('/')}"


@functools.cache
def _process_secret() -> bytes:
    # Made on first use, not at import; lives as long as the process.
    return secrets.token_bytes(32)


@dataclass(frozen=True)
class CacheScope:
    """The environment of a cached value: base URL identity, key fingerprint, and the secret its seals use.

    Build it with :meth:`of`; :meth:`local` is the scope of values cached outside any vendor client.
    """

    base_url: str
    key_fingerprint: str
    _seal_key: bytes = field(repr=False)

    @classmethod
    def of(cls, base_url: str, credential: str | None) -> CacheScope:
        """The scope of requests to ``base_url`` made with ``credential`` (the auth material; None: no key)."""
        if credential:
            seal_key = hmac.new(credential.encode(), _SEAL_LABEL, hashlib.sha256).digest()
        else:
            seal_key = _process_secret()
        return cls(base_url_identity(base_url) if base_url else "", key_fingerprint(credential), seal_key)

    @classmethod
    def local(cls) -> CacheScope:
        """No vendor and no key: values verify only in this process."""
        return cls("", NO_KEY_FINGERPRINT, _process_secret())

    @property
    def parts(self) -> list[str]:
        """What a cache key hashes to tell environments apart."""
        return [self.base_url, self.key_fingerprint]

    def _mac(self, storage_key: str, payload: bytes | memoryview) -> bytes:
        mac = hmac.new(self._seal_key, storage_key.encode() + b"\0", hashlib.sha256)
        mac.update(payload)
        return mac.digest()

    def seal(self, storage_key: str, payload: bytes) -> bytes:
        """``payload`` with a MAC binding it to ``storage_key`` and this scope's secret."""
        return _SEAL_MAGIC + self._mac(storage_key, payload) + payload

    def unseal(self, storage_key: str, sealed: bytes) -> bytes | None:
        """The payload when the seal verifies for ``storage_key``, else None (tampered, moved, or foreign)."""
        head = len(_SEAL_MAGIC) + _MAC_SIZE
        if len(sealed) < head or not sealed.startswith(_SEAL_MAGIC):
            return None
        # A memoryview: a body of tens of MB is checked without a second copy of it.
        if not hmac.compare_digest(sealed[len(_SEAL_MAGIC) : head], self._mac(storage_key, memoryview(sealed)[head:])):
            return None
        return sealed[head:]
