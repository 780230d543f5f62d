"""Ground-truth corporate actions of the simulated market: splits and cash dividends, each with its announcement.

The default universe keeps its real split history (ex-date, ratio, announcement date) and pays realistic quarterly
cash dividends (AAPL, MSFT, JPM: real-looking schedules and raises). Dividend ``cash_amount`` is per share **as
traded on the ex-date** (AAPL's May 2020 dividend is 0.82, four times the 0.205 a post-split share got), as the
vendor reports it. The price path of :mod:`ingestion.simulators.market` drops by the cash amount at each ex-date.

A record is knowable from its announcement: ``SplitRecord.declared_date`` (the vendor does not serve it; the clock
uses it) and ``DividendRecord.declaration_date``. Ids are ``E`` + 64 hex digits, stable per record, like Polygon's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from functools import lru_cache

from ingestion import calendar

Splits = tuple[tuple[dt.date, int], ...]
"""A symbol's splits as ``(ex-date, ratio)``: a 10-for-1 split is ratio 10."""

# Real split history of the default universe (ex-date, ratio), so the `adjusted` switch has something to do.
SPLITS: dict[str, Splits] = {
    "AAPL": ((dt.date(2020, 8, 31), 4),),
    "TSLA": ((dt.date(2020, 8, 31), 5), (dt.date(2022, 8, 25), 3)),
    "NVDA": ((dt.date(2021, 7, 20), 4), (dt.date(2024, 6, 10), 10)),
    "AMZN": ((dt.date(2022, 6, 6), 20),),
    "GOOGL": ((dt.date(2022, 7, 18), 20),),
}

# When each real split was announced (board approval / press release).
SPLIT_DECLARED: dict[tuple[str, dt.date], dt.date] = {
    ("AAPL", dt.date(2020, 8, 31)): dt.date(2020, 7, 30),
    ("TSLA", dt.date(2020, 8, 31)): dt.date(2020, 8, 11),
    ("TSLA", dt.date(2022, 8, 25)): dt.date(2022, 8, 5),
    ("NVDA", dt.date(2021, 7, 20)): dt.date(2021, 5, 21),
    ("NVDA", dt.date(2024, 6, 10)): dt.date(2024, 5, 22),
    ("AMZN", dt.date(2022, 6, 6)): dt.date(2022, 3, 9),
    ("GOOGL", dt.date(2022, 7, 18)): dt.date(2022, 2, 1),
}
DEFAULT_SPLIT_NOTICE = dt.timedelta(days=21)
"""Announcement lead of a split that is not in :data:`SPLIT_DECLARED` (a test's own split)."""

# T+1 settlement (2024-05-28) made the record date the ex-date; before it the record date was the next session.
T_PLUS_ONE = dt.date(2024, 5, 28)


@dataclass(frozen=True)
class SplitRecord:
    """One split: ``split_to`` new shares for every ``split_from`` old ones, effective at ``execution_date``."""

    id: str
    ticker: str
    execution_date: dt.date
    split_from: float
    split_to: float
    declared_date: dt.date


@dataclass(frozen=True)
class DividendRecord:
    """One cash dividend; ``cash_amount`` is per share as traded on the ex-date. Dates may be None in bad records."""

    id: str
    ticker: str
    ex_dividend_date: dt.date
    declaration_date: dt.date | None
    record_date: dt.date | None
    pay_date: dt.date | None
    cash_amount: float
    currency: str = "USD"
    frequency: int = 4
    dividend_type: str = "CD"


@dataclass(frozen=True)
class _Schedule:
    """A quarterly dividend: months of the ex-dates, the day of month they fall on or after, announcement lead, pay
    lag, and the amount per **current** share from each ex-date on (raises)."""

    months: tuple[int, ...]
    anchor_day: int
    notice_days: int
    pay_days: int
    amounts: tuple[tuple[dt.date, float], ...]

    def amount(self, ex_date: dt.date) -> float:
        current = self.amounts[0][1]
        for since, value in self.amounts:
            if ex_date >= since:
                current = value
        return current


_SCHEDULES: dict[str, _Schedule] = {
    "AAPL": _Schedule(
        (2, 5, 8, 11), 8, 8, 6,
        ((dt.date(2019, 1, 1), 0.1925), (dt.date(2020, 5, 1), 0.205), (dt.date(2021, 5, 1), 0.22),
         (dt.date(2022, 5, 1), 0.23), (dt.date(2023, 5, 1), 0.24), (dt.date(2024, 5, 1), 0.25),
         (dt.date(2025, 5, 1), 0.26), (dt.date(2026, 5, 1), 0.27)),
    ),
    "MSFT": _Schedule(
        (2, 5, 8, 11), 15, 60, 29,
        ((dt.date(2019, 1, 1), 0.51), (dt.date(2020, 11, 1), 0.56), (dt.date(2021, 11, 1), 0.62),
         (dt.date(2022, 11, 1), 0.68), (dt.date(2023, 11, 1), 0.75), (dt.date(2024, 11, 1), 0.83),
         (dt.date(2025, 11, 1), 0.91), (dt.date(2026, 11, 1), 1.00)),
    ),
    "JPM": _Schedule(
        (1, 4, 7, 10), 5, 18, 26,
        ((dt.date(2019, 1, 1), 0.90), (dt.date(2021, 10, 1), 1.00), (dt.date(2023, 10, 1), 1.05),
         (dt.date(2024, 7, 1), 1.15), (dt.date(2024, 10, 1), 1.25), (dt.date(2025, 7, 1), 1.40),
         (dt.date(2026, 7, 1), 1.50)),
    ),
}  # fmt: skip


def record_id(*parts: object) -> str:
    """A stable vendor-style id: ``E`` + 64 hex digits."""
    return "E" + hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=32).hexdigest()


def split_records(symbol: str, splits: Splits) -> tuple[SplitRecord, ...]:
    """The truth of a symbol's splits, in execution order."""
    out = []
    for ex_date, ratio in sorted(splits):
        declared = SPLIT_DECLARED.get((symbol, ex_date), ex_date - DEFAULT_SPLIT_NOTICE)
        rid = record_id("split", symbol, ex_date, ratio)
        out.append(SplitRecord(rid, symbol, ex_date, 1.0, float(ratio), declared))
    return tuple(out)


def split_factor(splits: Splits, day: dt.date, known_by: dt.date | None = None) -> int:
    """Product of the ratios of splits executed after ``day`` (and, with ``known_by``, on or before it)."""
    factor = 1
    for ex_date, ratio in splits:
        if ex_date > day and (known_by is None or ex_date <= known_by):
            factor *= ratio
    return factor


def _session_on_or_after(day: dt.date) -> dt.date:
    following = calendar.sessions(day, day + dt.timedelta(days=10))
    # Beyond the calendar's horizon (a year ahead) there are no sessions: keep the day itself.
    return following[0].date() if len(following) else day


def _session_on_or_before(day: dt.date) -> dt.date:
    # Boards announce on business days.
    earlier = calendar.sessions(day - dt.timedelta(days=10), day)
    return earlier[-1].date() if len(earlier) else day


@lru_cache(maxsize=64)
def default_dividends(symbol: str, start: dt.date, last: dt.date, splits: Splits) -> tuple[DividendRecord, ...]:
    """The default quarterly dividends of ``symbol`` with an ex-date in ``[start, last]`` (none for non-payers)."""
    schedule = _SCHEDULES.get(symbol)
    if schedule is None:
        return ()
    out: list[DividendRecord] = []
    for year in range(start.year, last.year + 1):
        for month in schedule.months:
            ex_date = _session_on_or_after(dt.date(year, month, schedule.anchor_day))
            if not start <= ex_date <= last:
                continue
            record = ex_date if ex_date >= T_PLUS_ONE else _session_on_or_after(ex_date + dt.timedelta(days=1))
            pay = _session_on_or_after(ex_date + dt.timedelta(days=schedule.pay_days))
            declared = _session_on_or_before(ex_date - dt.timedelta(days=schedule.notice_days))
            # The schedule is per current share; the vendor reports per share as traded on the ex-date.
            cash = round(schedule.amount(ex_date) * split_factor(splits, ex_date), 4)
            rid = record_id("dividend", symbol, ex_date, cash)
            out.append(DividendRecord(rid, symbol, ex_date, declared, record, pay, cash))
    return tuple(out)
