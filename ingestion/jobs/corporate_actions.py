"""Corporate actions for daily bars: refreshed from Polygon, checked against each other, landed append-only, and
turned into the per-bar split factor and dividend that the derived features use.

Bars are stored as traded; a split or a dividend never rewrites one. Instead the ``corporate_actions`` dataset keeps
every validated action with the time it became known (:func:`ingestion.polygon.actions.known_at`), and the derived
features of a bar use only the actions known at that bar's event time (:func:`bar_adjustments`).

The daily OHLCV job refreshes a symbol's actions (:class:`CorporateActions`) once per run, before any bar of the symbol
is derived. The rows a page can check on its own were checked by the parser; here the records are checked against
each other and against what is already stored, and a record that fails goes to quarantine with its reason:

* the same vendor id twice in one refresh;
* a split on a day the symbol already splits (another id), or with the same ratio within
  :data:`DUPLICATE_SPLIT_DAYS` of a kept split (a vendor's duplicate record: applied twice it would turn 10:1 into
  100:1); a dividend of the same amount and type on the same ex-date under another id;
* a stored id whose record came back different (a vendor correction): the stored row stays, since features already
  derived from it must not change meaning, and the new version waits in quarantine for review.

Of two records in conflict the one already stored wins, then the earlier ex-date, then the smaller id, so a refresh
decides the same way whatever order pages arrive in. The dataset is append-only: only records not yet stored are
landed, and a row is keyed by (kind, vendor id), so a re-run writes nothing new.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from ingestion.datasets import CORPORATE_ACTIONS, ENTITY_KEY, EVENT_TS
from ingestion.polygon.actions import ACTION_COLUMNS
from ingestion.rejects import ParseResult, Rejected
from ingestion.store.objectstore import Root
from ingestion.store.offline import dedupe_on_key, read_dataset

DUPLICATE_SPLIT_DAYS: Final = 30
"""Two splits of one symbol with the same ratio this close (calendar days) are one split recorded twice."""
CASH_CURRENCIES: Final = frozenset({"USD"})
"""Dividends in these currencies (or with none given) count in total returns; prices are in US dollars."""
_KEY = ["kind", "action_id"]
# Columns that say what an action is; a stored id whose record differs in one of them is a correction.
_CONTENT = [c for c in ACTION_COLUMNS if c not in (EVENT_TS,)]


class ActionsClient(Protocol):
    """What a refresh needs of the Polygon client (:class:`~ingestion.polygon.rest.PolygonRESTClient`)."""

    def fetch_splits(self, symbol: str) -> ParseResult: ...

    def fetch_dividends(self, symbol: str) -> ParseResult: ...


@dataclass
class Refreshed:
    """A symbol's corporate actions after a refresh: every valid one (stored and new), the new ones to land, and the
    records refused with their reason."""

    actions: pd.DataFrame
    new: pd.DataFrame
    rejected: list[Rejected] = field(default_factory=list)


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (None if _missing(v) else v) for k, v in row.items()} for row in frame.to_dict("records")]


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value)


def _conflict(row: dict[str, Any], kept: list[dict[str, Any]]) -> str | None:
    """Why ``row`` duplicates one of ``kept`` (same symbol), or None."""
    for other in kept:
        if other["kind"] != row["kind"] or other[ENTITY_KEY] != row[ENTITY_KEY]:
            continue
        same_day = other["ex_date"] == row["ex_date"]
        if row["kind"] == "split":
            if same_day:
                return f"duplicate split: {row[ENTITY_KEY]} already splits on {row['ex_date']} ({other['action_id']})"
            apart = abs((row["ex_date"] - other["ex_date"]).days)
            if other["ratio"] == row["ratio"] and apart <= DUPLICATE_SPLIT_DAYS:
                return (
                    f"duplicate split: same ratio {row['split_to']:g}:{row['split_from']:g} as {other['action_id']} "
                    f"(ex-date {other['ex_date']}), {apart} days apart"
                )
        elif same_day and other["cash_amount"] == row["cash_amount"] and other["dividend_type"] == row["dividend_type"]:
            return (
                f"duplicate dividend: {row[ENTITY_KEY]} already pays {row['cash_amount']:g} on {row['ex_date']} "
                f"({other['action_id']})"
            )
    return None


def reconcile(fetched: pd.DataFrame, stored: pd.DataFrame) -> Refreshed:
    """Check ``fetched`` actions against each other and against ``stored`` ones (see the module docstring)."""
    kept = _rows(stored)
    by_key = {(r["kind"], r["action_id"]): r for r in kept}
    seen: set[tuple[str, str]] = set()
    new: list[dict[str, Any]] = []
    rejected: list[Rejected] = []
    ordered = fetched.sort_values(["kind", "ex_date", "action_id"], kind="stable") if len(fetched) else fetched
    for row in _rows(ordered):
        key = (row["kind"], row["action_id"])
        reason: str | None
        if key in seen:
            reason = f"duplicate {row['kind']} id {row['action_id']!r} in one refresh"
        elif key in by_key:
            stored_row = by_key[key]
            if all(_same(stored_row.get(c), row.get(c)) for c in _CONTENT):
                seen.add(key)
                continue  # already stored as it is: nothing to land
            reason = f"{row['kind']} {row['action_id']!r} differs from the stored record (a vendor correction)"
        else:
            reason = _conflict(row, kept)
        seen.add(key)
        if reason is not None:
            rejected.append(Rejected(CORPORATE_ACTIONS.name, f"polygon {row['kind']}s", reason, row))
            continue
        kept.append(row)
        new.append(row)
    # ``kept`` is the stored rows then the new ones: rebuilt from rows, so all-null columns keep their dtypes.
    return Refreshed(_frame(kept, fetched), _frame(new, fetched), rejected)


def _same(a: Any, b: Any) -> bool:
    if _missing(a) and _missing(b):
        return True
    if isinstance(a, float) or isinstance(b, float):
        return not (_missing(a) or _missing(b)) and float(a) == float(b)
    return bool(a == b)


def _frame(rows: list[dict[str, Any]], like: pd.DataFrame) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(ACTION_COLUMNS))
    return frame.astype(like.dtypes.to_dict()) if len(like.columns) == len(ACTION_COLUMNS) else frame


def stored_actions(data_dir: Root, symbol: str) -> pd.DataFrame:
    """The ``corporate_actions`` rows of ``symbol`` already stored, one per (kind, vendor id)."""
    frame = read_dataset(data_dir, CORPORATE_ACTIONS, [symbol])
    return dedupe_on_key(CORPORATE_ACTIONS, frame).loc[:, list(ACTION_COLUMNS)].reset_index(drop=True)


class CorporateActions:
    """Refreshes each symbol's actions once per run (the first daily unit of the symbol lands them; later units of
    the same run reuse them). Thread-safe: the engine runs symbols in parallel."""

    def __init__(self, client: ActionsClient, data_dir: Root) -> None:
        self.client = client
        self.data_dir = data_dir
        self._done: dict[str, pd.DataFrame] = {}
        self._lock = threading.Lock()

    def refresh(self, symbol: str) -> Refreshed:
        """Every valid action of ``symbol``; on the first call of a run also the new rows to land and the refusals.

        Raises the client's errors: without a fresh list of actions a split could pass unseen and a stored return
        would read -90% for good, so the unit fails and a later run resumes it.
        """
        with self._lock:
            known = self._done.get(symbol)
        if known is not None:
            return Refreshed(known, known.iloc[:0])
        fetched = ParseResult.concat([self.client.fetch_splits(symbol), self.client.fetch_dividends(symbol)])
        mine = fetched.frame[fetched.frame[ENTITY_KEY] == symbol] if len(fetched.frame) else fetched.frame
        # A record for another ticker (a vendor ignoring the filter) is not this symbol's action.
        strangers = fetched.frame[fetched.frame[ENTITY_KEY] != symbol] if len(fetched.frame) else fetched.frame
        refused = [*fetched.rejected, *_strangers(strangers, symbol)]
        result = reconcile(mine, stored_actions(self.data_dir, symbol))
        with self._lock:
            self._done[symbol] = result.actions
        return Refreshed(result.actions, result.new, [*refused, *result.rejected])


def _strangers(frame: pd.DataFrame, symbol: str) -> list[Rejected]:
    return [
        Rejected(CORPORATE_ACTIONS.name, f"polygon {row['kind']}s", f"ticker is not the requested {symbol}", row)
        for row in _rows(frame)
    ]


# ------------------------------------------------------------------------------------------------ per-bar values


@dataclass(frozen=True)
class BarAdjustments:
    """Per bar: the cumulative split factor and the cash dividend per share going ex that session."""

    split_factor: npt.NDArray[np.float64]
    dividend: npt.NDArray[np.float64]


def bar_adjustments(
    actions: pd.DataFrame | None, symbols: npt.NDArray[Any], days: list[dt.date], event_times: npt.NDArray[Any]
) -> BarAdjustments:
    """The split factor and dividend of each bar, from the actions known at its event time.

    ``split_factor`` is the product of ``split_to / split_from`` over the symbol's splits with ex-date on or before
    the bar's session, counting only splits known by the bar's event time (by the knowledge-time rule every split
    that affects a bar is). ``dividend`` sums the cash amounts (US dollars) of dividends going ex on the bar's
    session and known by then. With no actions, every factor is 1 and every dividend 0.
    """
    n = len(days)
    factor = np.ones(n, dtype="float64")
    dividend = np.zeros(n, dtype="float64")
    if actions is None or actions.empty or n == 0:
        return BarAdjustments(factor, dividend)
    # One order whatever order the actions were stored in, so a product of ratios is the same float on every run.
    actions = actions.sort_values(["ex_date", "kind", "action_id"], kind="stable").reset_index(drop=True)
    day_arr = np.array(days, dtype="datetime64[D]")
    times = pd.to_datetime(pd.Series(event_times), utc=True).to_numpy(dtype="datetime64[us]")
    known = pd.to_datetime(actions[EVENT_TS], utc=True).dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    ex = np.array(list(actions["ex_date"]), dtype="datetime64[D]")
    for i, (symbol, kind) in enumerate(zip(actions[ENTITY_KEY], actions["kind"], strict=True)):
        hit = (symbols == symbol) & (known[i] <= times)
        if kind == "split":
            factor[hit & (ex[i] <= day_arr)] *= float(actions["ratio"].iloc[i])
        elif _cash(actions["currency"].iloc[i]):
            dividend[hit & (ex[i] == day_arr)] += float(actions["cash_amount"].iloc[i])
    return BarAdjustments(factor, dividend)


def _cash(currency: Any) -> bool:
    return _missing(currency) or str(currency).upper() in CASH_CURRENCIES


__all__ = [
    "DUPLICATE_SPLIT_DAYS",
    "BarAdjustments",
    "CorporateActions",
    "Refreshed",
    "bar_adjustments",
    "reconcile",
    "stored_actions",
]
