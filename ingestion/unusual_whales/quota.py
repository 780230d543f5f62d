"""Unusual Whales request budgets: the ``x-uw-*`` counters, the per-minute limiter, the daily budget and its reset.

UW answers every request with its own counters (not in the spec, seen by many clients; see
``../shared/vendor/README.md``): ``x-uw-daily-req-count`` / ``x-uw-token-req-limit`` (requests used today / the daily
budget), ``x-uw-minute-req-counter``, ``x-uw-req-per-minute-remaining`` and ``x-uw-req-per-minute-reset`` (time until
a slot of the rolling minute frees up; the unit is undocumented: milliseconds in every capture, so a value above 60 is
read as milliseconds and a smaller one as seconds). The plan is never hard-coded: the counters say what it is.

:class:`QuotaGuard` plugs into :class:`~ingestion.http.VendorHTTP` at its two seams:

* ``on_response`` (every vendor answer): feeds the per-minute counters to ``TokenBucket.observe`` so every thread
  sharing the bucket slows down before the vendor refuses; raises one ``QUOTA_LOW`` alert per quota day when the
  daily budget nears its end; and, once the daily count reaches the budget, **holds** until the reset, because the
  next request could only be refused.
* ``error_mapper`` (a non-2xx answer): a 429 whose counters show the daily budget spent becomes
  :class:`~ingestion.errors.QuotaExhausted` (never retried, see :mod:`ingestion.http.retry`) and starts the hold; a
  per-minute 429 without ``Retry-After`` gets the vendor's minute reset as its wait.

While held, :meth:`QuotaGuard.check` (called by the client before each request) raises ``QuotaExhausted`` at once,
without a request: waiting hours in a retry loop would only spend requests that the vendor then counts. The daily
count resets at **20:00 New York**; the hold lifts at the first such instant after the budget was spent.

The hold is per process (a second process learns of it from its own first 429, one request later).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import pandas as pd

from ingestion import calendar
from ingestion.errors import QuotaExhausted, RateLimited, VendorError
from ingestion.http import Clock, HTTPResult, TokenBucket, wall_clock
from ingestion.http.status import request_id_from, vendor_message
from ingestion.ops.alerts import QUOTA_LOW, raise_alert

log = logging.getLogger(__name__)

RESET_HOUR_NEW_YORK: Final = 20
"""The daily request count resets at 20:00 New York time."""

DAILY_COUNT: Final = "x-uw-daily-req-count"
DAILY_LIMIT: Final = "x-uw-token-req-limit"
MINUTE_COUNT: Final = "x-uw-minute-req-counter"
MINUTE_REMAINING: Final = "x-uw-req-per-minute-remaining"
MINUTE_RESET: Final = "x-uw-req-per-minute-reset"


@dataclass(frozen=True)
class QuotaSnapshot:
    """The vendor's counters from one response; a field is None when its header was absent or not a number.

    ``minute_reset_s`` is seconds until a slot of the rolling minute frees up.
    """

    daily_count: int | None = None
    daily_limit: int | None = None
    minute_count: int | None = None
    minute_remaining: int | None = None
    minute_reset_s: float | None = None

    @property
    def daily_remaining(self) -> int | None:
        if self.daily_count is None or self.daily_limit is None:
            return None
        return max(0, self.daily_limit - self.daily_count)

    @property
    def daily_exhausted(self) -> bool:
        return self.daily_remaining == 0


def _int(headers: Mapping[str, str], name: str) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return int(float(raw.strip()))
    except ValueError:
        return None


def read_quota_headers(headers: Mapping[str, str]) -> QuotaSnapshot | None:
    """The ``x-uw-*`` counters of a response (header names lower case, as :class:`HTTPResult` keeps them).

    None when the response carries none of them (an error page from a proxy, an injected fault).
    """
    reset = _int(headers, MINUTE_RESET)
    snapshot = QuotaSnapshot(
        daily_count=_int(headers, DAILY_COUNT),
        daily_limit=_int(headers, DAILY_LIMIT),
        minute_count=_int(headers, MINUTE_COUNT),
        minute_remaining=_int(headers, MINUTE_REMAINING),
        # The unit is undocumented; captures send milliseconds (a minute is at most 60 s, so 60 000 ms).
        minute_reset_s=None if reset is None else (reset / 1000.0 if reset > 60 else float(reset)),
    )
    return None if snapshot == QuotaSnapshot() else snapshot


def next_reset(now: float) -> dt.datetime:
    """The first 20:00 New York strictly after ``now`` (epoch seconds UTC), as an aware UTC datetime."""
    ny = pd.Timestamp(now, unit="s", tz="UTC").tz_convert(calendar.NEW_YORK)
    # Wall-clock arithmetic on the naive date, then localized: 20:00 is never skipped or repeated by DST.
    wall = ny.tz_localize(None).normalize() + pd.Timedelta(hours=RESET_HOUR_NEW_YORK)
    reset = pd.Timestamp(wall).tz_localize(calendar.NEW_YORK)
    if reset <= ny:
        reset = pd.Timestamp(wall + pd.Timedelta(days=1)).tz_localize(calendar.NEW_YORK)
    return reset.tz_convert("UTC").to_pydatetime()  # type: ignore[no-any-return]


class QuotaGuard:
    """Reads UW's counters, feeds the limiter, warns as the daily budget nears its end, holds after it is spent.

    Args:
        limiter: the client's :class:`~ingestion.http.TokenBucket` (None: counters are only recorded).
        clock: epoch seconds UTC deciding when the hold lifts (tests pass the simulator's clock).
        warn_fraction: raise ``QUOTA_LOW`` once per quota day when at most this share of the daily budget remains.
        vendor: the name put on errors and alerts.
    """

    def __init__(
        self,
        *,
        limiter: TokenBucket | None = None,
        clock: Clock = wall_clock,
        warn_fraction: float = 0.1,
        vendor: str = "unusual_whales",
    ) -> None:
        if not 0.0 <= warn_fraction < 1.0:
            raise ValueError("warn_fraction is a share of the daily budget, in [0, 1)")
        self.limiter = limiter
        self.clock = clock
        self.warn_fraction = warn_fraction
        self.vendor = vendor
        self.latest: QuotaSnapshot | None = None
        self.warnings = 0
        self._held_until: dt.datetime | None = None
        self._warned_for: dt.datetime | None = None  # the reset instant of the quota day already warned about
        self._lock = threading.Lock()

    # -- state ----------------------------------------------------------------------------------------------------

    @property
    def held_until(self) -> dt.datetime | None:
        """When the current hold lifts (UTC), or None when requests may go."""
        with self._lock:
            if self._held_until is not None and self.clock() >= self._held_until.timestamp():
                self._held_until = None
            return self._held_until

    def hold(self) -> dt.datetime:
        """Hold every request until the next reset; returns the reset instant (UTC)."""
        reset = next_reset(self.clock())
        with self._lock:
            if self._held_until is None or reset > self._held_until:
                self._held_until = reset
                log.warning("%s daily request budget spent: holding requests until %s", self.vendor, reset)
            return self._held_until

    def exhausted(self, endpoint: str | None, resets_at: dt.datetime, request_id: str | None = None) -> QuotaExhausted:
        return QuotaExhausted(
            f"daily request budget spent; it resets at {resets_at.isoformat()} (20:00 New York)",
            resets_at=resets_at,
            vendor=self.vendor,
            endpoint=endpoint,
            status=429,
            request_id=request_id,
        )

    def check(self, endpoint: str | None = None) -> None:
        """Raise :class:`QuotaExhausted` at once, with no request, while a hold is on."""
        until = self.held_until
        if until is not None:
            raise self.exhausted(endpoint, until)

    # -- the VendorHTTP seams -------------------------------------------------------------------------------------

    def on_response(self, result: HTTPResult) -> None:
        """Record the counters of any vendor response and act on them (a ``VendorHTTP`` response hook)."""
        snapshot = read_quota_headers(result.headers)
        if snapshot is None:
            return
        with self._lock:
            self.latest = snapshot
        if self.limiter is not None and snapshot.minute_remaining is not None:
            self.limiter.observe(snapshot.minute_remaining, snapshot.minute_reset_s)
        if snapshot.daily_remaining is None or snapshot.daily_limit is None:
            return
        if result.ok and snapshot.daily_exhausted:
            # This answer used the last request of the day: the next one could only be refused.
            self.hold()
        self._maybe_warn(snapshot.daily_remaining, snapshot.daily_limit)

    def _maybe_warn(self, remaining: int, limit: int) -> None:
        if remaining > self.warn_fraction * limit:
            return
        reset = next_reset(self.clock())
        with self._lock:
            if self._warned_for == reset:
                return
            self._warned_for = reset
            self.warnings += 1
        raise_alert(
            QUOTA_LOW,
            f"{self.vendor} daily request budget nearly spent: {remaining} of {limit} left until {reset.isoformat()}",
            vendor=self.vendor,
            remaining=remaining,
            limit=limit,
            resets_at=reset.isoformat(),
        )

    def error_mapper(self, result: HTTPResult) -> VendorError | None:
        """A 429 with the daily budget spent becomes :class:`QuotaExhausted` (and starts the hold); a per-minute 429
        without ``Retry-After`` waits for the vendor's minute reset. Anything else: None (the core's default table)."""
        if result.status != 429:
            return None
        snapshot = read_quota_headers(result.headers)
        said = vendor_message(result.body)
        daily = snapshot.daily_exhausted if snapshot is not None and snapshot.daily_remaining is not None else False
        if daily or (snapshot is None and "daily" in said.lower()):
            return self.exhausted(result.endpoint, self.hold(), request_id_from(result.headers, result.body))
        if "retry-after" in result.headers or snapshot is None or snapshot.minute_reset_s is None:
            return None
        wait = max(snapshot.minute_reset_s, 0.001)
        return RateLimited(
            f"rate limited: per-minute budget spent; a slot frees in {wait:g}s" + (f": {said}" if said else ""),
            retry_after=wait,
            vendor=self.vendor,
            endpoint=result.endpoint,
            status=429,
            request_id=request_id_from(result.headers, result.body),
        )


__all__ = ["RESET_HOUR_NEW_YORK", "QuotaGuard", "QuotaSnapshot", "next_reset", "read_quota_headers"]
