"""Lookahead, materialize and offline push through the ASOF store, on real NYSE sessions and a real Redis.

A daily bar is knowable at its session close, so a training row at 10:00 New York on day D must see day D-1's bar,
never D's: the bug that would make a backtest look brilliant.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pyarrow.parquet as pq
from feast import FeatureStore
from feast.data_source import PushMode
from fixtures.retrieval import write_parts

from ingestion import calendar, datasets
from ingestion.config import Settings
from ingestion.datasets import CREATED_TS, ENTITY_KEY, EVENT_TS

NY = "America/New_York"


def daily_bars(symbol: str, start: str, end: str) -> pd.DataFrame:
    """One ohlcv_daily row per session, stamped at the session close; ``close`` is the session's index."""
    days = calendar.sessions(start, end)
    n = len(days)
    closes = pd.to_datetime(calendar.session_closes(days)).tz_localize("UTC")
    frame = pd.DataFrame({ENTITY_KEY: symbol, EVENT_TS: closes, CREATED_TS: closes + pd.Timedelta(minutes=5)})
    frame["window_start"] = pd.DatetimeIndex(days).tz_localize(NY).tz_convert("UTC")
    for col in datasets.OHLCV_DAILY.columns:
        if col.name not in frame.columns:
            frame[col.name] = col.default if col.default is not None else False if str(col.dtype) == "bool" else 0
    frame["close"] = [float(i) for i in range(n)]
    frame["transactions"] = range(n)
    return frame


def test_morning_row_sees_yesterdays_close_never_todays(store: FeatureStore, asof_repo: Settings) -> None:
    # June-July 2024: includes the July 3 half day (13:00 close) and the July 4 holiday.
    bars = daily_bars("LOOK", "2024-06-03", "2024-07-12")
    write_parts(asof_repo, datasets.OHLCV_DAILY, bars, parts=2)
    days = calendar.sessions("2024-06-04", "2024-07-12")
    morning = [pd.Timestamp(f"{d.date()} 10:00", tz=NY) for d in days]
    just_before = [calendar.session_close(d) - pd.Timedelta(microseconds=1) for d in days]
    at_close = [calendar.session_close(d) for d in days]
    entity = pd.DataFrame({ENTITY_KEY: "LOOK", EVENT_TS: [*morning, *just_before, *at_close]})
    result = store.get_historical_features(entity_df=entity, features=["ohlcv_daily:close"]).to_df()

    index_of = {d.date(): i for i, d in enumerate(calendar.sessions("2024-06-03", "2024-07-12"))}
    previous = [float(index_of[calendar.previous_session(d).date()]) for d in days]
    same_day = [float(index_of[d.date()]) for d in days]
    n = len(days)
    assert result["close"].iloc[:n].tolist() == previous
    assert result["close"].iloc[n : 2 * n].tolist() == previous
    assert result["close"].iloc[2 * n :].tolist() == same_day
    # The morning after the holiday reads the half day's 13:00 close.
    july5 = morning.index(pd.Timestamp("2024-07-05 10:00", tz=NY))
    assert result["close"].iloc[july5] == float(index_of[datetime(2024, 7, 3).date()])


def test_materialize_writes_the_newest_row_per_symbol(store: FeatureStore, asof_repo: Settings) -> None:
    bars = pd.concat([daily_bars("MATA", "2024-05-01", "2024-05-31"), daily_bars("MATB", "2024-05-01", "2024-05-20")])
    last = bars[bars[ENTITY_KEY] == "MATA"].iloc[[-1]].copy()
    # A correction of MATA's last bar, written later at the same event time: the newest write must win.
    last[CREATED_TS] = last[CREATED_TS] + pd.Timedelta(hours=1)
    last["close"] = 999.0
    write_parts(asof_repo, datasets.OHLCV_DAILY, pd.concat([bars, last], ignore_index=True), parts=3)
    store.materialize(
        start_date=datetime(2024, 4, 1, tzinfo=UTC),
        end_date=datetime(2024, 6, 30, tzinfo=UTC),
        feature_views=["ohlcv_daily"],
    )
    # Read while both symbols' newest bars are within the view's ttl (MATB's last bar is May 20).
    store.config.online_store.read_at = datetime(2024, 5, 24, 12, tzinfo=UTC)
    online = store.get_online_features(
        features=["ohlcv_daily:close", "ohlcv_daily:transactions"], entity_rows=[{"symbol": "MATA"}, {"symbol": "MATB"}]
    ).to_dict()
    mata_sessions = len(calendar.sessions("2024-05-01", "2024-05-31"))
    matb_sessions = len(calendar.sessions("2024-05-01", "2024-05-20"))
    assert online["close"] == [999.0, float(matb_sessions - 1)]
    assert online["transactions"] == [mata_sessions - 1, matb_sessions - 1]


def test_offline_push_lands_a_part_file_that_retrieval_reads(store: FeatureStore, asof_repo: Settings) -> None:
    # One existing part file gives Feast the source's columns; the push must add a file, not rewrite this one.
    seed = daily_bars("PUSH", "2024-05-01", "2024-05-03")
    write_parts(asof_repo, datasets.OHLCV_DAILY, seed, parts=1)
    quotes_dir = asof_repo.offline_dir / datasets.REALTIME_QUOTES.name
    at = pd.Timestamp("2024-05-02 14:30", tz="UTC")
    row = {c.name: [1.5] for c in datasets.REALTIME_QUOTES.features}
    row["trade_count_1m"] = [7]
    frame = pd.DataFrame({ENTITY_KEY: ["PUSH"], EVENT_TS: [at], CREATED_TS: [at], **row})
    # The realtime view has no files yet: write one so the push knows the source's columns.
    write_parts(asof_repo, datasets.REALTIME_QUOTES, frame.assign(last_price=[1.0]), parts=1)
    before = sorted(quotes_dir.rglob("*.parquet"))
    pushed = frame.assign(**{EVENT_TS: [at + pd.Timedelta(minutes=1)], CREATED_TS: [at + pd.Timedelta(minutes=1)]})
    store.push("realtime_quotes_push", pushed, to=PushMode.OFFLINE)
    after = sorted(quotes_dir.rglob("*.parquet"))
    assert set(before) < set(after) and len(after) == len(before) + 1
    assert pq.read_table(before[0]).num_rows == 1

    entity = pd.DataFrame({ENTITY_KEY: ["PUSH", "PUSH"], EVENT_TS: [at, at + pd.Timedelta(minutes=2)]})
    result = store.get_historical_features(
        entity_df=entity, features=["realtime_quotes:last_price", "realtime_quotes:trade_count_1m"]
    ).to_df()
    assert result["last_price"].tolist() == [1.0, 1.5]
    assert result["trade_count_1m"].tolist() == [7, 7]
    assert str(result["trade_count_1m"].dtype) == "Int64"


def test_pull_all_returns_the_window_and_to_sql_shows_the_asof_join(store: FeatureStore, asof_repo: Settings) -> None:
    bars = daily_bars("PALL", "2024-05-01", "2024-05-31")
    write_parts(asof_repo, datasets.OHLCV_DAILY, bars, parts=2)
    offline = store._get_provider().offline_store
    source = store.get_feature_view("ohlcv_daily").batch_source
    start, end = datetime(2024, 5, 10, tzinfo=UTC), datetime(2024, 5, 20, 23, tzinfo=UTC)
    table = offline.pull_all_from_table_or_query(
        store.config, source, [ENTITY_KEY], ["close", "transactions"], EVENT_TS, CREATED_TS, start, end
    ).to_arrow()
    expected = bars[(bars[EVENT_TS] >= start) & (bars[EVENT_TS] <= end)]
    assert sorted(table.column("close").to_pylist()) == sorted(expected["close"].tolist())
    assert table.column_names == [ENTITY_KEY, "close", "transactions", EVENT_TS, CREATED_TS]

    entity = pd.DataFrame({ENTITY_KEY: ["PALL"], EVENT_TS: [end]})
    job = store.get_historical_features(entity_df=entity, features=["ohlcv_daily:close"])
    assert "ASOF LEFT JOIN" in job.to_sql()
    assert job.to_arrow().column("close").to_pylist() == [expected["close"].iloc[-1]]
