"""Feature services: the feature sets the two model families read, online and for training."""

from feast import FeatureService

from views import (
    dark_pool_daily,
    etf_flow_daily,
    insider_activity,
    ohlcv_daily,
    ohlcv_minute,
    options_flow_daily,
    options_flow_intraday,
    realtime_quotes,
)

daily_model = FeatureService(
    name="daily_model",
    features=[ohlcv_daily, options_flow_daily, dark_pool_daily, insider_activity, etf_flow_daily],
    description="End-of-day model: daily bars with derived returns, options flow, dark pool, insiders, ETF flows.",
    # One pre-computed vector per symbol, kept current by every online write (ingestion/store/feast_online.py).
    precompute_online=True,
)

intraday_model = FeatureService(
    name="intraday_model",
    features=[
        realtime_quotes,
        # The minute bar's numbers; its `source` (which path stored the bar) stays readable as ohlcv_minute:source.
        ohlcv_minute[["open", "high", "low", "close", "volume", "vwap", "transactions"]],
        # Daily context without `close`, which would collide with the minute bar's `close`.
        ohlcv_daily[["return_1d", "return_5d", "realized_vol_20d", "volume_zscore_20d", "gap_pct"]],
        options_flow_daily[["put_call_premium_ratio", "sweep_count", "alert_count"]],
        # Today's flow, rolling 5/15/60 minutes up to the instant asked about.
        options_flow_intraday,
    ],
    description="Intraday model: live quotes, minute bars and rolling options flow, with yesterday's daily context.",
    # One pre-computed vector per symbol, kept current by every online write (ingestion/store/feast_online.py).
    precompute_online=True,
)
