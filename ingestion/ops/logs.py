"""Logging setup: plain or JSON lines, always through the secret-redacting filter.

The redaction filter is attached to the root handlers, so a key cannot reach a log line whatever logger or library
emitted it (requests and urllib3 log URLs; websockets logs frames).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(payload, default=str).decode()


def configure(verbose: bool = False, as_json: bool = False) -> None:
    """Configure the root logger once: level, format, and redaction on every handler."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    formatter: logging.Formatter = (
        JsonFormatter() if as_json else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    redact = _redaction_filter()
    for handler in root.handlers:
        handler.setFormatter(formatter)
        if redact is not None and redact not in handler.filters:
            handler.addFilter(redact)
    # Feast logs every registry refresh at INFO; keep its chatter out of the command's output.
    logging.getLogger("feast").setLevel(logging.DEBUG if verbose else logging.WARNING)


def _redaction_filter() -> logging.Filter | None:
    try:
        from ingestion.http import redaction
    except ImportError:
        return None
    factory = getattr(redaction, "RedactingFilter", None)
    return factory() if factory is not None else None
