"""Secrets never reach logs, exception text, URLs or headers."""

from __future__ import annotations

import logging
from urllib.parse import quote

import pytest

from ingestion.http import (
    SECRETS,
    BearerAuth,
    RedactingFilter,
    SecretRegistry,
    install_redaction,
    key_fingerprint,
    redact,
    redact_exception,
    redact_headers,
    redact_url,
    strip_auth_params,
)


def test_registry_masks_raw_and_url_encoded_forms() -> None:
    reg = SecretRegistry()
    secret = "abc/def+ghi=="
    reg.register(secret)
    reg.register("short")  # too short to register: it would shred ordinary text
    text = f"key {secret} and {quote(secret, safe='')} and short"
    assert reg.redact(text) == "key *** and *** and short"


def test_redact_masks_registered_keys_bearer_tokens_and_credential_params(test_key: str) -> None:
    line = f"GET /v2/aggs?ticker=AAPL&apiKey={test_key} Authorization: Bearer other-token-123 secret={test_key}"
    out = redact(line)
    assert test_key not in out and "other-token-123" not in out
    assert "ticker=AAPL" in out


def test_redact_url_and_headers(test_key: str) -> None:
    url = f"https://user:pw@api.polygon.io/v2/aggs?cursor=abc&apiKey=unregistered-1234&token={test_key}"
    out = redact_url(url)
    assert "unregistered-1234" not in out and test_key not in out and ":pw@" not in out
    assert "cursor=abc" in out
    headers = redact_headers({"Authorization": f"Bearer {test_key}", "X-API-KEY": "k", "Accept": "json"})
    assert headers == {"Authorization": "***", "X-API-KEY": "***", "Accept": "json"}
    assert strip_auth_params({"apiKey": 1, "api_key": 2, "limit": 3}) == {"limit": 3}


def test_exception_text_is_redacted(test_key: str) -> None:
    exc = ConnectionError(f"Max retries exceeded with url: /v1/x?apiKey={test_key}")
    assert test_key not in redact_exception(exc)
    assert redact_exception(exc).startswith("ConnectionError: ")


def test_logging_filter_redacts_messages_args_and_tracebacks(test_key: str, caplog: pytest.LogCaptureFixture) -> None:
    install_redaction([caplog.handler])
    logger = logging.getLogger("ingestion.test.redaction")
    with caplog.at_level(logging.INFO, logger="ingestion.test.redaction"):
        logger.info("using key %s for %s", test_key, "AAPL")
        try:
            raise RuntimeError(f"boom with {test_key}")
        except RuntimeError:
            logger.exception("request failed")
    assert test_key not in caplog.text
    assert "using key *** for AAPL" in caplog.text
    assert "boom with ***" in caplog.text
    assert any(isinstance(f, RedactingFilter) for f in caplog.handler.filters)


def test_bearer_auth_registers_its_key_and_hides_it_in_repr() -> None:
    secret = "uw_tok_Zx81Qp93Lm27"
    auth = BearerAuth(secret)
    assert auth() == {"Authorization": f"Bearer {secret}"}
    assert secret not in repr(auth) and key_fingerprint(secret) in repr(auth)
    assert redact(f"token is {secret}") == "token is ***"
    SECRETS.forget(secret)
    with pytest.raises(ValueError):
        BearerAuth(" ")
