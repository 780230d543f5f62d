"""When a feature view is fresh: one rule per kind of view, on the NYSE session calendar.

A single age limit suits no view: a daily view is 64 hours old on a Monday morning and perfectly fresh, a quote is
15 hours old at 07:00 and fine, and insider filings arrive weeks apart. So each kind of view has its own rule
(:func:`default_rule`), judged for each symbol asked about:

* the daily views (bars, options flow, dark pool, ETF flow) and the minute bars, which the daily jobs write online,
  hold the last closed session's value (event time at its close) once :data:`PUBLICATION_GRACE` after that close has
  passed: vendors publish, and the daily jobs run, a while after the bell (:class:`LastSession`);
* ``realtime_quotes``, written by the stream, is at most :data:`QUOTE_MAX_AGE` old while the market is open, and
  outside hours at most that much older than the last session's close (:class:`MarketHours`);
* ``insider_activity``: filings are sparse, so the age of the newest says nothing; the view is judged by its
  presence in the registry, and the newest filing's age is shown (:class:`Sparse`);
* ``options_flow_intraday`` gets rows only where an alert enters or leaves a window, so it is judged like the
  insider view (:class:`Sparse`); ETF flows are published the next morning, so their session is due a day later;
* ETF flow exists only for ETFs, and not every symbol has insider filings. The project holds no list of ETFs (only
  the simulated market knows its four), so for these views a symbol with no value is skipped with a line saying so,
  not called unhealthy (``ViewRule.absent``).

An explicit limit (``--max-age VIEW=AGE``, :func:`rule_with_limit`) replaces a view's rule with an age limit that
every symbol asked about must meet; the realtime and minute views keep the market-hours clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import pandas as pd

from ingestion import calendar
from ingestion.datasets import (
    ETF_FLOW_DAILY,
    FEATURE_DATASETS,
    INSIDER_ACTIVITY,
    OHLCV_MINUTE,
    OPTIONS_FLOW_INTRADAY,
    REALTIME_QUOTES,
)
from ingestion.errors import ConfigError

MINUTE, HOUR = 60.0, 3600.0
PUBLICATION_GRACE = 12 * HOUR
"""How long after a session's close its daily values may still be missing online: vendors publish within an hour or
two of the close, and the daily jobs run in the evening or overnight (until 04:00 New York after a 16:00 close)."""
QUOTE_MAX_AGE = 2 * MINUTE
"""The stream writes quotes every 100 ms: two quiet minutes on a listed symbol mean the stream is not running."""
NEXT_MORNING_GRACE = 24 * HOUR
"""ETF flows are published the next morning (see ``datasets.ETF_FLOW_DAILY``'s publication rule), so the daily job
that lands them runs during the next session: a session's value is due a day after its close, not overnight."""
LAST_BAR_SLACK = 5 * MINUTE
"""A symbol with no trade in the session's last minutes has no bars for them: its last minute bar ends earlier."""


def human(seconds: float) -> str:
    """A duration for people: ``45 s``, ``2 min``, ``5.5 h``, ``96 h`` (hours beyond two: a daily view's age reads
    best against the 24 h of a day)."""
    if seconds < 2 * MINUTE:
        return f"{seconds:.0f} s"
    if seconds < 2 * HOUR:
        return f"{seconds / MINUTE:.0f} min"
    return f"{seconds / HOUR:.1f}".removesuffix(".0") + " h"


def _instant(epoch: float) -> pd.Timestamp:
    return pd.Timestamp(epoch, unit="s", tz="UTC")


def market_open(now: float) -> bool:
    """Whether ``now`` (epoch seconds) falls in a regular session."""
    at = _instant(now)
    today = calendar.new_york_date(at)
    return calendar.is_session(today) and calendar.session_open(today) <= at < calendar.session_close(today)


def last_close(at: float) -> float:
    """The close (epoch seconds) of the latest session closed at ``at``."""
    ts = _instant(at)
    today = calendar.new_york_date(ts)
    if calendar.is_session(today) and ts >= calendar.session_close(today):
        return float(calendar.session_close(today).value / 1e9)
    return float(calendar.session_close(calendar.previous_session(today)).value / 1e9)


def _session_of(epoch: float) -> str:
    return str(calendar.new_york_date(_instant(epoch)))


@dataclass(frozen=True)
class Finding:
    """One symbol's value judged: fresh or not, and a line that says how old it is against what."""

    ok: bool
    text: str


class Rule(Protocol):
    """How one symbol's newest value of a view is judged."""

    def judge(self, newest: float, now: float) -> Finding:
        """Judge a symbol's newest event time (epoch seconds) at ``now``."""
        ...


@dataclass(frozen=True)
class AgeLimit:
    """At most ``limit`` seconds old, at any hour."""

    limit: float

    def judge(self, newest: float, now: float) -> Finding:
        age = max(0.0, now - newest)
        return Finding(age <= self.limit, f"newest value is {human(age)} old (limit {human(self.limit)})")


@dataclass(frozen=True)
class MarketHours:
    """At most ``limit`` old while the market is open; outside hours, at most ``limit`` before the last close (a
    feed is quiet then, and its last value is the session's last)."""

    limit: float

    def judge(self, newest: float, now: float) -> Finding:
        if market_open(now):
            return AgeLimit(self.limit).judge(newest, now)
        close = last_close(now)
        lag = max(0.0, close - newest)
        where = f"{human(lag)} before" if lag else "at or after"
        text = f"market closed: newest value is {where} the {_session_of(close)} close (limit {human(self.limit)})"
        return Finding(lag <= self.limit, text)


@dataclass(frozen=True)
class LastSession:
    """Holds the last closed session's value (event time at or after its close, less ``slack``) once ``grace`` after
    that close has passed."""

    grace: float = PUBLICATION_GRACE
    slack: float = 0.0

    def judge(self, newest: float, now: float) -> Finding:
        due = last_close(now - self.grace)
        age = f"{human(max(0.0, now - newest))} old"
        if newest >= due - self.slack:
            return Finding(True, f"holds the {_session_of(newest)} session ({age})")
        return Finding(
            False,
            f"holds the {_session_of(newest)} session ({age}); expected the {_session_of(due)} session, due "
            f"{human(self.grace)} after its close",
        )


@dataclass(frozen=True)
class Sparse:
    """Never stale by age: values arrive weeks apart (insider filings). Shows the newest value's age."""

    def judge(self, newest: float, now: float) -> Finding:
        return Finding(True, f"newest value is {human(max(0.0, now - newest))} old (sparse: not judged by age)")


@dataclass(frozen=True)
class ViewRule:
    """A view's rule, and ``absent``: why a symbol may have no value at all (None: every symbol must have one)."""

    rule: Rule
    absent: str | None = None


_SPECIAL: dict[str, ViewRule] = {
    OHLCV_MINUTE.name: ViewRule(LastSession(slack=LAST_BAR_SLACK)),
    REALTIME_QUOTES.name: ViewRule(MarketHours(QUOTE_MAX_AGE)),
    INSIDER_ACTIVITY.name: ViewRule(Sparse(), "no insider filing online (ETFs and many stocks have none)"),
    ETF_FLOW_DAILY.name: ViewRule(
        LastSession(grace=NEXT_MORNING_GRACE), "not an ETF, or never backfilled (in-outflow exists only for ETFs)"
    ),
    # Rows come only where a window changes: a symbol with no alert for an hour has no new row, and that is fresh.
    OPTIONS_FLOW_INTRADAY.name: ViewRule(Sparse(), "no flow alert collected for it (run `stream --flow`)"),
}
_MARKET_HOURS = {OHLCV_MINUTE.name, REALTIME_QUOTES.name}


def view_names() -> list[str]:
    return [d.name for d in FEATURE_DATASETS]


def _known(view: str, flag: str) -> None:
    if view not in view_names():
        raise ConfigError(f"{flag} {view!r} is not a feature view: choose from {', '.join(view_names())}")


def default_rule(view: str) -> ViewRule:
    """The rule a view is judged by when no limit is given: every daily view by :class:`LastSession`."""
    _known(view, "view")
    return _SPECIAL.get(view, ViewRule(LastSession()))


def rule_with_limit(view: str, limit: float) -> ViewRule:
    """An explicit limit for ``view``: every symbol must have a value at most ``limit`` old (on the market-hours clock
    for the minute and realtime views)."""
    _known(view, "--max-age")
    if not limit > 0 or limit == float("inf"):
        raise ConfigError(f"--max-age {view}: the limit must be a positive duration, e.g. {view}=4d")
    return ViewRule(MarketHours(limit) if view in _MARKET_HOURS else AgeLimit(limit))


def default_rules() -> dict[str, ViewRule]:
    """Every feature view's default rule, in the order of :data:`~ingestion.datasets.FEATURE_DATASETS`."""
    return {view: default_rule(view) for view in view_names()}


def judge_view(rule: ViewRule, newest: Mapping[str, float | None], now: float) -> Finding:
    """Judge a view from each symbol's newest event time (None: no value online): fresh when every symbol is (a
    symbol with no value fails, unless the view allows it, ``rule.absent``). The line names what failed, or else the
    oldest symbol's state and the symbols skipped."""
    if not newest:
        return Finding(True, "no symbols to check")
    absent = [symbol for symbol, at in newest.items() if at is None]
    present = {symbol: at for symbol, at in newest.items() if at is not None}
    findings = {symbol: rule.rule.judge(at, now) for symbol, at in present.items()}
    problems = [f"{symbol}: {f.text}" for symbol, f in findings.items() if not f.ok]
    if absent and rule.absent is None:
        problems.insert(0, f"no online value for {', '.join(absent)}: run a backfill or materialize")
    if problems:
        return Finding(False, "; ".join(problems))
    lines = []
    if present:
        oldest = min(present, key=present.__getitem__)
        lines.append(findings[oldest].text if len(newest) == 1 else f"oldest {oldest}: {findings[oldest].text}")
    if absent:
        lines.append(f"skipped {', '.join(absent)}: {rule.absent}")
    return Finding(True, "; ".join(lines))
