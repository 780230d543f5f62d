"""Proxy and CA settings from the environment, resolved per request and nothing else taken from it.

The sessions keep ``trust_env = False``, so ``requests`` never picks up ``.netrc`` credentials (which it would add
as an ``Authorization`` header of its own) or anything else implicit. What a corporate network needs is read here,
explicitly, when each request is sent (never at import):

* ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` and ``NO_PROXY`` (either case), with ``requests``' own rules
  (:func:`requests.utils.get_environ_proxies`);
* ``REQUESTS_CA_BUNDLE`` (or ``CURL_CA_BUNDLE``): the CA file or directory that verifies vendor certificates.

The key does not leak through a proxy: an ``https://`` vendor is reached through a ``CONNECT`` tunnel, so the proxy
sees the host and port and, inside TLS, nothing; only an ``http://`` base URL (a simulator) is forwarded in clear,
as it would travel in clear without a proxy. A proxy's own credentials (``http://user:pass@proxy:3128``) are
registered as secrets, so they are masked wherever they might be logged, and proxy URLs are only ever shown through
:func:`~ingestion.http.redaction.redact_url`.
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

from requests.utils import get_environ_proxies

from ingestion.http.redaction import register_secret

_CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def proxies_for(url: str) -> dict[str, str]:
    """The proxies ``requests`` should use for ``url`` given the environment now (empty: connect directly)."""
    proxies: dict[str, str] = dict(get_environ_proxies(url))
    for proxy in proxies.values():
        password = urlsplit(proxy).password
        if password:
            register_secret(unquote(password))
    return proxies


def ca_bundle() -> str | bool:
    """``REQUESTS_CA_BUNDLE`` (else ``CURL_CA_BUNDLE``) when set, else True (the default trust store)."""
    for name in _CA_VARIABLES:
        value = os.environ.get(name)
        if value:
            return value
    return True
