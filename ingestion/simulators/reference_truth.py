"""Ticker changes and delistings of the simulated market: which ticker a security traded under on each day.

The market generates prices per **security**, named by its latest ticker (``META``, ``TWTR``); this module says under
which ticker the vendor serves each of its sessions. Polygon keys bars, trades and ticker details by the ticker as
traded that day, so a renamed security's history is split across its tickers and a delisted one's stops:

* ``FB`` -> ``META`` (the real change: ``META`` traded from 2022-06-09; the vendor's ``ticker_change`` event carries
  ``reported`` as its date, the spec's example says 2022-06-09, the real capture 2022-06-11): aggregates of ``FB`` end
  on 2022-06-08 and those of ``META`` start on 2022-06-09, one price path, one composite FIGI;
* ``TWTR`` (Twitter: last session 2022-10-27, taken private; the NYSE's formal delisting came on 2022-11-08): no bar
  after its last session, ticker details ``active: false`` with ``delisted_utc`` (the spec: "the last date that the
  asset was traded", as New York midnight of that date in UTC).

Pure data and functions, no I/O, and no import of the market (which imports this module).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_REFERENCE",
    "Delisting",
    "ReferenceTruth",
    "TickerChange",
    "TickerView",
    "ny_midnight_utc",
]


@dataclass(frozen=True)
class TickerChange:
    """``security`` traded as ``old`` before ``first_session`` and as its own name from it.

    ``reported`` is the date the vendor's ``ticker_change`` event gives (it may differ from the first session under
    the new ticker by a few days, as Polygon's META event does); ``old_listed`` is the old ticker's own list date.
    """

    security: str
    old: str
    first_session: dt.date
    reported: dt.date
    old_listed: dt.date
    old_name: str


@dataclass(frozen=True)
class Delisting:
    """``security`` last traded on ``last_session``; it never trades again under any ticker."""

    security: str
    name: str
    listed: dt.date
    last_session: dt.date
    sic_code: str = ""
    sic_description: str = ""
    city: str = ""
    state: str = ""

    @property
    def delisted_utc(self) -> str:
        """The vendor's ``delisted_utc`` of the last session (:func:`ny_midnight_utc`)."""
        return ny_midnight_utc(self.last_session)


@dataclass(frozen=True)
class TickerView:
    """What the vendor says about ``ticker`` on a day: the security behind it, whether it trades, and its last date."""

    ticker: str
    security: str
    active: bool
    name: str | None = None
    listed: dt.date | None = None
    last_traded: dt.date | None = None
    delisted_utc: str | None = None


@dataclass(frozen=True)
class ReferenceTruth:
    """The ticker changes and delistings of a market (empty: every ticker trades under its own name forever)."""

    changes: tuple[TickerChange, ...] = ()
    delistings: tuple[Delisting, ...] = ()
    _by_old: dict[str, TickerChange] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_old", {c.old: c for c in self.changes})

    @property
    def delisted_securities(self) -> tuple[str, ...]:
        """Securities that no longer trade (not part of a market's current symbols, but with a history)."""
        return tuple(d.security for d in self.delistings)

    @property
    def old_tickers(self) -> tuple[str, ...]:
        return tuple(c.old for c in self.changes)

    def knows(self, ticker: str) -> bool:
        """Whether ``ticker`` is an old name or a delisted security of this reference data."""
        return ticker in self._by_old or ticker in self.delisted_securities

    def change_of(self, security: str) -> TickerChange | None:
        return next((c for c in self.changes if c.security == security), None)

    def delisting_of(self, security: str) -> Delisting | None:
        return next((d for d in self.delistings if d.security == security), None)

    def last_session(self, security: str) -> dt.date | None:
        """The last session ``security`` traded (None: it still trades)."""
        gone = self.delisting_of(security)
        return None if gone is None else gone.last_session

    def traded_window(self, ticker: str) -> tuple[str, dt.date | None, dt.date | None]:
        """``(security, first, last)``: the security behind ``ticker`` and the dates it traded under it (None: no
        bound). A ticker this module does not know is its own security, unbounded."""
        change = self._by_old.get(ticker)
        if change is not None:
            return change.security, None, change.first_session - dt.timedelta(days=1)
        change = self.change_of(ticker)
        first = change.first_session if change is not None else None
        return ticker, first, self.last_session(ticker)

    def ticker_on(self, security: str, day: dt.date) -> str:
        """The ticker ``security`` traded under on ``day``."""
        change = self.change_of(security)
        return change.old if change is not None and day < change.first_session else security

    def view(self, ticker: str, day: dt.date) -> TickerView | None:
        """Ticker details of ``ticker`` as of ``day``, or None when the vendor knows no such ticker that day: a new
        ticker before its change (META before 2022-06-09). An old or delisted ticker after its last day is known as
        inactive, with its last date; a delisting is not known before it happens."""
        change = self._by_old.get(ticker)
        if change is not None:
            last = change.first_session - dt.timedelta(days=1)
            name, listed = change.old_name, change.old_listed
            if day <= last:
                return TickerView(ticker, change.security, True, name, listed)
            return TickerView(ticker, change.security, False, name, listed, last, ny_midnight_utc(last))
        change = self.change_of(ticker)
        if change is not None and day < change.first_session:
            return None
        gone = self.delisting_of(ticker)
        if gone is not None and day > gone.last_session:
            return TickerView(ticker, ticker, False, gone.name, gone.listed, gone.last_session, gone.delisted_utc)
        if gone is not None:
            return TickerView(ticker, ticker, True, gone.name, gone.listed)
        return TickerView(ticker, ticker, True)

    def events(self, security: str, day: dt.date) -> list[tuple[str, dt.date]]:
        """``ticker_change`` events of ``security`` known on ``day``, newest first, as ``(ticker, date)``: its first
        ticker at its list date, then each change at its reported date."""
        change = self.change_of(security)
        gone = self.delisting_of(security)
        out: list[tuple[str, dt.date]] = []
        if change is not None:
            out.append((change.old, change.old_listed))
            if change.reported <= day and change.first_session <= day:
                out.append((security, change.reported))
        elif gone is not None:
            out.append((security, gone.listed))
        return sorted(out, key=lambda e: e[1], reverse=True)


def _nth_sunday(year: int, month: int, n: int) -> dt.date:
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(6 - first.weekday()) % 7 + 7 * (n - 1))


def ny_midnight_utc(day: dt.date) -> str:
    """New York midnight of ``day`` in UTC, as the vendor writes ``delisted_utc`` (``...T04:00:00Z`` in summer,
    ``T05:00:00Z`` in winter)."""
    # Daylight saving in New York: second Sunday of March to first Sunday of November (the rules since 2007).
    summer = _nth_sunday(day.year, 3, 2) <= day < _nth_sunday(day.year, 11, 1)
    return f"{day.isoformat()}T{4 if summer else 5:02d}:00:00Z"


DEFAULT_REFERENCE = ReferenceTruth(
    changes=(
        TickerChange(
            security="META",
            old="FB",
            first_session=dt.date(2022, 6, 9),
            reported=dt.date(2022, 6, 9),
            old_listed=dt.date(2012, 5, 18),
            old_name="Meta Platforms, Inc. Class A Common Stock",
        ),
    ),
    delistings=(
        Delisting(
            security="TWTR",
            name="Twitter, Inc. Common Stock",
            listed=dt.date(2013, 11, 7),
            last_session=dt.date(2022, 10, 27),
            sic_code="7370",
            sic_description="SERVICES-COMPUTER PROGRAMMING, DATA PROCESSING, ETC.",
            city="SAN FRANCISCO",
            state="CA",
        ),
    ),
)
"""The default market's reference data: FB renamed META on 2022-06-09, TWTR delisted after 2022-10-27."""
