"""The one implementation of the rolling flow windows, against the brute-force definition.

Rows exist only at change points (a publication, or an alert leaving a window); the newest row at or before any
instant must equal the brute-force windows there, also long after the last alert (windows rolled off, no new alert).
The online side (:class:`RollingWindows`, poll by poll) must produce exactly the rows the training side computes from
all alerts at once."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from fixtures.flow_windows import FEATURES, brute_force, same, truth_alerts

from ingestion import calendar
from ingestion.datasets import ENTITY_KEY, EVENT_TS
from ingestion.simulators.market import Market
from ingestion.simulators.uw_truth import UWTruth
from ingestion.unusual_whales.rolling import RollingWindows, rolling_rows

DAYS = [dt.date(2024, 3, 4), dt.date(2024, 3, 5)]
SYMBOLS = ["AAPL", "SPY"]


@pytest.fixture(scope="module")
def alerts() -> pd.DataFrame:
    truth = UWTruth(Market(seed=11, start=dt.date(2024, 2, 1), end=dt.date(2024, 3, 8)))
    return truth_alerts(truth, SYMBOLS, DAYS)


def _asof(rows: pd.DataFrame, symbol: str, at: pd.Timestamp) -> pd.Series | None:
    mine = rows[rows[ENTITY_KEY] == symbol]
    stamps = pd.to_datetime(mine[EVENT_TS], utc=True).dt.as_unit("us").astype("int64").to_numpy()
    i = int(np.searchsorted(stamps, at.value // 1000, side="right")) - 1
    return None if i < 0 else mine.iloc[i]


def _instants(n: int, seed: int) -> list[pd.Timestamp]:
    """Random instants over both sessions and the evenings after them (windows rolled off)."""
    rng = np.random.default_rng(seed)
    lo = calendar.session_open(DAYS[0]).value // 1000
    hi = (calendar.session_close(DAYS[-1]) + pd.Timedelta(hours=3)).value // 1000
    picks = rng.integers(lo, hi, n).tolist()
    return [pd.Timestamp(int(p), unit="us", tz="UTC") for p in picks]


def test_newest_row_at_any_instant_is_the_brute_force_window(alerts: pd.DataFrame) -> None:
    rows = rolling_rows(alerts, None, calendar.session_close(DAYS[-1]) + pd.Timedelta(hours=3))
    assert not rows.duplicated([ENTITY_KEY, EVENT_TS]).any()
    assert len(alerts) > 300  # realistic rates: hundreds of alerts a session
    # Instants exactly at publications and roll-offs, and just before them, are the edge cases.
    times = pd.to_datetime(alerts[EVENT_TS], utc=True)
    edges = [t + d for t in times.iloc[::61] for d in (pd.Timedelta(0), pd.Timedelta(minutes=5), -pd.Timedelta("1us"))]
    for at in [*_instants(100, 1), *edges]:
        for symbol in SYMBOLS:
            row = _asof(rows, symbol, at)
            want = brute_force(alerts, symbol, at)
            if row is None:
                assert want["alert_count_60m"] == 0
                continue
            bad = {f: (row[f], want[f]) for f in FEATURES if not same(row[f], want[f])}
            assert not bad, (symbol, at, bad)


def test_polls_emit_exactly_the_rows_of_one_pass(alerts: pd.DataFrame) -> None:
    """RollingWindows fed poll by poll (each poll: the alerts published since the last, then its as-of) writes the
    same rows as one pass over every alert, roll-offs between polls with no new alert included."""
    end = calendar.session_close(DAYS[0]) + pd.Timedelta(hours=2)
    start = calendar.session_open(DAYS[0]) - pd.Timedelta(minutes=1)
    windows = RollingWindows(emitted_to=start)
    rng = np.random.default_rng(5)
    times = pd.to_datetime(alerts[EVENT_TS], utc=True)
    emitted, at = [], start
    while at < end:
        nxt = at + pd.Timedelta(seconds=float(rng.uniform(1, 300)))
        new = alerts[((times > at) & (times <= nxt)).to_numpy()]
        emitted.append(windows.advance(new, nxt))
        at = nxt
    online = pd.concat(emitted, ignore_index=True)
    offline = rolling_rows(alerts[(times <= at).to_numpy()], start, at)
    cols = [ENTITY_KEY, EVENT_TS, *FEATURES]
    pd.testing.assert_frame_equal(
        online[cols].sort_values([ENTITY_KEY, EVENT_TS]).reset_index(drop=True),
        offline[cols].sort_values([ENTITY_KEY, EVENT_TS]).reset_index(drop=True),
    )


def test_a_late_alert_re_emits_its_rows_and_converges(alerts: pd.DataFrame) -> None:
    """An alert that reaches a poll after the windows passed its time rewrites the rows from its time on, with the
    values one pass computes (newer created_timestamp wins at equal event times)."""
    day = alerts[pd.to_datetime(alerts[EVENT_TS], utc=True).dt.date == DAYS[0]]
    late = day.iloc[[len(day) // 2]]
    on_time = day.drop(index=late.index)
    t_late = pd.Timestamp(late[EVENT_TS].iloc[0])
    windows = RollingWindows(emitted_to=calendar.session_open(DAYS[0]) - pd.Timedelta(minutes=1))
    first = windows.advance(
        on_time[pd.to_datetime(on_time[EVENT_TS], utc=True) <= t_late + pd.Timedelta(minutes=1)],
        t_late + pd.Timedelta(minutes=1),
    )
    second = windows.advance(late, t_late + pd.Timedelta(minutes=2))
    assert (second[EVENT_TS] == t_late).any()  # re-emitted from the late alert's own time
    # ... and a row at the poll's instant, so the online value (kept only when newer) is corrected at once.
    at_poll = second[second[EVENT_TS] == t_late + pd.Timedelta(minutes=2)]
    for row in at_poll.itertuples(index=False):
        want = brute_force(pd.concat([on_time, late]), getattr(row, ENTITY_KEY), t_late + pd.Timedelta(minutes=2))
        assert all(same(getattr(row, f), want[f]) for f in FEATURES)
    assert len(at_poll) == second[ENTITY_KEY].nunique()
    final = (
        pd.concat([first.assign(order=0), second.assign(order=1)])
        .sort_values([ENTITY_KEY, EVENT_TS, "order"])
        .drop_duplicates([ENTITY_KEY, EVENT_TS], keep="last")
    )
    both = pd.concat([on_time, late])
    at = t_late + pd.Timedelta(seconds=30)
    symbol = str(late[ENTITY_KEY].iloc[0])
    row = _asof(final.reset_index(drop=True), symbol, at)
    want = brute_force(both, symbol, at)
    assert row is not None
    assert all(same(row[f], want[f]) for f in FEATURES)
