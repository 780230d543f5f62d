"""A REST refill lands its bars as a backfill does: the same quality checks, the same quarantine, the same metrics.

The bridge runs against the WebSocket simulator and refills the session's first minutes from the REST simulator
through a real :class:`~ingestion.store.offline.OfflineWriter`; one refilled bar is broken (negative volume).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pandas as pd
from fixtures.stream import STREAM_DAY, STREAM_REPLAY, STREAM_SYMBOLS, MakeClient
from test_bridge import BAR_COLUMNS, make_bridge, replay_over

from ingestion.datasets import OHLCV_MINUTE
from ingestion.http import default_metrics
from ingestion.simulators.market import Market
from ingestion.store.offline import count_duplicates, read_dataset
from ingestion.store.quarantine import Quarantine
from ingestion.stream.aggregator import MINUTE_MS, session_bounds
from ingestion.stream.refill import REFILL_SOURCE, MinuteFetcher

BAD_SYMBOL = "AAPL"


def _metric(family: str, dataset: str) -> float:
    return default_metrics().registry.get_sample_value(family, {"dataset": dataset}) or 0.0


def test_a_bad_bar_in_a_refill_window_is_quarantined_and_the_good_ones_land(
    make_polygon_ws: Any,
    make_ws_client: MakeClient,
    rest_fetcher: MinuteFetcher,
    stream_market: Market,
    tmp_path: Path,
) -> None:
    broken: list[pd.Timestamp] = []

    def fetch(symbol: str, start_ms: int, end_ms: int) -> pd.DataFrame:
        bars = rest_fetcher(symbol, start_ms, end_ms)
        if symbol == BAD_SYMBOL and not broken and len(bars) >= 3:
            bars = bars.copy()
            bars.loc[bars.index[1], "volume"] = -5.0
            broken.append(pd.Timestamp(bars["window_start"].iloc[1]))
        return bars

    written_before = _metric("ingestion_rows_written_total", OHLCV_MINUTE.name)
    quarantined_before = _metric("ingestion_rows_quarantined_total", OHLCV_MINUTE.name)
    server = make_polygon_ws(replay=STREAM_REPLAY)
    bridge = make_bridge(server, make_ws_client, None, tmp_path, fetch)  # type: ignore[arg-type]
    stats = bridge.run(seconds=60, until=replay_over(server, bridge))

    assert len(broken) == 1, "the refill never asked for the session's first minutes"
    assert stats.refill_errors == 0 and stats.offline_errors == 0
    assert sum(r["quarantined"] for r in stats.refills) == 1

    # The broken bar is in the quarantine with its reason and its row; no part of it reached ohlcv_minute.
    quarantined = Quarantine(tmp_path).read()
    assert len(quarantined) == 1
    row = quarantined.iloc[0]
    assert (row["dataset"], row["source"]) == (OHLCV_MINUTE.name, REFILL_SOURCE)
    assert row["reason"].startswith("negative_volume")
    payload = orjson.loads(row["payload"])
    assert payload["symbol"] == BAD_SYMBOL and payload["volume"] == -5.0
    assert pd.Timestamp(payload["window_start"]) == broken[0]

    # Every other minute of the refilled window (session open to the first streamed minute) landed as the truth.
    bars = read_dataset(tmp_path, OHLCV_MINUTE.name)
    assert count_duplicates(bars, OHLCV_MINUTE.name) == 0
    open_ms = session_bounds(server.sent(ev="T")[0]["t"])[0]
    first_streamed = open_ms + STREAM_REPLAY.start_minute * MINUTE_MS
    broken_ms = broken[0].value // 1_000_000
    for sym in STREAM_SYMBOLS:
        truth = stream_market.minute_bars(sym, STREAM_DAY, adjusted=False)
        truth = truth[truth["window_start_ms"] < first_streamed]
        if sym == BAD_SYMBOL:
            truth = truth[truth["window_start_ms"] != broken_ms]
        got = bars[bars["symbol"] == sym].assign(window_start_ms=lambda f: f["window_start"].astype("int64") // 1_000)
        got = got[got["window_start_ms"] < first_streamed].sort_values("window_start_ms")
        assert list(got["window_start_ms"]) == list(truth["window_start_ms"])
        pd.testing.assert_frame_equal(
            got.loc[:, BAR_COLUMNS].reset_index(drop=True),
            truth.loc[:, BAR_COLUMNS].reset_index(drop=True),
            check_dtype=False,
        )

    # The metrics count both, as they do for a backfill: the stream's own bars do not go through landing.
    assert _metric("ingestion_rows_quarantined_total", OHLCV_MINUTE.name) - quarantined_before == 1
    assert _metric("ingestion_rows_written_total", OHLCV_MINUTE.name) - written_before == stats.refill_minutes > 0
    summary = bridge.refiller.summary  # type: ignore[union-attr]
    assert summary.quarantined[OHLCV_MINUTE.name] == 1
    assert summary.quality_failures["negative_volume"] == 1
    assert summary.rows_written[OHLCV_MINUTE.name] == stats.refill_minutes
