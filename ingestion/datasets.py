"""Every dataset the project stores, defined once.

A dataset names its columns, their Arrow dtypes, its entity, the rule that sets its event timestamp, how its
Parquet files are partitioned and which columns identify a row (the de-duplication key). Parsers produce these
columns, the writers store them, and ``feature_repo/`` builds its Feast schemas from the same objects, so the three
can never drift apart.

Time conventions (all timestamps are ``timestamp[us, UTC]``):

* ``event_timestamp`` is the moment the value became *knowable*. A bar is knowable at the end of its window, so a
  daily bar carries its session close (16:00 New York, or 13:00 on a half day), never the midnight Polygon stamps
  it with. Using the window start would leak a whole session into every training row: the worst bug this project
  can have.
* ``created_timestamp`` is when this project wrote the row. Feast uses it to break ties between rows with the same
  event time (a corrected bar written later wins).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")
ENTITY_KEY = "symbol"
EVENT_TS = "event_timestamp"
CREATED_TS = "created_timestamp"


@dataclass(frozen=True)
class Column:
    """One column of a dataset. ``feature`` marks the columns a Feast view serves."""

    name: str
    dtype: pa.DataType
    description: str
    feature: bool = True
    default: object = None
    """Value a writer fills in when a frame lacks the column (None: the column is required)."""


@dataclass(frozen=True)
class Dataset:
    """A stored dataset: schema, entity, event-time rule and partitioning.

    ``key`` lists the columns that identify one row; writing the same key twice keeps one row (the newest
    ``created_timestamp``). ``ttl`` is None for datasets that Feast does not serve (raw records, quarantine).
    """

    name: str
    description: str
    event_time_rule: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    ttl: timedelta | None = None
    online: bool = True
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def is_feature_view(self) -> bool:
        return self.ttl is not None

    @property
    def features(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.feature)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.dtype) for c in self.columns])

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")


def _meta(*extra: Column) -> tuple[Column, ...]:
    """Columns every dataset starts with: entity, event time, write time."""
    return (
        Column(ENTITY_KEY, pa.string(), "Ticker symbol, upper case (the entity join key).", feature=False),
        Column(EVENT_TS, TS, "When the value became knowable (UTC); see the dataset's event-time rule.", False),
        Column(CREATED_TS, TS, "When this project wrote the row (UTC); breaks ties between equal event times.", False),
        *extra,
    )


def _f(name: str, description: str) -> Column:
    return Column(name, pa.float64(), description)


def _i(name: str, description: str) -> Column:
    return Column(name, pa.int64(), description)


_BAR_COLUMNS = (
    Column("window_start", TS, "Start of the bar's window (Polygon `t`, epoch ms UTC, converted).", False),
    _f("open", "First trade price in the window."),
    _f("high", "Highest trade price in the window."),
    _f("low", "Lowest trade price in the window."),
    _f("close", "Last trade price in the window."),
    _f("volume", "Shares traded in the window (fractional shares exist, so a float)."),
    _f("vwap", "Volume-weighted average price of the window; null when the vendor omits it."),
    _i("transactions", "Number of trades in the window; null when the vendor omits it."),
    Column("otc", pa.bool_(), "True for an over-the-counter ticker.", False),
    Column("adjusted", pa.bool_(), "True when prices are split-adjusted.", False),
    Column(
        "source",
        pa.string(),
        "Where the bar came from: polygon (REST), polygon_ws (built from streamed trades), or unusual_whales "
        "(the fallback when Polygon is unavailable).",
        False,
        default="polygon",
    ),
)

OHLCV_DAILY = Dataset(
    name="ohlcv_daily",
    description="Daily OHLCV bars from Polygon aggregates, with lookahead-free derived features.",
    event_time_rule="Session close of the bar's day: 16:00 New York, or the early close on a half day.",
    columns=_meta(
        *_BAR_COLUMNS,
        _f("return_1d", "Close over the previous session's close, minus one."),
        _f("return_5d", "Close over the close five sessions earlier, minus one."),
        _f("return_20d", "Close over the close twenty sessions earlier, minus one."),
        _f("realized_vol_20d", "Standard deviation of daily log returns over the last 20 sessions, annualized."),
        _f("volume_zscore_20d", "Today's volume against the mean and std of the previous 20 sessions."),
        _f("gap_pct", "Open over the previous close, minus one."),
        _f("range_pct", "(high - low) / close of the session."),
    ),
    key=(ENTITY_KEY, "window_start", "adjusted"),
    # Friday's close must still reach a Tuesday-morning row after a Monday holiday (about 3.8 days).
    ttl=timedelta(days=5),
)

OHLCV_MINUTE = Dataset(
    name="ohlcv_minute",
    description="One-minute OHLCV bars from Polygon aggregates. A minute with no trade has no bar.",
    event_time_rule="End of the bar's minute (window start + 60 s).",
    columns=_meta(*_BAR_COLUMNS),
    key=(ENTITY_KEY, "window_start", "adjusted"),
    # Long enough to carry Friday's last bar into Monday's open; training rows further away get null.
    ttl=timedelta(days=4),
)

OPTIONS_FLOW_DAILY = Dataset(
    name="options_flow_daily",
    description="Per-symbol daily aggregates of Unusual Whales flow alerts and options volume.",
    event_time_rule="Session close of the trading day the alerts and volume belong to.",
    columns=_meta(
        Column("date", pa.date32(), "Trading day (New York).", False),
        _f("call_premium", "Total premium of call flow alerts (USD)."),
        _f("put_premium", "Total premium of put flow alerts (USD)."),
        _f("bullish_premium", "Bullish premium from options volume (USD)."),
        _f("bearish_premium", "Bearish premium from options volume (USD)."),
        _f("put_call_premium_ratio", "put_premium / call_premium; null when there is no call premium."),
        _i("call_volume", "Call contracts traded (options volume)."),
        _i("put_volume", "Put contracts traded (options volume)."),
        _i("sweep_count", "Flow alerts flagged as sweeps."),
        _i("alert_count", "Flow alerts of the day."),
        _f("avg_alert_premium", "Mean premium per flow alert (USD)."),
    ),
    key=(ENTITY_KEY, "date"),
    ttl=timedelta(days=5),
)

DARK_POOL_DAILY = Dataset(
    name="dark_pool_daily",
    description="Per-symbol daily aggregates of Unusual Whales dark-pool prints (cancelled prints excluded).",
    event_time_rule="Session close of the trading day of the prints.",
    columns=_meta(
        Column("date", pa.date32(), "Trading day (New York).", False),
        _f("dp_volume", "Shares printed off-exchange."),
        _f("dp_notional", "Notional of the prints (USD)."),
        _i("dp_trade_count", "Number of prints."),
        _f("dp_vwap", "Volume-weighted price of the prints."),
        _f("dp_largest_notional", "Largest single print (USD)."),
        _f("dp_share_of_volume", "dp_volume over the session's consolidated volume; null when unknown."),
    ),
    key=(ENTITY_KEY, "date"),
    ttl=timedelta(days=5),
)

INSIDER_ACTIVITY = Dataset(
    name="insider_activity",
    description="Insider transactions (Form 4) rolled into trailing net values per symbol.",
    event_time_rule="Filing time of the transaction (when the market could read it), not the trade date.",
    columns=_meta(
        _f("net_value_30d", "Acquisitions minus disposals (USD) filed in the trailing 30 days."),
        _f("net_value_90d", "Acquisitions minus disposals (USD) filed in the trailing 90 days."),
        _i("buy_count_90d", "Acquisition filings in the trailing 90 days."),
        _i("sell_count_90d", "Disposal filings in the trailing 90 days."),
        _f("last_transaction_value", "Signed value (USD) of this filing's transaction."),
    ),
    key=(ENTITY_KEY, EVENT_TS),
    ttl=timedelta(days=180),
)

ETF_FLOW_DAILY = Dataset(
    name="etf_flow_daily",
    description="Daily ETF creations/redemptions from Unusual Whales in-outflow (entity = the ETF's ticker).",
    event_time_rule="Session close of the flow's date.",
    columns=_meta(
        Column("date", pa.date32(), "Trading day (New York).", False),
        _f("etf_flow_shares", "Change in shares outstanding (UW `change`)."),
        _f("etf_flow_premium", "Dollar value of the change (UW `change_prem`)."),
        _f("etf_close", "Closing price of the ETF."),
        _i("etf_volume", "Shares traded."),
        Column("is_fomc", pa.bool_(), "True on an FOMC announcement day."),
    ),
    key=(ENTITY_KEY, "date"),
    ttl=timedelta(days=5),
)

REALTIME_QUOTES = Dataset(
    name="realtime_quotes",
    description="Per-symbol tick aggregates from the Polygon WebSocket, pushed to Feast in micro-batches.",
    event_time_rule="SIP time of the latest tick included in the aggregate.",
    columns=_meta(
        _f("last_price", "Price of the latest trade."),
        _f("bid", "Latest best bid."),
        _f("ask", "Latest best ask."),
        _f("mid", "(bid + ask) / 2."),
        _f("spread", "ask - bid."),
        _f("volume_1m", "Shares traded in the trailing 60 s."),
        _f("vwap_1m", "Volume-weighted price over the trailing 60 s."),
        _i("trade_count_1m", "Trades in the trailing 60 s."),
        _f("day_volume", "Shares traded since the session opened."),
        _f("return_since_open", "last_price over the session's first trade price, minus one."),
    ),
    key=(ENTITY_KEY, EVENT_TS),
    # Ticks older than a session are not "real time" any more.
    ttl=timedelta(hours=8),
)

FEATURE_DATASETS: tuple[Dataset, ...] = (
    OHLCV_DAILY,
    OHLCV_MINUTE,
    OPTIONS_FLOW_DAILY,
    DARK_POOL_DAILY,
    INSIDER_ACTIVITY,
    ETF_FLOW_DAILY,
    REALTIME_QUOTES,
)

QUARANTINE = Dataset(
    name="quarantine",
    description="Rows that failed validation, with the reason and source. Nothing is dropped silently.",
    event_time_rule="When the row was quarantined.",
    columns=(
        Column("dataset", pa.string(), "Dataset the row was meant for.", False),
        Column("source", pa.string(), "Vendor and endpoint the row came from (never a key).", False),
        Column("reason", pa.string(), "Why the row was rejected.", False),
        Column("payload", pa.string(), "The raw row as JSON.", False),
        Column(EVENT_TS, TS, "When the row was quarantined.", False),
    ),
    key=("dataset", "source", "payload"),
)

QUARANTINE_REPLAYS = Dataset(
    name="quarantine_replays",
    description="Quarantined rows that a replay re-validated and landed (their quarantine rows stay; these hide them).",
    event_time_rule="When the row was replayed.",
    # The quarantine's own columns, so a replay record names its quarantined row by the same key.
    columns=(
        *(c for c in QUARANTINE.columns if c.name != EVENT_TS),
        Column(EVENT_TS, TS, "When the row was replayed.", False),
    ),
    key=QUARANTINE.key,
)

DATASETS: dict[str, Dataset] = {d.name: d for d in (*FEATURE_DATASETS, QUARANTINE, QUARANTINE_REPLAYS)}


def get(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}") from None
