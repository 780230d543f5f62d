"""Alerts as structured log events, with a pluggable hook.

An alert is a log record at WARNING or ERROR on the ``ingestion.alerts`` logger whose ``extra`` carries ``alert``
(a stable kind name) and its fields. Anything that wants to page someone registers a hook (Slack, PagerDuty, a
test's list): hooks get the same :class:`Alert` and a failing hook never breaks the job that raised the alert.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("ingestion.alerts")

# The kinds the project raises; a hook can route on them.
RATE_LIMITED = "rate_limited"
QUOTA_LOW = "quota_low"
BREAKER_OPENED = "breaker_opened"
FRESHNESS_BREACHED = "freshness_breached"
QUARANTINE_SPIKE = "quarantine_spike"
FALLBACK_SOURCE = "fallback_source"


@dataclass(frozen=True)
class Alert:
    kind: str
    message: str
    level: int = logging.WARNING
    fields: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


AlertHook = Callable[[Alert], None]
_hooks: list[AlertHook] = []
_lock = threading.Lock()


def add_hook(hook: AlertHook) -> None:
    with _lock:
        _hooks.append(hook)


def remove_hook(hook: AlertHook) -> None:
    with _lock:
        if hook in _hooks:
            _hooks.remove(hook)


def raise_alert(kind: str, message: str, *, level: int = logging.WARNING, **fields: Any) -> Alert:
    """Log the alert as a structured event and hand it to every hook."""
    alert = Alert(kind=kind, message=message, level=level, fields=fields)
    log.log(level, message, extra={"alert": kind, "fields": fields})
    with _lock:
        hooks = list(_hooks)
    for hook in hooks:
        try:
            hook(alert)
        except Exception:  # a broken pager must not take the job down with it
            log.exception("alert hook %r failed", hook)
    return alert
