"""Which stored row of a key every reader serves when several origins stored it: one documented order per dataset.

``ohlcv_minute`` is written by three paths for the same (symbol, minute): the stream bridge's own aggregate of the
WebSocket trades, the stream's REST refill of minutes a gap left incomplete, and the REST backfill; a fourth, the
Unusual Whales candle, stands in when Polygon is unavailable. Each row names its origin in the ``source`` column.
The winner, highest first, and why:

1. ``polygon`` (REST backfill): Polygon's own aggregate, fetched only once its event time has passed (the backfill
   keeps rows published by its ``now``), so it is the vendor's value as published, late reports inside FINRA's 10 s
   included. It is also what every historical minute is: training and serving see one product.
2. ``polygon_refill`` (the stream's REST refill): the same endpoint, but asked as soon as the stream's watermark
   closes the minute (2 s of SIP time after its end), which can be before the vendor's bar is final.
3. ``polygon_ws`` (the stream's aggregate): our roll-up of the streamed trades. A trade later than the stream's
   lateness is left out, and Polygon's own aggregation rules (trade conditions that do not move OHLC) are not
   replicated, so it is the approximation the other two correct.
4. ``unusual_whales`` (fallback candles): another vendor's roll-up, without vwap or trade count; any Polygon value
   of the minute keeps the series on one vendor.

A row without the column (written before it existed) counts as the column's default, ``polygon``; an origin not
listed ranks below all listed ones.

Point in time: every origin stamps a minute with the same event time, the end of the minute plus the dataset's
publication delay (:mod:`ingestion.publication`; the stream uses the rule too, although its bar exists ~2 s after
the minute). So the origins are candidates for one published fact at one instant, and precedence only breaks ties
between rows of equal event time, before ``created_timestamp`` does: nothing becomes visible earlier, and the value
a training row sees at any instant is that of the highest origin stored, never one origin then another. Landing a
higher origin later replaces an approximation by the vendor's figure *of the same instant*, which was knowable then;
it is not a revision (a vendor changing a value after its publication time), which would need its own, later
knowledge time. Stamping the streamed bar earlier (minute end + 2 s) was rejected: a minute's visibility would then
depend on which path happened to store it, 13 s apart between streamed and backfilled history (train/serve skew),
for a bar that is not yet the vendor's final one.

Readers that apply it: :func:`ingestion.store.offline.dedupe_on_key` (``compact``, in-batch de-duplication,
``read_dataset(..., resolved=True)``), the ASOF offline store's point-in-time join and both its ``materialize``
pulls: the latest row per entity, and every row (Feast's default), which leaves out the rows outranked at their event
time, so Feast's local engine, which then keeps the newest ``created_timestamp``, writes the winner online.
Writers keep stock readers (which break ties by ``created_timestamp`` only) in agreement as far as they can: landing
never writes a row whose key is stored at equal or higher precedence (:mod:`ingestion.store.superseded`), so the
newest write of a key is its highest origin, except when the stream writes its bar after a REST bar of the same
minute (a late replay: the stream's appends do not look, since a lookup every offline interval over a month of
uncompacted stream part files would cost more than the write) or a backfill ran with an earlier ``now`` (its write
time). ``compact`` then drops the superseded row physically.

Online, the store keeps a minute's highest origin materialized so far: ``source`` is a feature of the view, and
the stored event time carries its rank below the microsecond, so a REST bar materialized after the streamed bar of
the same minute replaces it and nothing lower replaces it back (:mod:`ingestion.store.online.origin`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ingestion.datasets import OHLCV_MINUTE, Dataset

ORIGIN_COLUMN = "source"
"""The column naming a bar's origin (defined in :mod:`ingestion.datasets`)."""

REST = "polygon"
REFILL = "polygon_refill"
STREAM = "polygon_ws"
FALLBACK = "unusual_whales"

RANK_COLUMN = "__precedence"
"""Name of the rank while a reader sorts by it; never stored."""


@dataclass(frozen=True)
class Precedence:
    """A dataset's order of origins: ``lowest_first`` names the values of ``column`` from the least to the most
    trusted; a missing value counts as ``missing_as``, an unlisted one as rank 0 (below every listed origin)."""

    column: str
    lowest_first: tuple[str, ...]
    missing_as: str

    def rank(self, origin: str) -> int:
        """1 for the least trusted listed origin, ``len(lowest_first)`` for the most; 0 when unlisted."""
        return self.lowest_first.index(origin) + 1 if origin in self.lowest_first else 0

    def ranks(self, origins: pd.Series | pa.Array | pa.ChunkedArray) -> npt.NDArray[np.int64]:
        """The rank of every value of ``origins`` (pandas or Arrow; computed in Arrow, a lookup per row)."""
        values = pa.array(origins, type=pa.string(), from_pandas=True) if isinstance(origins, pd.Series) else origins
        filled = pc.fill_null(values.cast(pa.string()), self.missing_as)
        at = pc.index_in(filled, value_set=pa.array(self.lowest_first, pa.string()))
        return np.asarray(pc.fill_null(pc.add(at, 1), 0).to_numpy(zero_copy_only=False), dtype=np.int64)

    def of_rows(self, frame: pd.DataFrame | pa.Table) -> npt.NDArray[np.int64]:
        """The rank of every row of ``frame``; a frame without the column counts as ``missing_as``."""
        names = frame.column_names if isinstance(frame, pa.Table) else frame.columns
        if self.column not in names:
            return np.full(len(frame), self.rank(self.missing_as), dtype=np.int64)
        return self.ranks(frame[self.column])

    def sql(self, ident: Callable[[str], str], literal: Callable[[str], str]) -> str:
        """The rank as a SQL expression over the column (``ident`` quotes a name, ``literal`` a string)."""
        column = f"coalesce({ident(self.column)}, {literal(self.missing_as)})"
        cases = " ".join(f"WHEN {literal(o)} THEN {self.rank(o)}" for o in self.lowest_first)
        return f"(CASE {column} {cases} ELSE 0 END)"


MINUTE_BARS = Precedence(ORIGIN_COLUMN, lowest_first=(FALLBACK, STREAM, REFILL, REST), missing_as=REST)

_BY_DATASET: dict[str, Precedence] = {OHLCV_MINUTE.name: MINUTE_BARS}


def precedence_of(dataset: Dataset | str) -> Precedence | None:
    """The dataset's order of origins; None when its rows of one key are told apart by write time alone."""
    return _BY_DATASET.get(dataset if isinstance(dataset, str) else dataset.name)


def ranks(dataset: Dataset | str, frame: pd.DataFrame) -> npt.NDArray[np.int64] | None:
    """The rank of every row of ``frame`` (a frame without the origin column counts as its default origin); None
    for a dataset without an order."""
    order = precedence_of(dataset)
    return None if order is None else order.of_rows(frame)


__all__ = [
    "FALLBACK",
    "MINUTE_BARS",
    "ORIGIN_COLUMN",
    "RANK_COLUMN",
    "REFILL",
    "REST",
    "STREAM",
    "Precedence",
    "precedence_of",
    "ranks",
]
