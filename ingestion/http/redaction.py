"""Keeping secrets out of logs, exception text, URLs, headers, metric labels and cache keys.

Secrets leak through many doors: a URL with ``?apiKey=``, an ``Authorization`` header printed for debugging, a
``requests`` exception whose message repeats the URL, a log line formatted by a library we do not control. This
module closes them in one place:

* a :class:`SecretRegistry` of known secrets (keys register themselves when an auth provider is built), whose
  :meth:`~SecretRegistry.redact` replaces every occurrence, raw or URL-encoded;
* name-based scrubbing of query parameters and headers that look like credentials, for secrets nobody registered;
* :class:`RedactingFilter`, a :class:`logging.Filter` that rewrites every record passing a handler.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

MASK = "***"

# Parameter and header names that carry credentials at one vendor or another. Compared case-insensitively with
# ``-`` and ``_`` removed, so ``api_key``, ``apiKey`` and ``API-KEY`` all match.
_AUTH_NAMES = frozenset(
    {
        "apikey",
        "key",
        "token",
        "accesstoken",
        "authtoken",
        "secret",
        "clientsecret",
        "password",
        "passwd",
        "signature",
        "sig",
        "authorization",
        "proxyauthorization",
        "cookie",
        "setcookie",
        "xapikey",
        "session",
        "sessionid",
    }
)

# Secrets shorter than this are not registered: masking "a" or "12" everywhere would shred every log line.
MIN_SECRET_LENGTH = 6


def is_auth_name(name: str) -> bool:
    """True when a query-parameter or header name looks like it carries a credential."""
    norm = name.lower().replace("-", "").replace("_", "")
    return norm in _AUTH_NAMES or norm.endswith(("apikey", "token", "secret", "password"))


# Domain separation: the fingerprint is an HMAC under a fixed label, so it matches no plain SHA-256 of the key that
# another tool might print, and it reveals nothing but "same key or not".
_FINGERPRINT_DOMAIN = b"feast-market-data/key-fingerprint/v1"

NO_KEY_FINGERPRINT = "none"
"""The fingerprint of "no key at all" (public endpoints): its own environment, never confused with a real key's."""

MAX_TEXT = 500
"""Characters of vendor-supplied text (error bodies, echoed values) kept in an exception or a log line."""


def key_fingerprint(secret: str | None) -> str:
    """A short, stable, non-reversible id for a key: 16 hex chars of HMAC-SHA256 under a fixed domain label.

    Safe for bucket names, cache keys and logs. ``None`` or an empty key gives :data:`NO_KEY_FINGERPRINT`.
    """
    if not secret:
        return NO_KEY_FINGERPRINT
    return hmac.new(_FINGERPRINT_DOMAIN, secret.encode(), hashlib.sha256).hexdigest()[:16]


class SecretRegistry:
    """Known secrets, replaced by :data:`MASK` wherever they appear. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def register(self, secret: str | None) -> None:
        """Add a secret (and its URL-encoded forms). Short or empty values are ignored."""
        if not secret or len(secret) < MIN_SECRET_LENGTH:
            return
        forms = {secret, quote(secret, safe=""), quote_plus(secret)}
        with self._lock:
            if forms <= self._secrets:
                return
            self._secrets |= forms
            # Longest first, so a secret that contains another is masked whole.
            alternatives = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in alternatives))

    def forget(self, secret: str) -> None:
        """Remove a secret (tests use this; production keys stay registered for the process's life)."""
        forms = {secret, quote(secret, safe=""), quote_plus(secret)}
        with self._lock:
            self._secrets -= forms
            alternatives = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in alternatives)) if alternatives else None

    def __contains__(self, value: object) -> bool:
        with self._lock:
            return value in self._secrets

    def redact(self, text: str) -> str:
        """``text`` with every registered secret replaced by :data:`MASK`."""
        pattern = self._pattern
        return pattern.sub(MASK, text) if pattern is not None else text


SECRETS = SecretRegistry()
"""The process-wide registry. Auth providers register their key here when built."""


def register_secret(secret: str | None) -> None:
    """Register ``secret`` in the process-wide registry."""
    SECRETS.register(secret)


def redact(text: str, registry: SecretRegistry = SECRETS) -> str:
    """Mask registered secrets and ``name=value`` / ``Bearer x`` credentials in free text."""
    text = registry.redact(text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return _QUERY_CRED.sub(_mask_query_match, text)


def redact_text(text: str, limit: int | None = MAX_TEXT, registry: SecretRegistry = SECRETS) -> str:
    """``text`` made safe to print: secrets masked as by :func:`redact`, then cut to ``limit`` characters.

    For anything a vendor or a user can make arbitrarily long or fill with echoed secrets: error bodies, exception
    text, and printed reports such as job summaries (pass ``limit=None`` to redact without cutting). The cut comes
    after masking, so it can never split a secret and leave half of it showing.
    """
    text = redact(text, registry)
    if limit is None or len(text) <= limit:
        return text
    return text[: max(0, limit - 1)] + "…"


# Only the schemes; a bare "token" would mask ordinary prose ("token is ...").
_BEARER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{6,}", re.IGNORECASE)
_QUERY_CRED = re.compile(r"([?&;\s\"'{,]|^)([A-Za-z0-9_.-]+)=([^&\s\"'#;,}]+)")


def _mask_query_match(m: re.Match[str]) -> str:
    if is_auth_name(m.group(2)):
        return f"{m.group(1)}{m.group(2)}={MASK}"
    return m.group(0)


def strip_auth_params(params: Mapping[str, object]) -> dict[str, object]:
    """A copy of ``params`` without any credential-like parameter (for cache keys and rebuilt URLs)."""
    return {k: v for k, v in params.items() if not is_auth_name(k)}


def redact_url(url: str, registry: SecretRegistry = SECRETS) -> str:
    """``url`` with credential query values and any userinfo password masked, and registered secrets removed."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{MASK}@{host}"
    query = urlencode(
        [(k, MASK if is_auth_name(k) else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe="*"
    )
    return registry.redact(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))


def redact_headers(headers: Mapping[str, str], registry: SecretRegistry = SECRETS) -> dict[str, str]:
    """A copy of ``headers`` safe to log: credential headers masked, registered secrets removed from the rest."""
    return {k: MASK if is_auth_name(k) else registry.redact(str(v)) for k, v in headers.items()}


def redact_exception(exc: BaseException, registry: SecretRegistry = SECRETS) -> str:
    """``"TypeName: message"`` of ``exc`` with secrets masked, for wrapping a library error into our own."""
    return f"{type(exc).__name__}: {redact(str(exc), registry)}"


class RedactingFilter(logging.Filter):
    """Rewrites each record so that no registered secret (or credential-looking value) reaches a handler.

    The message is formatted once (``msg % args``), redacted and stored back with ``args`` cleared; exception text
    and stack info are formatted and redacted too, so a traceback that repeats a URL with a key is masked as well.
    Attach it to handlers (``install_redaction``): filters on a logger do not see records propagated from children.
    """

    def __init__(self, registry: SecretRegistry = SECRETS) -> None:
        super().__init__()
        self.registry = registry
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage(), self.registry)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.registry)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.registry)
        return True


def install_redaction(
    targets: Iterable[logging.Logger | logging.Handler] | None = None, registry: SecretRegistry = SECRETS
) -> RedactingFilter:
    """Attach one :class:`RedactingFilter` to each handler of the given loggers/handlers (default: the root logger).

    Call it after logging is configured; handlers added later need their own call.
    """
    flt = RedactingFilter(registry)
    for target in targets if targets is not None else [logging.getLogger()]:
        handlers = target.handlers if isinstance(target, logging.Logger) else [target]
        for handler in handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(flt)
    return flt
