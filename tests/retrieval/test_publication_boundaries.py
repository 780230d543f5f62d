"""Every feature view at its publication boundary, through the real producers, our ASOF store and stock Feast.

Each view gets two values: an older one, and a newer one whose publication instant is worked out by hand from the
view's rule (``ingestion.datasets``, ``ingestion.publication``). A training row one microsecond before that instant
must see the older value; at the instant and one microsecond after, the newer one. The rows are made by the code
that makes them in production (Polygon page parser, Unusual Whales aggregates), so a wrong stamp anywhere fails here.
"""

from __future__ import annotations

import datetime as dt

import orjson
import pandas as pd
import pytest
from feast import FeatureStore
from fixtures.retrieval import write_parts

from ingestion import datasets
from ingestion.config import PUBLICATION_DELAYS_VARIABLE, Settings
from ingestion.datasets import CREATED_TS, ENTITY_KEY, EVENT_TS, Dataset
from ingestion.polygon.parse import parse_aggs
from ingestion.unusual_whales import aggregates

T = pd.Timestamp
US = pd.Timedelta(microseconds=1)
WRITTEN = T("2024-06-01T00:00:00Z")  # created_timestamp: after everything, as a later backfill would write


def _ms(text: str) -> int:
    return int(T(text).value // 1_000_000)


def _bars(timespan: str, starts: list[str]) -> pd.DataFrame:
    """Bars of SYM through the Polygon page parser; close = 1, 2, ... in order."""
    results = [{"o": 1.0, "h": 9.0, "l": 0.5, "c": float(i + 1), "v": 100.0, "t": _ms(s)} for i, s in enumerate(starts)]
    body = orjson.dumps({"ticker": "SYM", "status": "OK", "results": results})
    frame = parse_aggs(body, symbol="SYM", timespan=timespan, multiplier=1, adjusted=True, endpoint="aggs").frame
    frame[CREATED_TS] = WRITTEN
    for column in datasets.OHLCV_DAILY.column_names:
        if column not in frame:
            frame[column] = float("nan")
    return frame


def _alerts() -> pd.DataFrame:
    created = pd.Series([T("2024-03-04T15:00Z"), T("2024-03-05T15:00Z"), T("2024-03-05T16:00Z")])
    return pd.DataFrame(
        {
            "id": pd.Series(["a", "b", "c"], dtype="string"),
            "symbol": pd.Series(["SYM"] * 3, dtype="string"),
            "created_at": created.astype("datetime64[us, UTC]"),
            "type": pd.Series(["call"] * 3, dtype="string"),
            "total_premium": [1.0, 2.0, 3.0],
            "has_sweep": pd.Series([False] * 3, dtype="boolean"),
        }
    )


def _prints() -> pd.DataFrame:
    executed = pd.Series([T("2024-03-04T15:00Z"), T("2024-03-05T15:00Z"), T("2024-03-05T23:00Z")])
    return pd.DataFrame(
        {
            "symbol": pd.Series(["SYM"] * 3, dtype="string"),
            "executed_at": executed.astype("datetime64[us, UTC]"),
            "price": [10.0, 10.0, 10.0],
            "size": pd.Series([1, 1, 1], dtype="Int64"),
            "premium": [10.0, 10.0, 10.0],
            "canceled": pd.Series([False] * 3, dtype="boolean"),
            "volume": pd.Series([1, 2, 3], dtype="Int64"),
        }
    )


def _insiders() -> pd.DataFrame:
    filed = pd.Series([T("2024-03-01T21:00Z"), T("2024-03-05T21:00Z")])
    return pd.DataFrame(
        {
            "id": pd.Series(["f1", "f2"], dtype="string"),
            "symbol": pd.Series(["SYM"] * 2, dtype="string"),
            "filed_at": filed.astype("datetime64[us, UTC]"),
            "amount": pd.Series([10, 20], dtype="Int64"),
            "value": [100.0, 200.0],
        }
    )


def _etf() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "symbol": pd.Series(["SYM"] * 2, dtype="string"),
            "date": pd.Series([dt.date(2024, 3, 4), dt.date(2024, 3, 5)], dtype="date32[pyarrow]"),
            "change": pd.Series([1, 2], dtype="Int64"),
            "change_prem": [1.0, 2.0],
            "close": [1.0, 1.0],
            "volume": pd.Series([1, 1], dtype="Int64"),
            "is_fomc": pd.Series([False, False], dtype="boolean"),
        }
    )


def _quotes() -> pd.DataFrame:
    at = pd.Series([T("2024-03-05T15:00:00.5Z"), T("2024-03-05T15:00:01.25Z")]).astype("datetime64[us, UTC]")
    frame = pd.DataFrame({ENTITY_KEY: "SYM", EVENT_TS: at, CREATED_TS: WRITTEN})
    for column in datasets.REALTIME_QUOTES.features:
        frame[column.name] = [1.0, 2.0] if column.name != "trade_count_1m" else pd.array([1, 2], dtype="Int64")
    return frame


# view, feature, rows, the newer value's publication instant (by hand), older value, newer value
CASES: list[tuple[Dataset, str, object, str, float, float]] = [
    # Mar 5 (EST): Polygon's day is final at 20:00 New York = 01:00Z on the 6th, plus the 15-minute delay.
    (datasets.OHLCV_DAILY, "close", lambda: _bars("day", ["2024-03-04T05:00Z", "2024-03-05T05:00Z"]),
     "2024-03-06T01:15:00Z", 1.0, 2.0),
    # The 15:01Z minute ends at 15:02:00, published 15 s later.
    (datasets.OHLCV_MINUTE, "close", lambda: _bars("minute", ["2024-03-05T15:00Z", "2024-03-05T15:01Z"]),
     "2024-03-05T15:02:15Z", 1.0, 2.0),
    # Options day ends at 16:15 New York (21:15Z), published 15 minutes later.
    (datasets.OPTIONS_FLOW_DAILY, "alert_count", lambda: aggregates.options_flow_daily(_alerts(), now=WRITTEN),
     "2024-03-05T21:30:00Z", 1, 2),
    # Prints until 20:00 New York (the 23:00Z print is 18:00 EST: Mar 5), published at 20:15 = 01:15Z.
    (datasets.DARK_POOL_DAILY, "dp_trade_count", lambda: aggregates.dark_pool_daily(_prints(), now=WRITTEN),
     "2024-03-06T01:15:00Z", 1, 2),
    # At the filing instant, no delay.
    (datasets.INSIDER_ACTIVITY, "net_value_30d", lambda: aggregates.insider_activity(_insiders(), now=WRITTEN),
     "2024-03-05T21:00:00Z", 100.0, 300.0),
    # Mar 5's creations and redemptions: the next session's open, Mar 6 09:30 EST.
    (datasets.ETF_FLOW_DAILY, "etf_flow_shares", lambda: aggregates.etf_flow_daily(_etf(), now=WRITTEN),
     "2024-03-06T14:30:00Z", 1.0, 2.0),
    # The tick's own SIP time.
    (datasets.REALTIME_QUOTES, "last_price", _quotes, "2024-03-05T15:00:01.25Z", 1.0, 2.0),
]  # fmt: skip


def _read(store: FeatureStore, view: str, feature: str, instants: list[pd.Timestamp]) -> list[object]:
    entity = pd.DataFrame({ENTITY_KEY: "SYM", EVENT_TS: instants, "row": range(len(instants))})
    frame = store.get_historical_features(entity_df=entity, features=[f"{view}:{feature}"]).to_df()
    return frame.sort_values("row")[feature].tolist()


@pytest.mark.parametrize(
    ("dataset", "feature", "rows", "published", "older", "newer"), CASES, ids=lambda c: getattr(c, "name", None)
)
def test_a_training_row_sees_only_what_was_published(
    store: FeatureStore,
    asof_repo: Settings,
    dataset: Dataset,
    feature: str,
    rows: object,
    published: str,
    older: float,
    newer: float,
) -> None:
    assert callable(rows)
    frame = rows()
    at = T(published)
    assert at in set(frame[EVENT_TS]), f"no row of {dataset.name} published at {at}: {sorted(set(frame[EVENT_TS]))}"
    write_parts(asof_repo, dataset, frame, parts=1)
    got = _read(store, dataset.name, feature, [at - US, at, at + US])
    assert got == [older, newer, newer]


def test_a_configured_delay_moves_the_boundary(
    store: FeatureStore, asof_repo: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PUBLICATION_DELAYS_VARIABLE, "ohlcv_minute=45s")
    frame = _bars("minute", ["2024-03-05T15:00Z", "2024-03-05T15:01Z"])
    write_parts(asof_repo, datasets.OHLCV_MINUTE, frame, parts=1)
    at = T("2024-03-05T15:02:45Z")
    assert _read(store, "ohlcv_minute", "close", [at - US, at, at + US]) == [1.0, 2.0, 2.0]
