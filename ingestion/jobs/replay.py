"""Replay of quarantined rows: re-validate them with today's checks, land the ones that now pass, keep the rest.

After a quality check is fixed (or found too strict), a bar quarantined earlier may be good. :func:`replay` re-types
each row from its stored payload, runs the dataset's *current* checks (:func:`~ingestion.jobs.quality.check_dataset`)
and lands the rows that pass through the one landing step (:func:`~ingestion.jobs.landing.land`). The quarantine
stays append-only: a landed row gets a replay record (``quarantine list`` hides it from then on, so a second replay
lands nothing), and a row that still fails keeps its quarantine row, with its new reason when the reason changed.

Only rows that carry everything needed to judge them alone can be replayed: bars of ``ohlcv_daily`` and
``ohlcv_minute`` refused by a quality check after parsing, whose payload is the whole parsed bar. The rest are
counted and left where they are, with the reason why:

* a bar the parser refused keeps the vendor's raw row, and a range-aggregates row does not name its ticker;
* a bar dated outside the range asked of the vendor is wrong because of its request, which is not stored;
* Unusual Whales records feed daily aggregates together with the rest of their symbol's day: one record cannot be
  landed by itself.

A replayed daily bar changes the derived features of the sessions after it (``return_1d`` of the next day spanned the
gap), so those rows are recomputed from the stored history and landed too, as corrections (newer
``created_timestamp``); the store's usual rule keeps the newest row per key.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from ingestion.datasets import ENTITY_KEY, OHLCV_DAILY, OHLCV_MINUTE, Dataset
from ingestion.jobs.derived import add_daily_features
from ingestion.jobs.engine import OUTSIDE_REQUESTED
from ingestion.jobs.landing import Batch, Landing, land
from ingestion.jobs.quality import check_dataset
from ingestion.jobs.summary import JobSummary
from ingestion.polygon.parse import BAR_COLUMNS
from ingestion.store.objectstore import Root
from ingestion.store.offline import OfflineWriter, dedupe_on_key, read_dataset
from ingestion.store.quarantine import Quarantine

REPLAYABLE: dict[str, Dataset] = {OHLCV_DAILY.name: OHLCV_DAILY, OHLCV_MINUTE.name: OHLCV_MINUTE}
"""Datasets whose quarantined rows can be re-validated one by one."""

SOURCE = "quarantine replay"
"""The landing source of replayed rows (what a check that refuses one on the way would name)."""

RAW_ROW = "raw vendor row: it does not name its symbol"
UNREADABLE = "its window or event time does not read as a time"
REQUEST_UNKNOWN = "outside the requested range: the request is not stored"

# A parsed bar names at least these; optional columns (vwap, transactions, otc, source) take their defaults.
_REQUIRED = frozenset(BAR_COLUMNS) - {"vwap", "transactions", "otc", "source"}
# Sessions after a replayed daily bar whose derived features used the gap: the longest window is 20 sessions back
# (return_20d, realized_vol_20d, volume_zscore_20d), so 21 rows including the bar itself.
_DAILY_REACH = 21


@dataclass
class ReplayResult:
    """What one replay did. ``not_replayable`` counts rows left alone, by why."""

    dataset: str
    examined: int = 0
    landed: int = 0
    still_quarantined: int = 0
    new_reasons: int = 0
    recomputed: int = 0
    not_replayable: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        """One line for the command's output."""
        text = (
            f"{self.dataset}: {self.examined} quarantined rows examined, {self.landed} landed, "
            f"{self.still_quarantined} still quarantined ({self.new_reasons} with a new reason)"
        )
        if self.recomputed:
            text += f", derived features of {self.recomputed} later sessions recomputed"
        for why, n in sorted(self.not_replayable.items()):
            text += f"; {n} not replayable ({why})"
        return text


def not_replayable(dataset: str) -> str | None:
    """Why rows of ``dataset`` cannot be replayed at all (one line), or None when they can."""
    if dataset in REPLAYABLE:
        return None
    return (
        f"quarantined {dataset} rows cannot be replayed row by row: only quality-checked bars of "
        f"{' and '.join(REPLAYABLE)} carry all they are judged on (vendor records feed daily aggregates with the "
        "rest of their day, so one cannot be landed alone)"
    )


def replay(data_dir: Root, dataset: str, *, reason: str | None = None, now: pd.Timestamp | None = None) -> ReplayResult:
    """Re-validate the pending quarantined rows of ``dataset`` (whose reason contains ``reason``, if given).

    Rows that pass are landed and get a replay record; rows that fail stay, with their new reason when it changed.
    Raises ValueError for a dataset that cannot be replayed (see :func:`not_replayable`).
    """
    why = not_replayable(dataset)
    if why is not None:
        raise ValueError(why)
    ds = REPLAYABLE[dataset]
    at = now if now is not None else pd.Timestamp.now(tz="UTC")
    writer = OfflineWriter(data_dir)
    quarantine = Quarantine(data_dir, writer=writer)
    rows = quarantine.pending(dataset=dataset, reason=reason)
    result = ReplayResult(dataset, examined=len(rows))
    payloads = [orjson.loads(p) for p in rows["payload"]]
    kind = [_replay_kind(p, r) for p, r in zip(payloads, rows["reason"], strict=True)]
    result.not_replayable.update(k for k in kind if k is not None)
    usable = np.flatnonzero([k is None for k in kind])
    if len(usable) == 0:
        return result
    bars = bar_frame(ds, [payloads[i] for i in usable])
    readable = (bars["window_start"].notna() & bars["event_timestamp"].notna()).to_numpy()
    result.not_replayable[UNREADABLE] += int((~readable).sum())
    candidates = rows.iloc[usable[readable]].reset_index(drop=True)
    bars = bars[readable].reset_index(drop=True).assign(_row=np.arange(len(candidates)))
    good, refused, _ = check_dataset(dataset, bars, SOURCE)

    refused_rows = [int(r.payload["_row"]) for r in refused]
    failed = candidates.iloc[refused_rows]
    now_reason = pd.Series([r.reason for r in refused], index=failed.index)
    changed = failed.assign(reason=now_reason)[(now_reason != failed["reason"]).to_numpy()]
    quarantine.requeue(changed, at=at.to_pydatetime())
    result.still_quarantined, result.new_reasons = len(failed), len(changed)
    if good.empty:
        return result

    to_land = good.drop(columns="_row")
    if ds is OHLCV_DAILY:
        to_land = with_daily_features(data_dir, to_land)
        result.recomputed = len(to_land) - len(good)
    summary = JobSummary(f"quarantine replay {dataset}")
    land(Landing.for_writer(writer), Batch(SOURCE, {dataset: to_land}), summary, at)
    # Recorded only once the rows are durable: a crash in between leaves a rerun that lands the same keys again,
    # which replaces the same part file rather than adding a row. Every row that passed is recorded, also one the
    # checks merged with a later copy of the same bar (its key was landed all the same).
    passed = np.setdiff1d(np.arange(len(candidates)), refused_rows)
    quarantine.mark_replayed(candidates.iloc[passed], at=at.to_pydatetime())
    result.landed = len(passed)
    return result


def _replay_kind(payload: object, reason: str) -> str | None:
    """Why this quarantined row cannot be replayed alone, or None when its payload is a whole parsed bar."""
    if reason == OUTSIDE_REQUESTED:
        return REQUEST_UNKNOWN
    if not isinstance(payload, dict) or not payload.keys() >= _REQUIRED:
        return RAW_ROW
    return None


def bar_frame(ds: Dataset, payloads: list[dict[str, object]]) -> pd.DataFrame:
    """Parsed bars from their quarantine payloads (JSON of a frame row), in the parser's columns and dtypes.

    A value that no longer reads as its type becomes null: a mangled price is then refused by the checks, a mangled
    time makes the row unreadable (:func:`replay` leaves it in the quarantine).
    """
    raw = pd.DataFrame.from_records(payloads)
    out: dict[str, pd.Series] = {}
    for name in BAR_COLUMNS:
        column = ds.column(name)
        values = raw[name] if name in raw else pd.Series([column.default] * len(raw), dtype=object)
        # pandas' missing integer is stored as the string "<NA>" (orjson's fallback is str()).
        values = values.where(values.astype(str) != "<NA>", None)
        if pa.types.is_timestamp(column.dtype):
            out[name] = pd.to_datetime(values, utc=True, errors="coerce").astype("datetime64[us, UTC]")
        elif pa.types.is_floating(column.dtype):
            out[name] = pd.to_numeric(values, errors="coerce").astype("float64")
        elif pa.types.is_integer(column.dtype):
            out[name] = pd.to_numeric(values, errors="coerce").astype("Int64")
        elif pa.types.is_boolean(column.dtype):
            out[name] = values.fillna(False).astype(bool)
        else:
            out[name] = values.fillna("" if column.default is None else column.default).astype(str)
    return pd.DataFrame(out)


def with_daily_features(data_dir: Root, bars: pd.DataFrame) -> pd.DataFrame:
    """Replayed daily ``bars`` with their derived features, plus the stored sessions after them whose features the
    missing bar had changed, recomputed from the stored history of each symbol (per split-adjustment flag, which
    is part of the key: adjusted and unadjusted closes never share a window)."""
    stored = dedupe_on_key(OHLCV_DAILY, read_dataset(data_dir, OHLCV_DAILY, sorted(bars[ENTITY_KEY].unique())))
    keys = [ENTITY_KEY, "window_start"]
    out = []
    for flag, replayed in bars.groupby("adjusted", sort=True):
        same = stored[stored["adjusted"] == flag]
        clash = same.merge(replayed[keys], on=keys, how="left", indicator=True)["_merge"].eq("both").to_numpy()
        history = pd.concat([same[~clash].assign(_replayed=False), replayed.assign(_replayed=True)], ignore_index=True)
        history = add_daily_features(history.sort_values(keys, kind="stable").reset_index(drop=True))
        marks = history["_replayed"].astype(int).groupby(history[ENTITY_KEY], sort=False)
        reached = marks.transform(lambda s: s.rolling(_DAILY_REACH, min_periods=1).max()).astype(bool)
        out.append(history[reached.to_numpy()].drop(columns="_replayed"))
    return pd.concat(out, ignore_index=True)


__all__ = ["REPLAYABLE", "ReplayResult", "bar_frame", "not_replayable", "replay", "with_daily_features"]
