"""``python -m ingestion demo``: the whole chain on a laptop with nothing configured.

With no vendor keys it runs against the built-in simulators; with no ``REDIS_URL`` it starts an embedded Redis.
Steps: apply the feature repo, backfill daily and minute bars (Polygon) and options flow (Unusual Whales) into
Parquet, write the latest values to Redis, stream real-time quotes for a few seconds, then read online features for
both feature services and build a small point-in-time training frame. With keys set, the same steps hit the real
vendors (keep the symbol list short on a free plan).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import TYPE_CHECKING, TextIO

from ingestion.config import Settings, settings
from ingestion.jobs.args import whole_number

if TYPE_CHECKING:
    import pandas as pd

# pandas and the calendar load inside the functions: building the CLI parser imports every command module, and a
# module-level pandas import would cost every command (``apply`` included) about 0.6 s at start.

HELP = "run the whole chain on the simulators and an embedded Redis (no keys needed)"
DEMO_SYMBOLS = ("AAPL", "MSFT", "NVDA", "SPY")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    del name
    parser.add_argument("--symbols", default=",".join(DEMO_SYMBOLS), help="comma-separated tickers")
    parser.add_argument(
        "--days", type=whole_number("days"), default=120, help="calendar days of daily history to backfill"
    )
    parser.add_argument("--stream-seconds", type=float, default=5.0, help="seconds of real-time streaming (0: skip)")


def _recent_sessions(n: int) -> tuple[dt.date, dt.date]:
    """The last ``n`` complete sessions (New York), ending before today."""
    import pandas as pd

    from ingestion import calendar

    today = pd.Timestamp.now(tz=calendar.NEW_YORK).date()
    days = calendar.sessions(today - dt.timedelta(days=10 + 2 * n), today - dt.timedelta(days=1))
    chosen = days[-n:]
    return chosen[0].date(), chosen[-1].date()


def run_demo(
    s: Settings, out: TextIO, symbols: list[str] | None = None, days: int = 120, stream_seconds: float = 5.0
) -> int:
    import pandas as pd

    from ingestion.jobs.runs import run_flow, run_ohlcv, write_online
    from ingestion.runtime import runtime
    from ingestion.store.feast_repo import open_store

    symbols = symbols or list(DEMO_SYMBOLS)
    end = _recent_sessions(1)[1]
    start = end - dt.timedelta(days=days)
    minute_start, minute_end = _recent_sessions(2)
    with runtime(s) as rt:
        out.write(f"Data dir: {rt.settings.data_dir}\nfeast apply: ok\n")
        daily = run_ohlcv(rt, symbols, start, end, "day")
        minute = run_ohlcv(rt, symbols[:2], minute_start, minute_end, "minute")
        flow = run_flow(rt, symbols, end - dt.timedelta(days=14), end)
        summaries = [daily, minute, flow]
        for summary in summaries:
            write_online(rt, summary)
            out.write(summary.table() + "\n")
        if stream_seconds > 0:
            from ingestion.stream.runner import StreamOptions, stream_with

            stream_with(rt, StreamOptions(symbols=symbols[:2], seconds=stream_seconds), out)
        store = open_store(rt.settings, rt.redis_url)
        with pd.option_context("display.width", 160, "display.max_columns", 12):
            for name in ("daily_model", "intraday_model"):
                frame = store.get_online_features(
                    features=store.get_feature_service(name), entity_rows=[{"symbol": sym} for sym in symbols]
                ).to_df()
                present = int(frame.drop(columns=["symbol"]).notna().sum().sum())
                out.write(f"\nOnline features, {name} ({present} values present):\n")
                out.write(frame.set_index("symbol").T.head(14).to_string() + "\n")
            out.write("\nTraining frame (point in time: 10:00 New York gets the previous session's close):\n")
            out.write(_training_frame(store, symbols, end).to_string(index=False) + "\n")
        failed = any(not x.ok for x in summaries)
    return 1 if failed else 0


def _training_frame(store: object, symbols: list[str], end: dt.date) -> pd.DataFrame:
    import pandas as pd

    from ingestion import calendar

    days = [d.date() for d in calendar.sessions(end - dt.timedelta(days=8), end)]
    entity = pd.DataFrame(
        [
            {"symbol": sym, "event_timestamp": pd.Timestamp(f"{d} 10:00", tz=calendar.NEW_YORK).tz_convert("UTC")}
            for sym in symbols[:2]
            for d in days
        ]
    )
    frame: pd.DataFrame = store.get_historical_features(  # type: ignore[attr-defined]
        entity_df=entity, features=["ohlcv_daily:close", "ohlcv_daily:return_1d", "ohlcv_daily:realized_vol_20d"]
    ).to_df()
    return frame.sort_values(["symbol", "event_timestamp"]).reset_index(drop=True)


def run(args: argparse.Namespace) -> int:
    from ingestion.jobs.args import parse_symbols

    return run_demo(settings(), sys.stdout, parse_symbols(args.symbols), args.days, args.stream_seconds)
