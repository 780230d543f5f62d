"""Every dataset the project stores, defined once.

A dataset names its columns, their Arrow dtypes, its entity, the rule that sets its event timestamp, how its
Parquet files are partitioned and which columns identify a row (the de-duplication key). Parsers produce these
columns, the writers store them, and ``feature_repo/`` builds its Feast schemas from the same objects, so the three
can never drift apart.

Time conventions (all timestamps are ``timestamp[us, UTC]``):

* ``event_timestamp`` is the moment the value was *published*: each dataset's :class:`PublicationRule` plus its
  ``publication_delay`` (both below, turned into times only by :mod:`ingestion.publication`). A daily bar is final
  only when Polygon's day is (its volume counts extended hours until 20:00 New York), never at the midnight Polygon
  stamps it with nor at the 16:00 close. Using an earlier time would leak the future into every training row: the
  worst bug this project can have.
* ``created_timestamp`` is when this project wrote the row. Feast uses it to break ties between rows with the same
  event time (a corrected bar written later wins).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import timedelta

import pyarrow as pa

from ingestion.publication import Anchor, PublicationRule

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
    ``publication`` and ``publication_delay`` decide the event time (:mod:`ingestion.publication`; the delay can be
    overridden with ``FEAST_PUBLICATION_DELAYS``). ``rows_every_session``: a listed symbol has rows on every
    session, so an empty answer for a range inside its listing is suspect and retried, never recorded as covered.
    """

    name: str
    description: str
    event_time_rule: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    ttl: timedelta | None = None
    online: bool = True
    tags: dict[str, str] = field(default_factory=dict)
    publication: PublicationRule | None = None
    publication_delay: timedelta = timedelta(0)
    rows_every_session: bool = False

    @property
    def is_feature_view(self) -> bool:
        return self.ttl is not None

    @property
    def features(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.feature)

    def defaults_for(self, present: Iterable[str]) -> dict[str, object]:
        """The default of every column with one that ``present`` lacks (what a writer fills in)."""
        have = set(present)
        return {c.name: c.default for c in self.columns if c.default is not None and c.name not in have}

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
    _f("open", "First trade price in the window, as traded (never split-adjusted)."),
    _f("high", "Highest trade price in the window, as traded."),
    _f("low", "Lowest trade price in the window, as traded."),
    _f("close", "Last trade price in the window, as traded: what the tape said that day, before any later split."),
    _f("volume", "Shares traded in the window, as traded (fractional shares exist, so a float)."),
    _f("vwap", "Volume-weighted average price of the window, as traded; null when the vendor omits it."),
    _i("transactions", "Number of trades in the window; null when the vendor omits it."),
    Column("otc", pa.bool_(), "True for an over-the-counter ticker.", False),
    Column(
        "adjusted",
        pa.bool_(),
        "False: prices as traded. True only on split-adjusted rows an older version wrote; readers and derived "
        "features use the adjusted=False rows.",
        False,
    ),
    Column(
        "source",
        pa.string(),
        "Where the bar came from: polygon (REST aggregates, adjusted=false), polygon_refill (the same, fetched by "
        "the stream to fill a gap), polygon_ws (built from streamed trades), or unusual_whales (candles, the "
        "fallback when Polygon is unavailable); all as traded. Of one minute's rows readers serve the first in "
        "that order (ingestion.store.precedence).",
        False,
        default="polygon",
    ),
)

OHLCV_DAILY = Dataset(
    name="ohlcv_daily",
    description="Daily OHLCV bars from Polygon aggregates, with lookahead-free derived features.",
    event_time_rule="When Polygon's day is final: 20:00 New York of the bar's day (daily volume counts extended hours "
    "until then) plus the publication delay for late reports.",
    columns=_meta(
        *_BAR_COLUMNS,
        _f(
            "return_1d",
            "Price return over the previous session, split-aware: close x split_factor over the "
            "previous close x its split_factor, minus one (a 10:1 split is not -90%).",
        ),
        _f("return_5d", "Split-aware price return over five sessions (as return_1d)."),
        _f("return_20d", "Split-aware price return over twenty sessions (as return_1d)."),
        _f(
            "realized_vol_20d",
            "Standard deviation of split-aware daily log returns over the last 20 sessions, annualized.",
        ),
        _f(
            "volume_zscore_20d",
            "Today's volume against the mean and std of the previous 20 sessions, all in "
            "split-continuous shares (volume / split_factor).",
        ),
        _f("gap_pct", "Open over the previous close, split-aware, minus one."),
        _f("range_pct", "(high - low) / close of the session (the same on any basis)."),
        _f(
            "total_return_1d",
            "return_1d plus cash dividends with ex-date on this session: (close + dividend) x "
            "split ratio of the day over the previous close, minus one.",
        ),
        _f(
            "split_factor",
            "Product of split_to / split_from of every known split with ex-date on or before this "
            "session: close x split_factor is a split-continuous price; adjusted as of day T = close x "
            "split_factor / split_factor(T).",
        ),
    ),
    key=(ENTITY_KEY, "window_start", "adjusted"),
    # Friday's close must still reach a Tuesday-morning row after a Monday holiday (about 3.8 days).
    ttl=timedelta(days=5),
    publication=PublicationRule(Anchor.NEW_YORK_TIME, wall_time=dt.time(20, 0)),
    # FINRA allows 10 s to report a trade, and Polygon aggregates after that: a margin, not a measured lag.
    publication_delay=timedelta(minutes=15),
    rows_every_session=True,
)

OHLCV_MINUTE = Dataset(
    name="ohlcv_minute",
    description="One-minute OHLCV bars from Polygon aggregates. A minute with no trade has no bar.",
    event_time_rule="End of the bar's minute (window start + 60 s) plus the publication delay: trades reported "
    "within FINRA's 10 s still change the bar.",
    # `source` is a feature of the minute view (not of the daily one, which has one origin): the online store ranks
    # a minute's origins by the value it writes (ingestion.store.online.origin), on every write path, Feast's too.
    columns=_meta(*(replace(c, feature=True) if c.name == "source" else c for c in _BAR_COLUMNS)),
    key=(ENTITY_KEY, "window_start", "adjusted"),
    # Long enough to carry Friday's last bar into Monday's open; training rows further away get null.
    ttl=timedelta(days=4),
    # The day's last extended-hours minute ends at 20:00 New York.
    publication=PublicationRule(Anchor.WINDOW_END, wall_time=dt.time(20, 0)),
    publication_delay=timedelta(seconds=15),
    rows_every_session=True,
)

OPTIONS_FLOW_DAILY = Dataset(
    name="options_flow_daily",
    description="Per-symbol daily aggregates of Unusual Whales flow alerts and options volume.",
    event_time_rule="Close of the options session (equity close + 15 min: ETF options trade until 16:15) of the "
    "trading day, plus the publication delay; alerts after that roll to the next day.",
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
    publication=PublicationRule(Anchor.SESSION_CLOSE, offset=timedelta(minutes=15)),
    publication_delay=timedelta(minutes=15),
)

DARK_POOL_DAILY = Dataset(
    name="dark_pool_daily",
    description="Per-symbol daily aggregates of Unusual Whales dark-pool prints (cancelled prints excluded).",
    event_time_rule="20:00 New York of the prints' trading day (late reports land until the FINRA trade reporting "
    "facilities close) plus the publication delay; prints after that roll to the next day.",
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
    publication=PublicationRule(Anchor.NEW_YORK_TIME, wall_time=dt.time(20, 0)),
    publication_delay=timedelta(minutes=15),
)

INSIDER_ACTIVITY = Dataset(
    name="insider_activity",
    description="Insider transactions (Form 4) rolled into trailing net values per symbol.",
    event_time_rule="Filing time of the transaction (when the market could read it), not the trade date, plus the "
    "publication delay; a row also where a filing leaves a trailing window, so windows roll off.",
    columns=_meta(
        _f("net_value_30d", "Acquisitions minus disposals (USD) filed in the trailing 30 days."),
        _f("net_value_90d", "Acquisitions minus disposals (USD) filed in the trailing 90 days."),
        _i("buy_count_90d", "Acquisition filings in the trailing 90 days."),
        _i("sell_count_90d", "Disposal filings in the trailing 90 days."),
        _f("last_transaction_value", "Signed value (USD) of the latest filing's transactions."),
    ),
    key=(ENTITY_KEY, EVENT_TS),
    ttl=timedelta(days=180),
    publication=PublicationRule(Anchor.RECORD_TIME),
)

ETF_FLOW_DAILY = Dataset(
    name="etf_flow_daily",
    description="Daily ETF creations/redemptions from Unusual Whales in-outflow (entity = the ETF's ticker).",
    event_time_rule="Open of the session after the flow's date (issuers publish creations and redemptions "
    "overnight) plus the publication delay.",
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
    publication=PublicationRule(Anchor.NEXT_OPEN),
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
    publication=PublicationRule(Anchor.RECORD_TIME),
)

# -- options flow, intraday: the raw alerts and their rolling windows ---------------------------------------------

FLOW_ALERTS = Dataset(
    name="flow_alerts",
    description="Unusual Whales flow alerts as the vendor published them, one row per alert id (raw, not served).",
    event_time_rule=(
        "When Unusual Whales published the alert: its `created_at` (on the WebSocket, which has none, `executed_at`, "
        "else `end_time`). Never the trade times `start_time`/`end_time`, which precede publication by up to minutes. "
        "A late alert, one the live collector first saw after a poll had already covered its `created_at`, is stamped "
        "when it was first seen: it was not in the vendor's answer before, so no model could have used it earlier."
    ),
    columns=_meta(
        Column("id", pa.string(), "The vendor's alert id (a `uw-sha1:` surrogate when the vendor sent none).", False),
        Column("created_at", TS, "Vendor publication time (UTC): the event time unless the alert came late.", False),
        Column("option_chain", pa.string(), "OCC option symbol.", False),
        Column("type", pa.string(), "call or put.", False),
        Column("strike", pa.float64(), "Strike price.", False),
        Column("expiry", pa.date32(), "Expiration date.", False),
        Column("alert_rule", pa.string(), "The vendor's rule name (RepeatedHits, ...).", False),
        Column("start_time", TS, "First trade of the alert (UTC).", False),
        Column("end_time", TS, "Last trade of the alert (UTC).", False),
        Column("total_premium", pa.float64(), "Premium of the alert's trades (USD).", False),
        Column("total_ask_side_prem", pa.float64(), "Premium traded at the ask (USD).", False),
        Column("total_bid_side_prem", pa.float64(), "Premium traded at the bid (USD).", False),
        Column("price", pa.float64(), "Option price of the alert.", False),
        Column("underlying_price", pa.float64(), "Price of the underlying when the alert fired.", False),
        Column("total_size", pa.int64(), "Contracts in the alert.", False),
        Column("trade_count", pa.int64(), "Trades in the alert.", False),
        Column("volume", pa.int64(), "Contract volume of the day so far.", False),
        Column("open_interest", pa.int64(), "Open interest of the contract.", False),
        Column("has_sweep", pa.bool_(), "True when the alert includes a sweep.", False),
        Column("has_floor", pa.bool_(), "True when the alert includes a floor trade.", False),
        Column("has_multileg", pa.bool_(), "True when the alert includes a multi-leg trade.", False),
    ),
    key=("id",),
    # created_at is the publication itself: no delay on top.
    publication=PublicationRule(Anchor.RECORD_TIME),
)

FLOW_WINDOWS: tuple[str, ...] = ("5m", "15m", "60m")
"""The trailing windows of ``options_flow_intraday`` (pandas offsets; the column suffixes)."""

OPTIONS_FLOW_INTRADAY = Dataset(
    name="options_flow_intraday",
    description=(
        "Per-symbol rolling 5/15/60-minute windows over the flow alerts published by each row's event time, "
        "computed by ingestion.unusual_whales.rolling (online by the flow collector, offline from flow_alerts)."
    ),
    event_time_rule=(
        "An instant the windows change: an alert's publication (`created_at`) or the moment an alert leaves a "
        "window (created_at + 5, 15 or 60 min). A row covers the alerts with created_at in (t - window, t]."
    ),
    columns=_meta(
        *(
            column
            for w in FLOW_WINDOWS
            for column in (
                _f(f"call_premium_{w}", f"Premium of call alerts in the trailing {w} (USD)."),
                _f(f"put_premium_{w}", f"Premium of put alerts in the trailing {w} (USD)."),
                _f(f"bullish_premium_{w}", f"Call ask-side plus put bid-side premium in the trailing {w} (USD)."),
                _f(f"bearish_premium_{w}", f"Put ask-side plus call bid-side premium in the trailing {w} (USD)."),
                _f(f"put_call_premium_ratio_{w}", f"Put over call premium in the trailing {w}; null without calls."),
                _i(f"sweep_count_{w}", f"Alerts with a sweep in the trailing {w}."),
                _i(f"alert_count_{w}", f"Alerts in the trailing {w}."),
                _f(f"largest_premium_{w}", f"Largest single alert premium in the trailing {w} (USD); 0 when none."),
            )
        )
    ),
    key=(ENTITY_KEY, EVENT_TS),
    # A session's last row (every window empty, an hour after its last alert) must reach the next open across a
    # long weekend; a training row further away gets null.
    ttl=timedelta(days=4),
    publication=PublicationRule(Anchor.RECORD_TIME),
)

FEATURE_DATASETS: tuple[Dataset, ...] = (
    OHLCV_DAILY,
    OHLCV_MINUTE,
    OPTIONS_FLOW_DAILY,
    DARK_POOL_DAILY,
    INSIDER_ACTIVITY,
    ETF_FLOW_DAILY,
    REALTIME_QUOTES,
    OPTIONS_FLOW_INTRADAY,
)

CORPORATE_ACTIONS = Dataset(
    name="corporate_actions",
    description="Stock splits and cash dividends from Polygon reference data, validated, append-only, one row per "
    "vendor id (kind, action_id). Prices are stored as traded; these rows are what adjusts them at read time.",
    event_time_rule="When the action became known: the end of its declaration date (the next New York midnight) "
    "when the vendor gives one, otherwise 04:00 New York (pre-market) on its ex-date; never later than the ex-date's "
    "04:00, so every bar the action affects ends after it is known.",
    columns=_meta(
        Column("action_id", pa.string(), "Vendor id; derived from ticker, date and amounts when it has none.", False),
        Column("kind", pa.string(), "split or dividend.", False),
        Column("ex_date", pa.date32(), "Ex-date (splits: execution_date): first session on the new basis.", False),
        Column("declaration_date", pa.date32(), "Announcement date; null when the vendor gives none.", False),
        Column("split_from", pa.float64(), "Shares before (splits; null for dividends).", False),
        Column("split_to", pa.float64(), "Shares after (splits; null for dividends).", False),
        Column("ratio", pa.float64(), "split_to / split_from (splits; null for dividends).", False),
        Column("cash_amount", pa.float64(), "Cash per share on the ex-date's basis (dividends).", False),
        Column("currency", pa.string(), "Currency of cash_amount (dividends; null when the vendor omits it).", False),
        Column("dividend_type", pa.string(), "CD, SC, LT or ST (dividends).", False),
        Column("frequency", pa.int64(), "Payments per year (dividends).", False),
        Column("record_date", pa.date32(), "Record date (dividends).", False),
        Column("pay_date", pa.date32(), "Pay date (dividends).", False),
    ),
    key=("kind", "action_id"),
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

DATASETS: dict[str, Dataset] = {
    d.name: d for d in (*FEATURE_DATASETS, FLOW_ALERTS, CORPORATE_ACTIONS, QUARANTINE, QUARANTINE_REPLAYS)
}


def get(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}") from None
