"""The rolling options-flow windows of ``options_flow_intraday``: one implementation, online and for training.

A row at instant ``t`` describes, per symbol and window ``w`` (5, 15, 60 minutes), the flow alerts *published* in
``(t - w, t]`` (publication = the ``flow_alerts`` event time, the vendor's ``created_at``). The values only change
when an alert is published or when one leaves a window, so the rows are written at exactly those **change points**
(every ``created_at`` and every ``created_at + w``) and nowhere else. A point-in-time lookup (Feast's ASOF join:
the newest row at or before ``T``) therefore returns precisely the brute-force window at ``T``, also long after the
last alert, when every window has emptied: a window that rolls off without a new alert still gets its row.

The flow collector calls :func:`rolling_rows` on each poll for the change points between its previous poll and
this one (:class:`RollingWindows` keeps the last hour of alerts); the flow backfill calls it on a unit's alerts read
back from the raw ``flow_alerts`` dataset. Same function, same inputs, same rows: no training/serving skew.

Premiums are summed in whole cents (int64), so a window's sum is exact and does not depend on which other alerts
the input held (a float prefix sum would differ in the last bit between a poll's input and a whole day's).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ingestion.datasets import CREATED_TS, ENTITY_KEY, EVENT_TS, FLOW_WINDOWS, OPTIONS_FLOW_INTRADAY

WINDOWS: dict[str, int] = {w: int(pd.Timedelta(w.replace("m", "min")).value // 1000) for w in FLOW_WINDOWS}
"""Window name -> length in microseconds."""
LONGEST_US = max(WINDOWS.values())
_COLUMNS = OPTIONS_FLOW_INTRADAY.column_names


@dataclass(frozen=True)
class _Alerts:
    """One symbol's alerts as arrays, oldest first; money in cents."""

    t: np.ndarray
    call: np.ndarray
    put: np.ndarray
    bull: np.ndarray
    bear: np.ndarray
    sweep: np.ndarray
    premium: np.ndarray


def _cents(values: pd.Series) -> np.ndarray:
    dollars = pd.to_numeric(values, errors="coerce").astype("float64").fillna(0.0).to_numpy()
    cents: np.ndarray = np.rint(dollars * 100).astype(np.int64)
    return cents


def _prepare(alerts: pd.DataFrame) -> dict[str, _Alerts]:
    """``flow_alerts`` rows -> per-symbol arrays (one alert per id)."""
    if "id" in alerts:
        alerts = alerts.drop_duplicates("id", keep="last")
    t = pd.to_datetime(alerts[EVENT_TS], utc=True).dt.as_unit("us").astype("int64").to_numpy()
    is_call = (alerts["type"].astype("string") == "call").fillna(False).to_numpy(dtype=bool)
    premium = _cents(alerts["total_premium"])
    ask, bid = _cents(alerts["total_ask_side_prem"]), _cents(alerts["total_bid_side_prem"])
    frame = pd.DataFrame(
        {
            "symbol": alerts[ENTITY_KEY].astype("string").to_numpy(),
            "t": t,
            "call": np.where(is_call, premium, 0),
            "put": np.where(is_call, 0, premium),
            # Bought calls (ask side) and sold puts (bid side) bet on a rise; the mirror images on a fall.
            "bull": np.where(is_call, ask, bid),
            "bear": np.where(is_call, bid, ask),
            "sweep": alerts["has_sweep"].astype("boolean").fillna(False).to_numpy(dtype=np.int64),
            "premium": premium,
        }
    ).sort_values(["symbol", "t"], kind="stable")
    out: dict[str, _Alerts] = {}
    for symbol, part in frame.groupby("symbol", sort=True):
        out[str(symbol)] = _Alerts(
            *(part[c].to_numpy() for c in ("t", "call", "put", "bull", "bear", "sweep", "premium"))
        )
    return out


def _window_sum(prefix: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    out: np.ndarray = prefix[right] - prefix[left]
    return out


def _range_max(values: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``max(values[l:r])`` for each query (0 for an empty range), with a sparse table: O((n + q) log n)."""
    out = np.zeros(len(left), dtype=values.dtype)
    if len(values) == 0:
        return out
    levels = [values]
    while 2 ** len(levels) <= len(values):
        prev, half = levels[-1], 2 ** (len(levels) - 1)
        levels.append(np.maximum(prev[:-half], prev[half:]))
    length = right - left
    nonempty = length > 0
    level = np.zeros(len(left), dtype=np.int64)
    level[nonempty] = np.floor(np.log2(length[nonempty])).astype(np.int64)
    for j in np.unique(level[nonempty]):
        rows = nonempty & (level == j)
        table = levels[int(j)]
        out[rows] = np.maximum(table[left[rows]], table[right[rows] - 2 ** int(j)])
    return out


def change_points(t: np.ndarray, lo_us: int | None, hi_us: int) -> np.ndarray:
    """Sorted distinct instants in ``(lo_us, hi_us]`` at which a window over alerts at ``t`` changes."""
    points = np.concatenate([t, *(t + w for w in WINDOWS.values())])
    keep = points <= hi_us
    if lo_us is not None:
        keep &= points > lo_us
    return np.unique(points[keep])


def _rows_for(symbol: str, a: _Alerts, at: np.ndarray) -> dict[str, object]:
    cols: dict[str, object] = {ENTITY_KEY: np.full(len(at), symbol, dtype=object), EVENT_TS: at}
    right = np.searchsorted(a.t, at, side="right")
    prefixes = {k: np.concatenate([[0], np.cumsum(getattr(a, k))]) for k in ("call", "put", "bull", "bear", "sweep")}
    for w, length in WINDOWS.items():
        left = np.searchsorted(a.t, at - length, side="right")
        call = _window_sum(prefixes["call"], left, right)
        put = _window_sum(prefixes["put"], left, right)
        cols[f"call_premium_{w}"] = call / 100
        cols[f"put_premium_{w}"] = put / 100
        cols[f"bullish_premium_{w}"] = _window_sum(prefixes["bull"], left, right) / 100
        cols[f"bearish_premium_{w}"] = _window_sum(prefixes["bear"], left, right) / 100
        with np.errstate(divide="ignore", invalid="ignore"):
            cols[f"put_call_premium_ratio_{w}"] = np.where(call > 0, put / np.where(call > 0, call, 1), np.nan)
        cols[f"sweep_count_{w}"] = _window_sum(prefixes["sweep"], left, right)
        cols[f"alert_count_{w}"] = right - left
        cols[f"largest_premium_{w}"] = _range_max(a.premium, left, right) / 100
    return cols


def rolling_rows(
    alerts: pd.DataFrame,
    lo: pd.Timestamp | None,
    hi: pd.Timestamp,
    *,
    created: pd.Timestamp | None = None,
    also_at: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """``options_flow_intraday`` rows at every change point in ``(lo, hi]`` (``lo`` None: from the first alert).

    ``alerts`` are ``flow_alerts`` rows (``symbol``, ``event_timestamp``, ``id``, ``type``, ``total_premium``,
    ``total_ask_side_prem``, ``total_bid_side_prem``, ``has_sweep``) and must hold every alert published in
    ``(lo - 60 min, hi]`` of the symbols concerned; alerts after ``hi`` are ignored (they are not published yet at
    any row's instant). ``created`` stamps ``created_timestamp`` (default: now). ``also_at`` adds a row at that
    instant for every symbol (the online side's correction after a late alert, see :class:`RollingWindows`).
    """
    hi_us = int(pd.Timestamp(hi).value // 1000)
    lo_us = None if lo is None else int(pd.Timestamp(lo).value // 1000)
    parts: list[pd.DataFrame] = []
    for symbol, a in _prepare(alerts).items() if len(alerts) else ():
        published = a.t <= hi_us
        if not published.all():
            a = _Alerts(*(getattr(a, k)[published] for k in a.__dataclass_fields__))
        at = change_points(a.t, lo_us, hi_us)
        if also_at is not None:
            at = np.union1d(at, [int(pd.Timestamp(also_at).value // 1000)])
        if len(at):
            parts.append(pd.DataFrame(_rows_for(symbol, a, at)))
    stamp = pd.Timestamp.now(tz="UTC") if created is None else pd.Timestamp(created)
    if parts:
        rows = pd.concat(parts, ignore_index=True)
    else:
        # The same columns and dtypes as a non-empty result, so that frames of several polls concatenate cleanly.
        rows = pd.DataFrame(_rows_for("", _Alerts(*([np.zeros(0, np.int64)] * 7)), np.zeros(0, np.int64)))
    rows[EVENT_TS] = pd.to_datetime(rows[EVENT_TS].astype("int64"), unit="us", utc=True).astype("datetime64[us, UTC]")
    rows[CREATED_TS] = pd.Series(stamp.tz_convert("UTC").floor("us"), index=rows.index, dtype="datetime64[us, UTC]")
    return rows.loc[:, _COLUMNS]


@dataclass
class RollingWindows:
    """The online side: the last hour of alerts per symbol and the instant up to which rows were emitted.

    :meth:`advance` takes the alerts of one poll and the poll's as-of instant (everything published by then has been
    seen) and returns the rows of the change points since the previous call, a roll-off without any new alert
    included. An alert published at or before the last emitted instant (a late publication) re-emits the rows from
    its own time on, so the stored rows converge on what the backfill computes from the raw dataset, plus a row at
    the poll's instant: the online store keeps a row only when it is newer than the stored one, so without it the
    correction would not reach the online value until the next change point.
    """

    emitted_to: pd.Timestamp | None = None
    keep_extra: pd.Timedelta = field(default_factory=lambda: pd.Timedelta(minutes=2))
    _alerts: pd.DataFrame = field(default_factory=pd.DataFrame)

    def seed(self, alerts: pd.DataFrame, emitted_to: pd.Timestamp | None) -> None:
        """Start from stored state: the raw alerts of the last hour before ``emitted_to`` (a restart)."""
        self._alerts = alerts.copy()
        self.emitted_to = emitted_to

    def advance(self, new: pd.DataFrame, as_of: pd.Timestamp, created: pd.Timestamp | None = None) -> pd.DataFrame:
        """Take one poll's new ``flow_alerts`` rows; return the rows of the change points up to ``as_of``."""
        as_of = pd.Timestamp(as_of).tz_convert("UTC")
        lo = self.emitted_to
        late = False
        if len(new):
            oldest = pd.Timestamp(pd.to_datetime(new[EVENT_TS], utc=True).min())
            if lo is not None and oldest <= lo:
                lo, late = oldest - pd.Timedelta(microseconds=1), True
            self._alerts = new.copy() if self._alerts.empty else pd.concat([self._alerts, new], ignore_index=True)
        if (lo is not None and as_of <= lo) or self._alerts.empty:
            self.emitted_to = as_of if self.emitted_to is None else max(self.emitted_to, as_of)
            return rolling_rows(self._alerts.iloc[0:0], lo, as_of)
        rows = rolling_rows(self._alerts, lo, as_of, created=created, also_at=as_of if late else None)
        self.emitted_to = as_of if self.emitted_to is None else max(self.emitted_to, as_of)
        # Keep what a late alert (up to keep_extra behind) could still need: the hour before it.
        horizon = as_of - pd.Timedelta(microseconds=LONGEST_US) - self.keep_extra
        times = pd.to_datetime(self._alerts[EVENT_TS], utc=True)
        self._alerts = self._alerts[(times > horizon).to_numpy()].reset_index(drop=True)
        return rows


__all__ = ["LONGEST_US", "WINDOWS", "RollingWindows", "change_points", "rolling_rows"]
