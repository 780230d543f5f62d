"""Daily aggregates on hand-built frames whose answers were worked out by hand (not by re-running the code)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ingestion.datasets import DARK_POOL_DAILY, ETF_FLOW_DAILY, INSIDER_ACTIVITY, OPTIONS_FLOW_DAILY, Dataset
from ingestion.unusual_whales.aggregates import (
    dark_pool_daily,
    etf_flow_daily,
    insider_activity,
    options_flow_daily,
    trading_day_of,
)

NOW = pd.Timestamp("2026-11-24T00:00:00Z")
T = pd.Timestamp


def utc(*values: str) -> pd.Series:
    return pd.Series([pd.Timestamp(v) for v in values], dtype="datetime64[us, UTC]")


def dates(*values: dt.date) -> pd.Series:
    return pd.Series(list(values), dtype=pd.ArrowDtype(pa.date32()))


def assert_matches_dataset(frame: pd.DataFrame, dataset: Dataset) -> None:
    assert list(frame.columns) == dataset.column_names
    assert pa.Table.from_pandas(frame, preserve_index=False).schema.equals(dataset.arrow_schema())
    assert (frame["created_timestamp"] == NOW).all()


def row(frame: pd.DataFrame, symbol: str, day: dt.date) -> pd.Series:
    hit = frame[(frame["symbol"] == symbol) & (frame["date"] == day)]
    assert len(hit) == 1, f"{symbol} {day}: {len(hit)} rows"
    return hit.iloc[0]


# ------------------------------------------------------------------------------------------------------ sessions


def test_trading_day_is_the_first_day_end_at_or_after_the_instant() -> None:
    # Options flow: the vendor day ends with the options session, 15 minutes after the equity close.
    days = trading_day_of(
        utc(
            "2024-03-05T14:00:00Z",  # 09:00 New York, pre-market: that day
            "2024-03-05T21:00:00Z",  # 16:00 close: ETF options still trade, that day
            "2024-03-05T21:15:00Z",  # exactly 16:15, the options close: that day
            "2024-03-05T21:15:00.000001Z",  # one microsecond after it: next session
            "2024-03-05T22:00:00Z",  # 17:00 New York: next session
            "2024-03-09T15:00:00Z",  # Saturday: Monday
            "2024-11-29T17:00:00Z",  # 12:00 on the Black Friday half day (closes 13:00): that day
            "2024-11-29T18:15:00Z",  # 13:15 on the half day, its options close: that day
            "2024-11-29T19:00:00Z",  # 14:00 on the half day, after its early close: Monday
            "2024-11-28T16:00:00Z",  # Thanksgiving: the half day after it
            "2024-03-06T04:30:00Z",  # 23:30 New York on the 5th: the 6th, never the 5th
        ),
        OPTIONS_FLOW_DAILY,
    )
    assert days.tolist() == [
        dt.date(2024, 3, 5),
        dt.date(2024, 3, 5),
        dt.date(2024, 3, 5),
        dt.date(2024, 3, 6),
        dt.date(2024, 3, 6),
        dt.date(2024, 3, 11),
        dt.date(2024, 11, 29),
        dt.date(2024, 11, 29),
        dt.date(2024, 12, 2),
        dt.date(2024, 11, 29),
        dt.date(2024, 3, 6),
    ]
    # Dark pool: late reports land until 20:00 New York, whatever the close.
    prints = trading_day_of(
        utc("2024-03-05T22:30:00Z", "2024-03-06T01:00:00Z", "2024-03-06T01:00:00.000001Z", "2024-11-29T19:00:00Z"),
        DARK_POOL_DAILY,
    )
    assert prints.tolist() == [dt.date(2024, 3, 5), dt.date(2024, 3, 5), dt.date(2024, 3, 6), dt.date(2024, 11, 29)]


def test_trading_day_refuses_missing_instants() -> None:
    with pytest.raises(ValueError, match="missing timestamp"):
        trading_day_of(
            pd.Series([pd.Timestamp("2024-03-05T14:00Z"), None], dtype="datetime64[us, UTC]"), OPTIONS_FLOW_DAILY
        )


# -------------------------------------------------------------------------------------------------- options flow


def alerts_frame(rows: list[tuple[str, str, str, str, float, Any]]) -> pd.DataFrame:
    ids, symbols, created, kinds, premiums, sweeps = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "id": pd.Series(ids, dtype="string"),
            "symbol": pd.Series(symbols, dtype="string"),
            "created_at": utc(*created),
            "type": pd.Series(kinds, dtype="string"),
            "total_premium": pd.Series(premiums, dtype="float64"),
            "has_sweep": pd.Series(sweeps, dtype="boolean"),
        }
    )


ALERTS = [
    ("1", "MSFT", "2024-03-05T15:00:00Z", "call", 100_000.0, True),
    ("2", "MSFT", "2024-03-05T20:59:59Z", "call", 50_000.0, False),
    ("3", "MSFT", "2024-03-05T21:00:00Z", "put", 30_000.0, None),  # at the equity close: still the 5th
    ("1", "MSFT", "2024-03-05T15:00:00Z", "call", 100_000.0, True),  # polled twice: counts once
    ("4", "MSFT", "2024-03-05T22:00:00Z", "put", 20_000.0, False),  # 17:00 New York: the 6th
    ("5", "MSFT", "2024-03-09T15:00:00Z", "call", 10_000.0, True),  # Saturday: Monday the 11th
    ("6", "AAPL", "2024-03-05T21:00:00.000001Z", "call", 7_000.0, False),  # before 16:15: the 5th
    ("7", "AAPL", "2024-03-05T21:15:00.000001Z", "call", 9_000.0, False),  # after the options close: the 6th
]


def test_options_flow_daily_known_answers() -> None:
    volume = pd.DataFrame(
        {
            "symbol": pd.Series(["MSFT", "MSFT"], dtype="string"),
            "date": dates(dt.date(2024, 3, 5), dt.date(2024, 3, 7)),
            "bullish_premium": [1_000_000.0, 5.0],
            "bearish_premium": [2_000_000.0, 6.0],
            "call_volume": pd.Series([500, 1], dtype="Int64"),
            "put_volume": pd.Series([700, 2], dtype="Int64"),
        }
    )
    out = options_flow_daily(alerts_frame(ALERTS), volume, now=NOW)
    assert_matches_dataset(out, OPTIONS_FLOW_DAILY)
    assert len(out) == 6

    d5 = row(out, "MSFT", dt.date(2024, 3, 5))
    assert d5["event_timestamp"] == T("2024-03-05T21:30:00Z")  # 16:15 EST options close + 15 min
    assert (d5["call_premium"], d5["put_premium"]) == (150_000.0, 30_000.0)
    assert d5["put_call_premium_ratio"] == pytest.approx(0.2)
    assert (d5["alert_count"], d5["sweep_count"]) == (3, 1)
    assert d5["avg_alert_premium"] == 60_000.0
    assert (d5["bullish_premium"], d5["bearish_premium"], d5["call_volume"], d5["put_volume"]) == (1e6, 2e6, 500, 700)

    d6 = row(out, "MSFT", dt.date(2024, 3, 6))
    assert d6["event_timestamp"] == T("2024-03-06T21:30:00Z")
    assert (d6["call_premium"], d6["put_premium"], d6["alert_count"]) == (0.0, 20_000.0, 1)
    assert pd.isna(d6["put_call_premium_ratio"])  # no call premium: null, not inf
    assert pd.isna(d6["bullish_premium"]) and pd.isna(d6["call_volume"])

    d7 = row(out, "MSFT", dt.date(2024, 3, 7))  # volume only: alert columns unknown
    assert d7["bullish_premium"] == 5.0 and pd.isna(d7["alert_count"]) and pd.isna(d7["call_premium"])

    d11 = row(out, "MSFT", dt.date(2024, 3, 11))
    assert d11["event_timestamp"] == T("2024-03-11T20:30:00Z")  # 16:30 EDT after the clock change
    assert (d11["call_premium"], d11["put_call_premium_ratio"], d11["sweep_count"]) == (10_000.0, 0.0, 1)

    aapl = row(out, "AAPL", dt.date(2024, 3, 5))
    assert aapl["call_premium"] == 7_000.0 and aapl["event_timestamp"] == T("2024-03-05T21:30:00Z")
    aapl6 = row(out, "AAPL", dt.date(2024, 3, 6))
    assert aapl6["call_premium"] == 9_000.0 and aapl6["event_timestamp"] == T("2024-03-06T21:30:00Z")


def test_after_close_alert_is_never_visible_before_it_existed() -> None:
    out = options_flow_daily(alerts_frame(ALERTS), now=NOW)
    created = {a[0]: T(a[2]) for a in ALERTS}
    # Every alert sits in a row stamped at or after its own creation.
    frame = alerts_frame(ALERTS).drop_duplicates("id")
    frame["day"] = trading_day_of(frame["created_at"], OPTIONS_FLOW_DAILY)
    for alert_id, day, symbol in zip(frame["id"], frame["day"], frame["symbol"], strict=True):
        assert row(out, symbol, day)["event_timestamp"] >= created[alert_id]


def test_options_flow_empty_inputs_and_non_session_volume_date() -> None:
    empty = options_flow_daily(None, None, now=NOW)
    assert empty.empty
    assert_matches_dataset(empty, OPTIONS_FLOW_DAILY)
    holiday = pd.DataFrame(
        {
            "symbol": pd.Series(["MSFT"], dtype="string"),
            "date": dates(dt.date(2024, 11, 28)),  # Thanksgiving
            "bullish_premium": [1.0],
            "bearish_premium": [1.0],
            "call_volume": pd.Series([1], dtype="Int64"),
            "put_volume": pd.Series([1], dtype="Int64"),
        }
    )
    with pytest.raises(ValueError, match="2024-11-28 is not an NYSE trading day"):
        options_flow_daily(None, holiday, now=NOW)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="time-zone aware"):
        options_flow_daily(alerts_frame(ALERTS[:1]), now=dt.datetime(2026, 1, 1))


# ----------------------------------------------------------------------------------------------------- dark pool


def prints_frame(rows: list[tuple[str, str, float, int, float, Any, int]]) -> pd.DataFrame:
    symbols, executed, prices, sizes, premiums, canceled, volumes = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "symbol": pd.Series(symbols, dtype="string"),
            "executed_at": utc(*executed),
            "price": pd.Series(prices, dtype="float64"),
            "size": pd.Series(sizes, dtype="Int64"),
            "premium": pd.Series(premiums, dtype="float64"),
            "canceled": pd.Series(canceled, dtype="boolean"),
            "volume": pd.Series(volumes, dtype="Int64"),
        }
    )


def test_dark_pool_daily_known_answers() -> None:
    prints = prints_frame(
        [
            ("AAPL", "2024-03-05T15:00:00Z", 10.0, 100, 1_000.0, False, 1_000),
            ("AAPL", "2024-03-05T16:00:00Z", 12.0, 300, 3_600.0, None, 1_300),
            ("AAPL", "2024-03-05T16:00:00Z", 12.0, 300, 3_600.0, None, 1_300),  # the same print fetched twice
            ("AAPL", "2024-03-05T17:00:00Z", 11.0, 1_000, 11_000.0, True, 2_300),  # canceled
            ("AAPL", "2024-03-05T22:30:00Z", 8.0, 50, 400.0, False, 2_340),  # 17:30 New York: still the 5th
            ("AAPL", "2024-03-06T01:30:00Z", 13.0, 50, 650.0, False, 2_350),  # 20:30 New York: the 6th
            ("QID", "2024-03-05T15:00:00Z", 20.0, 10, np.nan, False, 10),  # no premium: price x size
        ]
    )
    consolidated = pd.DataFrame(
        {
            "symbol": ["AAPL", "AAPL"],
            "date": [dt.date(2024, 3, 5), dt.date(2024, 3, 6)],
            "volume": [8_000, 0],
        }
    )
    out = dark_pool_daily(prints, consolidated_volume=consolidated, now=NOW)
    assert_matches_dataset(out, DARK_POOL_DAILY)
    assert len(out) == 3

    d5 = row(out, "AAPL", dt.date(2024, 3, 5))
    assert d5["event_timestamp"] == T("2024-03-06T01:15:00Z")  # 20:00 EST + 15 min
    assert (d5["dp_volume"], d5["dp_notional"], d5["dp_trade_count"]) == (450.0, 5_000.0, 3)
    assert d5["dp_vwap"] == pytest.approx(5_000 / 450)  # (10*100 + 12*300 + 8*50) / 450
    assert d5["dp_largest_notional"] == 3_600.0
    assert d5["dp_share_of_volume"] == pytest.approx(450 / 8000)

    d6 = row(out, "AAPL", dt.date(2024, 3, 6))
    assert (d6["dp_volume"], d6["dp_notional"], d6["dp_vwap"]) == (50.0, 650.0, 13.0)
    assert pd.isna(d6["dp_share_of_volume"])  # consolidated volume 0: unknown, not infinite

    qid = row(out, "QID", dt.date(2024, 3, 5))
    assert qid["dp_notional"] == 200.0 and pd.isna(qid["dp_share_of_volume"])  # no consolidated row


def test_dark_pool_without_consolidated_volume_and_all_canceled() -> None:
    prints = prints_frame([("AAPL", "2024-03-05T15:00:00Z", 10.0, 100, 1_000.0, False, 1)])
    out = dark_pool_daily(prints, now=NOW)
    assert out["dp_share_of_volume"].isna().all() and out["dp_volume"].tolist() == [100.0]
    canceled = prints_frame([("AAPL", "2024-03-05T15:00:00Z", 10.0, 100, 1_000.0, True, 1)])
    empty = dark_pool_daily(canceled, now=NOW)
    assert empty.empty
    assert_matches_dataset(empty, DARK_POOL_DAILY)


# ------------------------------------------------------------------------------------------------------ insiders


def insider_frame(rows: list[tuple[str, str, str, int, float]]) -> pd.DataFrame:
    ids, symbols, filed, amounts, values = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "id": pd.Series(ids, dtype="string"),
            "symbol": pd.Series(symbols, dtype="string"),
            "filed_at": utc(*filed),
            "amount": pd.Series(amounts, dtype="Int64"),
            "value": pd.Series(values, dtype="float64"),
        }
    )


# Filing instants are end-of-New-York-day (what the parser derives from a filing date).
INSIDERS = [
    ("A", "XYZ", "2024-01-03T05:00:00Z", 100, 1_000.0),
    ("B", "XYZ", "2024-01-21T05:00:00Z", -50, -1_000.0),
    ("C", "XYZ", "2024-02-16T05:00:00Z", 10, 300.0),
    ("C2", "XYZ", "2024-02-16T05:00:00Z", -5, -150.0),  # filed together with C: one row
    ("E", "XYZ", "2024-03-12T04:00:00Z", 1, 7.0),  # exactly 30 days before D: outside D's 30-day window
    ("D", "XYZ", "2024-04-11T04:00:00Z", -10, -500.0),
    ("A", "XYZ", "2024-01-03T05:00:00Z", 100, 1_000.0),  # same vendor id again: counts once
    ("N", "NOP", "2024-01-03T05:00:00Z", 100, np.nan),  # no price: counted, adds no value
]

# symbol, event time, net 30d, net 90d, buys 90d, sells 90d, latest filing's value (worked out by hand): the rows
# at filing instants (roll-off rows are checked below)
INSIDER_EXPECTED = [
    ("NOP", "2024-01-03T05:00:00Z", 0.0, 0.0, 1, 0, None),
    ("XYZ", "2024-01-03T05:00:00Z", 1_000.0, 1_000.0, 1, 0, 1_000.0),
    ("XYZ", "2024-01-21T05:00:00Z", 0.0, 0.0, 1, 1, -1_000.0),
    ("XYZ", "2024-02-16T05:00:00Z", -850.0, 150.0, 2, 2, 150.0),  # 30d drops A (Jan 3 < Jan 17)
    ("XYZ", "2024-03-12T04:00:00Z", 157.0, 157.0, 3, 2, 7.0),
    ("XYZ", "2024-04-11T04:00:00Z", -500.0, -1_343.0, 2, 3, -500.0),  # 90d drops A; 30d drops E (boundary)
]


def _insider_tuples(out: pd.DataFrame) -> list[tuple[Any, ...]]:
    return [
        (
            r.symbol,
            r.event_timestamp,
            r.net_value_30d,
            r.net_value_90d,
            r.buy_count_90d,
            r.sell_count_90d,
            None if pd.isna(r.last_transaction_value) else r.last_transaction_value,
        )
        for r in out.itertuples()
    ]


def test_insider_activity_known_answers() -> None:
    out = insider_activity(insider_frame(INSIDERS), now=NOW)
    assert_matches_dataset(out, INSIDER_ACTIVITY)
    filed = {T(r[2]) for r in INSIDERS}
    got = _insider_tuples(out[out["event_timestamp"].isin(filed)].reset_index(drop=True))
    expected = [(s, T(t), *rest) for s, t, *rest in INSIDER_EXPECTED]
    assert got == expected
    rolled = _insider_tuples(out[~out["event_timestamp"].isin(filed)].reset_index(drop=True))
    # A leaves the 30-day window on Feb 2: only B remains; the last filing's value stays B's.
    assert ("XYZ", T("2024-02-02T05:00:00Z"), -1_000.0, 0.0, 1, 1, -1_000.0) in rolled
    # 90 days after the last filing every window is empty: explicit zeros, not the old totals.
    assert rolled[-1] == ("XYZ", T("2024-07-10T04:00:00Z"), 0.0, 0.0, 0, 0, -500.0)
    assert ("NOP", T("2024-04-02T05:00:00Z"), 0.0, 0.0, 0, 0, None) in rolled


def test_insider_windows_equal_brute_force_at_random_instants() -> None:
    """The value an as-of read returns at any instant equals the windows recomputed from the filings public then."""
    rng = np.random.default_rng(17)
    start = T("2024-01-01T00:00:00Z")
    filed = start + pd.to_timedelta(np.sort(rng.integers(0, 300 * 86_400, 60)), unit="s")
    filed = filed.append(filed[[5, 6, 20]] + pd.Timedelta(days=30))  # filings exactly on a window boundary
    n = len(filed)
    amounts = rng.integers(-500, 500, n)
    amounts[amounts == 0] = 1
    values = amounts * rng.uniform(1, 50, n)
    values[rng.random(n) < 0.1] = np.nan
    frame = pd.DataFrame(
        {
            "id": pd.Series([f"i{k}" for k in range(n)], dtype="string"),
            "symbol": pd.Series(["RND"] * n, dtype="string"),
            "filed_at": pd.Series(filed, dtype="datetime64[us, UTC]"),
            "amount": pd.Series(amounts, dtype="Int64"),
            "value": values,
        }
    )
    out = insider_activity(frame, now=NOW)
    instants = start + pd.to_timedelta(rng.integers(0, 420 * 86_400_000_000, 200), unit="us")
    instants = instants.append(
        pd.DatetimeIndex([filed[5] + pd.Timedelta(days=30), filed[9], filed[9] - pd.Timedelta(microseconds=1)])
    )
    for at in instants:
        public = frame[frame["filed_at"] <= at]
        if public.empty:
            continue
        seen = out[out["event_timestamp"] <= at].iloc[-1]  # the as-of read

        def window(days: int, public: pd.DataFrame = public, at: pd.Timestamp = at) -> pd.DataFrame:
            return public[public["filed_at"] > at - pd.Timedelta(days=days)]

        assert seen["net_value_30d"] == pytest.approx(window(30)["value"].sum(min_count=0), abs=1e-6), at
        assert seen["net_value_90d"] == pytest.approx(window(90)["value"].sum(min_count=0), abs=1e-6), at
        assert seen["buy_count_90d"] == (window(90)["amount"] > 0).sum(), at
        assert seen["sell_count_90d"] == (window(90)["amount"] < 0).sum(), at
        latest = public[public["filed_at"] == public["filed_at"].max()]["value"]
        expected_last = latest.sum() if latest.notna().any() else None
        if expected_last is None:
            assert pd.isna(seen["last_transaction_value"]), at
        else:
            assert seen["last_transaction_value"] == pytest.approx(expected_last), at


def test_insider_windows_never_see_later_filings() -> None:
    everything = insider_activity(insider_frame(INSIDERS), now=NOW)
    cutoff = T("2024-02-16T05:00:00Z")
    # A late filing about an old trade (transaction Jan 10, filed Feb 20) must not reach the Feb 16 row either.
    late = [*INSIDERS, ("L", "XYZ", "2024-02-20T05:00:00Z", -1_000, -99_999.0)]
    with_late = insider_activity(insider_frame(late), now=NOW)
    known_then = insider_activity(insider_frame([r for r in INSIDERS if T(r[2]) <= cutoff]), now=NOW)
    known_then = known_then[known_then["event_timestamp"] <= cutoff].reset_index(drop=True)
    for frame in (everything, with_late):
        early = frame[frame["event_timestamp"] <= cutoff].reset_index(drop=True)
        pd.testing.assert_frame_equal(early, known_then)
    late_row = with_late[with_late["event_timestamp"] == T("2024-02-20T05:00:00Z")].iloc[0]
    # The late filing counts from its own filing on: C + C2 + L; B (exactly 30 days earlier) has left the window.
    assert late_row["net_value_30d"] == 300.0 - 150.0 - 99_999.0


def test_insider_activity_from_parsed_filing_dates() -> None:
    """End to end with the parser: a Form 4 dated Friday is public at the end of Friday in New York."""
    from ingestion.unusual_whales.parse import INSIDER_TRANSACTIONS, parse_insider_transactions

    rows = [
        {
            "id": "x",
            "ticker": "ABC",
            "amount": 200,
            "price": "5",
            "filing_date": "2024-06-07",
            "transaction_date": "2024-06-03",
        }
    ]
    parsed = parse_insider_transactions({"data": rows}, endpoint=INSIDER_TRANSACTIONS).frame
    out = insider_activity(parsed, now=NOW)
    # The filing, then its roll-off from the 30- and 90-day windows.
    assert out["event_timestamp"].tolist() == [
        T("2024-06-08T04:00:00Z"),
        T("2024-07-08T04:00:00Z"),
        T("2024-09-06T04:00:00Z"),
    ]
    assert out["last_transaction_value"].tolist() == [1_000.0] * 3
    assert out["net_value_30d"].tolist() == [1_000.0, 0.0, 0.0] and out["buy_count_90d"].tolist() == [1, 1, 0]


def test_insider_activity_empty() -> None:
    empty = insider_activity(insider_frame([("A", "X", "2024-01-03T05:00:00Z", 1, 1.0)]).iloc[:0], now=NOW)
    assert_matches_dataset(empty, INSIDER_ACTIVITY)


# ----------------------------------------------------------------------------------------------------- ETF flows


def etf_frame(rows: list[tuple[str, dt.date, int, float, float, int, bool]]) -> pd.DataFrame:
    symbols, days, changes, prems, closes, volumes, fomc = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "symbol": pd.Series(symbols, dtype="string"),
            "date": dates(*days),
            "change": pd.Series(changes, dtype="Int64"),
            "change_prem": pd.Series(prems, dtype="float64"),
            "close": pd.Series(closes, dtype="float64"),
            "volume": pd.Series(volumes, dtype="Int64"),
            "is_fomc": pd.Series(fomc, dtype="boolean"),
        }
    )


def test_etf_flow_daily_known_answers() -> None:
    flows = etf_frame(
        [
            ("SPY", dt.date(2024, 11, 29), 10, 5_000.0, 500.0, 100, False),
            ("SPY", dt.date(2024, 11, 27), -50, -12_000.0, 236.16, 592_342, True),
            ("SPY", dt.date(2024, 11, 29), 20, 10_000.0, 501.0, 200, False),  # re-fetched: the later row wins
        ]
    )
    out = etf_flow_daily(flows, now=NOW)
    assert_matches_dataset(out, ETF_FLOW_DAILY)
    assert out["date"].tolist() == [dt.date(2024, 11, 27), dt.date(2024, 11, 29)]
    # Published the next morning: the half day's flow at Monday's open.
    assert out["event_timestamp"].tolist() == [T("2024-11-29T14:30:00Z"), T("2024-12-02T14:30:00Z")]
    assert out["etf_flow_shares"].tolist() == [-50.0, 20.0]
    assert out["etf_flow_premium"].tolist() == [-12_000.0, 10_000.0]
    assert out["etf_close"].tolist() == [236.16, 501.0]
    assert out["etf_volume"].tolist() == [592_342, 200]
    assert out["is_fomc"].tolist() == [True, False]


def test_etf_flow_on_a_holiday_is_refused() -> None:
    with pytest.raises(ValueError, match="2024-11-28"):
        etf_flow_daily(etf_frame([("SPY", dt.date(2024, 11, 28), 1, 1.0, 1.0, 1, False)]), now=NOW)


# --------------------------------------------------------------------------------------------------- quiet days


def test_quiet_days_are_zeros_not_yesterdays_counts() -> None:
    sessions = [dt.date(2024, 3, 4), dt.date(2024, 3, 5), dt.date(2024, 3, 6)]
    flow = options_flow_daily(alerts_frame(ALERTS[:2]), now=NOW, sessions=sessions, symbols=["QUIET"])
    assert_matches_dataset(flow, OPTIONS_FLOW_DAILY)
    msft4 = row(flow, "MSFT", dt.date(2024, 3, 4))
    assert (msft4["alert_count"], msft4["sweep_count"], msft4["call_premium"], msft4["put_premium"]) == (0, 0, 0.0, 0.0)
    assert pd.isna(msft4["avg_alert_premium"]) and pd.isna(msft4["put_call_premium_ratio"])
    assert pd.isna(msft4["call_volume"])  # options volume was not asked for: unknown, not zero
    assert row(flow, "MSFT", dt.date(2024, 3, 5))["alert_count"] == 2
    assert row(flow, "MSFT", dt.date(2024, 3, 6))["alert_count"] == 0
    assert flow[flow["symbol"] == "QUIET"]["alert_count"].tolist() == [0, 0, 0]

    prints = prints_frame([("AAPL", "2024-03-05T15:00:00Z", 10.0, 100, 1_000.0, False, 1)])
    volume = pd.DataFrame({"symbol": ["AAPL"], "date": [dt.date(2024, 3, 6)], "volume": [5_000]})
    dark = dark_pool_daily(prints, now=NOW, sessions=sessions, consolidated_volume=volume)
    assert_matches_dataset(dark, DARK_POOL_DAILY)
    quiet = row(dark, "AAPL", dt.date(2024, 3, 6))
    assert (quiet["dp_volume"], quiet["dp_notional"], quiet["dp_trade_count"], quiet["dp_share_of_volume"]) == (
        0.0,
        0.0,
        0,
        0.0,
    )
    assert pd.isna(quiet["dp_vwap"]) and pd.isna(quiet["dp_largest_notional"])
    assert quiet["event_timestamp"] == T("2024-03-07T01:15:00Z")
    assert row(dark, "AAPL", dt.date(2024, 3, 5))["dp_trade_count"] == 1
    # Every print canceled on a fetched day: a quiet day too.
    canceled = prints_frame([("AAPL", "2024-03-05T15:00:00Z", 10.0, 100, 1_000.0, True, 1)])
    assert dark_pool_daily(canceled, now=NOW, sessions=sessions[1:2])["dp_trade_count"].tolist() == [0]
