"""The ASOF offline store against a brute-force point-in-time join in plain pandas, through the normal Feast API.

Random data per seed: several symbols, ties in event time broken by created time, gaps longer than the ttl, entity
rows before any data, unknown symbols, duplicate entity rows; several views, a FeatureService, entity frames as a
DataFrame and as SQL. Fixtures (``asof_repo``, ``store``) are in tests/fixtures/retrieval.py.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from feast import FeatureStore
from fixtures.retrieval import write_parts

from ingestion import datasets
from ingestion.config import Settings
from ingestion.datasets import CREATED_TS, ENTITY_KEY, EVENT_TS, Dataset

T0 = pd.Timestamp("2024-03-01 00:00", tz="UTC")
KNOWN = ["AAA", "BBB", "CCC", "DDD", "EEE"]


def random_rows(dataset: Dataset, rng: np.random.Generator, n: int, span: timedelta) -> pd.DataFrame:
    """``n`` random rows of ``dataset``: a gap per symbol longer than any short ttl, and ties in event time."""
    seconds = int(span.total_seconds())
    symbols = rng.choice(KNOWN, n)
    offsets = rng.integers(0, seconds // 60, n) * 60
    # Each symbol has a silent stretch (a third of the span) so that later entity rows fall outside the ttl.
    gap_start = {s: int(rng.integers(0, seconds // 2)) for s in KNOWN}
    keep = np.array(
        [not (gap_start[s] <= o < gap_start[s] + seconds // 3) for s, o in zip(symbols, offsets, strict=True)]
    )
    symbols, offsets = symbols[keep], offsets[keep]
    # Ties: a quarter of the rows are re-written at an existing (symbol, event time) with other values.
    ties = rng.choice(len(symbols), len(symbols) // 4, replace=False)
    symbols = np.concatenate([symbols, symbols[ties]])
    offsets = np.concatenate([offsets, offsets[ties]])
    m = len(symbols)
    event = T0 + pd.to_timedelta(offsets, unit="s")
    # Distinct created times, so that a tie has exactly one winner (the newest write).
    created = T0 + pd.to_timedelta(rng.permutation(m) * 7 + 10, unit="s")
    data: dict[str, object] = {ENTITY_KEY: symbols, EVENT_TS: event, CREATED_TS: created}
    for col in dataset.columns:
        if col.name in data:
            continue
        if pa.types.is_floating(col.dtype):
            values = rng.normal(0, 1, m)
            values[rng.random(m) < 0.1] = np.nan
            data[col.name] = values
        elif pa.types.is_integer(col.dtype):
            ints = pd.array(rng.integers(0, 1_000_000, m), dtype="Int64")
            ints[rng.random(m) < 0.1] = pd.NA
            data[col.name] = ints
        elif pa.types.is_boolean(col.dtype):
            data[col.name] = rng.random(m) < 0.5
        elif pa.types.is_timestamp(col.dtype):
            data[col.name] = event - pd.Timedelta(minutes=1)
        elif pa.types.is_date32(col.dtype):
            data[col.name] = event.date
        elif pa.types.is_string(col.dtype):
            data[col.name] = rng.choice(["polygon", "unusual_whales"], m)
        else:
            raise AssertionError(f"no generator for {col.dtype}")
    return pd.DataFrame(data)


def random_entities(rng: np.random.Generator, n: int, span: timedelta) -> pd.DataFrame:
    """Entity rows over the span and a little before it, with unknown symbols and repeated rows."""
    symbols = rng.choice([*KNOWN, "UNKNOWN", "ZZZ"], n)
    seconds = rng.integers(-86_400, int(span.total_seconds()) + 86_400, n)
    frame = pd.DataFrame(
        {ENTITY_KEY: symbols, EVENT_TS: T0 + pd.to_timedelta(seconds, unit="s"), "label": rng.normal(size=n)}
    )
    # Some rows exactly at a feature time would need the data; repeats of whole rows test that none multiply.
    return pd.concat([frame, frame.iloc[: n // 10]], ignore_index=True)


def brute_force(entity: pd.DataFrame, rows: pd.DataFrame, features: list[str], ttl: timedelta) -> pd.DataFrame:
    """Per entity row: the feature row of its symbol with the greatest (event time, created time) at or before the
    entity time, nulled when older than the ttl. A merge of every pair, filtered: fine for small data."""
    left = entity[[ENTITY_KEY, EVENT_TS]].reset_index(names="row")
    pairs = left.merge(rows, on=ENTITY_KEY, how="inner", suffixes=("", "_f"))
    pairs = pairs[pairs[f"{EVENT_TS}_f"] <= pairs[EVENT_TS]]
    pairs = pairs.sort_values(["row", f"{EVENT_TS}_f", CREATED_TS]).groupby("row").tail(1)
    stale = pairs[f"{EVENT_TS}_f"] < pairs[EVENT_TS] - ttl
    out = pairs.set_index("row")[features].copy()
    out.loc[stale.to_numpy(), :] = None
    return out.reindex(range(len(entity)))


def assert_matches(result: pd.DataFrame, expected: pd.DataFrame, columns: dict[str, str]) -> None:
    """``columns`` maps result column -> expected column."""
    for got_name, want_name in columns.items():
        got, want = result[got_name], expected[want_name]
        if pd.api.types.is_float_dtype(want) or pd.api.types.is_integer_dtype(want) or want.dtype == object:
            pd.testing.assert_series_equal(
                got.astype("Float64"), want.astype("Float64"), check_names=False, check_index=False
            )
        else:
            assert got.tolist() == want.tolist(), got_name


VIEWS = {"ohlcv_daily": datasets.OHLCV_DAILY, "options_flow_daily": datasets.OPTIONS_FLOW_DAILY}
SPAN = timedelta(days=30)


def _seeded(settings: Settings, seed: int) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    rng = np.random.default_rng(seed)
    rows = {name: random_rows(ds, rng, 400, SPAN) for name, ds in VIEWS.items()}
    for name, frame in rows.items():
        write_parts(settings, VIEWS[name], frame)
    return random_entities(rng, 300, SPAN), rows


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("full_names", [False, True])
def test_matches_brute_force_across_views(
    store: FeatureStore, asof_repo: Settings, seed: int, full_names: bool
) -> None:
    entity, rows = _seeded(asof_repo, seed)
    daily = ["close", "transactions", "return_5d"]
    flow = ["call_volume", "put_call_premium_ratio", "sweep_count"]
    refs = [f"ohlcv_daily:{f}" for f in daily] + [f"options_flow_daily:{f}" for f in flow]
    result = store.get_historical_features(entity_df=entity, features=refs, full_feature_names=full_names).to_df()

    assert len(result) == len(entity)
    # Entity rows come back in the entity frame's order, their columns untouched.
    pd.testing.assert_frame_equal(result[entity.columns.tolist()], entity, check_dtype=False)
    for view, feats in (("ohlcv_daily", daily), ("options_flow_daily", flow)):
        expected = brute_force(entity, rows[view], feats, VIEWS[view].ttl or timedelta(0))
        names = {(f"{view}__{f}" if full_names else f): f for f in feats}
        assert_matches(result, expected, names)
    # Integer features stay integers (nullable), timestamps stay timezone-aware.
    prefix = "ohlcv_daily__" if full_names else ""
    assert str(result[f"{prefix}transactions"].dtype) == "Int64"
    assert isinstance(result[EVENT_TS].dtype, pd.DatetimeTZDtype)
    # The data really exercises the cases: hits, ttl misses of known symbols, unknown symbols.
    close = result[f"{prefix}close"]
    known = entity[ENTITY_KEY].isin(KNOWN)
    assert close[known].notna().any()
    assert close[known].isna().any()
    assert close[~known].isna().all()


def test_ties_take_the_newest_write_and_never_multiply_rows(store: FeatureStore, asof_repo: Settings) -> None:
    rng = np.random.default_rng(11)
    base = random_rows(datasets.OHLCV_DAILY, rng, 3, SPAN).iloc[:1]
    at = base[EVENT_TS].iloc[0]
    copies = pd.concat([base] * 4, ignore_index=True)
    copies[CREATED_TS] = [at + pd.Timedelta(seconds=s) for s in (30, 10, 40, 20)]
    copies["close"] = [3.0, 1.0, 4.0, 2.0]
    # An exact duplicate of the winner (same key, event and created time) must not double the entity row either.
    copies = pd.concat([copies, copies.iloc[[2]]], ignore_index=True)
    write_parts(asof_repo, datasets.OHLCV_DAILY, copies, parts=2)
    symbol = base[ENTITY_KEY].iloc[0]
    entity = pd.DataFrame({ENTITY_KEY: [symbol, symbol], EVENT_TS: [at, at - pd.Timedelta(microseconds=1)]})
    result = store.get_historical_features(entity_df=entity, features=["ohlcv_daily:close"]).to_df()
    assert result["close"].tolist()[0] == 4.0
    assert pd.isna(result["close"].tolist()[1])


def test_ttl_boundary_is_inclusive_and_stale_rows_stay(store: FeatureStore, asof_repo: Settings) -> None:
    rng = np.random.default_rng(5)
    row = random_rows(datasets.OHLCV_DAILY, rng, 3, SPAN).iloc[:1].copy()
    at = row[EVENT_TS].iloc[0]
    write_parts(asof_repo, datasets.OHLCV_DAILY, row, parts=1)
    ttl = datasets.OHLCV_DAILY.ttl
    assert ttl is not None
    symbol = row[ENTITY_KEY].iloc[0]
    times = [at, at + ttl, at + ttl + pd.Timedelta(microseconds=1)]
    entity = pd.DataFrame({ENTITY_KEY: [symbol] * 3, EVENT_TS: times})
    result = store.get_historical_features(entity_df=entity, features=["ohlcv_daily:close"]).to_df()
    assert len(result) == 3
    assert result["close"].notna().tolist() == [True, True, False]


def test_feature_service_and_sql_entity_frame(store: FeatureStore, asof_repo: Settings, tmp_path: Path) -> None:
    entity, rows = _seeded(asof_repo, 21)
    entity = entity.assign(row_no=np.arange(len(entity)))
    entity_file = tmp_path / "entity.parquet"
    pq.write_table(pa.Table.from_pandas(entity, preserve_index=False), entity_file)
    sql = f"SELECT * FROM read_parquet('{entity_file}') ORDER BY row_no"  # noqa: S608 (a test's own path)

    service = store.get_feature_service("daily_model")
    from_sql = store.get_historical_features(entity_df=sql, features=service).to_df()
    from_df = store.get_historical_features(entity_df=entity, features=service).to_df()

    pd.testing.assert_frame_equal(from_sql, from_df)
    assert from_sql["row_no"].tolist() == list(range(len(entity)))
    declared = [f.name for p in service.feature_view_projections for f in p.features]
    assert from_sql.columns.tolist() == [*entity.columns, *declared]
    for view, ds in VIEWS.items():
        feats = [c.name for c in ds.features]
        assert_matches(from_sql, brute_force(entity, rows[view], feats, ds.ttl or timedelta(0)), {f: f for f in feats})
    # Views of the service with no part files yet answer typed nulls, the rows all kept.
    assert from_sql["dp_volume"].isna().all()
    assert str(from_sql["dp_trade_count"].dtype) == "Int64"


def test_intraday_service_projection_and_empty_entity(store: FeatureStore, asof_repo: Settings) -> None:
    entity, rows = _seeded(asof_repo, 31)
    service = store.get_feature_service("intraday_model")
    result = store.get_historical_features(entity_df=entity, features=service).to_df()
    # The service takes a subset of ohlcv_daily (no close): exactly those columns, matching the brute force.
    subset = ["return_1d", "return_5d", "realized_vol_20d", "volume_zscore_20d", "gap_pct"]
    assert "return_1d" in result.columns and "range_pct" not in result.columns
    ttl = datasets.OHLCV_DAILY.ttl or timedelta(0)
    assert_matches(result, brute_force(entity, rows["ohlcv_daily"], subset, ttl), {f: f for f in subset})

    empty = store.get_historical_features(entity_df=entity.iloc[:0], features=["ohlcv_daily:close"]).to_arrow()
    assert empty.num_rows == 0
    assert empty.schema.field("close").type == pa.float64()


def test_nanosecond_and_naive_part_files_still_match(store: FeatureStore, asof_repo: Settings) -> None:
    """Files written by pandas defaults (ns timestamps, feast-notes pitfall 2) or naive UTC, beside proper ones."""
    rng = np.random.default_rng(41)
    rows = random_rows(datasets.OHLCV_DAILY, rng, 300, SPAN)
    write_parts(asof_repo, datasets.OHLCV_DAILY, rows.iloc[:100], parts=1)
    folder = asof_repo.offline_dir / datasets.OHLCV_DAILY.name / "foreign"
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(rows.iloc[100:200], preserve_index=False), folder / "pandas-ns.parquet")
    naive = rows.iloc[200:].assign(
        **{
            EVENT_TS: rows[EVENT_TS].iloc[200:].dt.tz_localize(None),
            CREATED_TS: rows[CREATED_TS].iloc[200:].dt.tz_localize(None),
        }
    )
    pq.write_table(pa.Table.from_pandas(naive, preserve_index=False), folder / "naive.parquet")
    entity = random_entities(rng, 200, SPAN)
    result = store.get_historical_features(entity_df=entity, features=["ohlcv_daily:close"]).to_df()
    ttl = datasets.OHLCV_DAILY.ttl or timedelta(0)
    assert_matches(result, brute_force(entity, rows, ["close"], ttl), {"close": "close"})
    assert result["close"].notna().any()
