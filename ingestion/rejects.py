"""What a parser hands back besides good rows: the rows it refused, each with its reason.

Parsers never drop a row silently. A row that fails validation becomes a :class:`Rejected` record; the jobs write
these to the ``quarantine`` dataset (see :data:`ingestion.datasets.QUARANTINE`) and count them in their summary.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pandas as pd

log = logging.getLogger(__name__)

RejectSink = Callable[[list["Rejected"]], None]
"""Where a client hands rows that failed validation (the jobs' quarantine writer)."""


@dataclass(frozen=True)
class Rejected:
    """One refused row. ``source`` names vendor and endpoint (never a key); ``payload`` is the raw row."""

    dataset: str
    source: str
    reason: str
    payload: Any

    def payload_json(self) -> str:
        return orjson.dumps(self.payload, default=str, option=orjson.OPT_SORT_KEYS).decode()


@dataclass
class ParseResult:
    """Good rows as a frame in the dataset's columns, the rejected rows, and unknown fields seen (schema drift)."""

    frame: pd.DataFrame
    rejected: list[Rejected] = field(default_factory=list)
    drift: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.rejected

    @classmethod
    def concat(cls, results: Iterable[ParseResult], empty: pd.DataFrame | None = None) -> ParseResult:
        """One result of many (pages, days, endpoints): their rows in order, every rejected row, all drift.

        With no rows at all the frame is the first result's empty frame (its columns and dtypes), else ``empty``,
        else a frame with no columns: the caller's schema survives an empty range.

        ``results`` is read once, as it comes, keeping only frames that hold rows: fed a generator of pages, memory
        grows with the rows received, not with the pages (an endless chain of empty pages costs nothing per page).
        """
        non_empty: list[pd.DataFrame] = []
        schema: pd.DataFrame | None = None
        rejected: list[Rejected] = []
        drift: set[str] = set()
        for result in results:
            if len(result.frame):
                non_empty.append(result.frame)
            elif schema is None:
                schema = result.frame.iloc[:0]
            rejected.extend(result.rejected)
            drift |= result.drift
        if non_empty:
            frame = pd.concat(non_empty, ignore_index=True)
        elif schema is not None:
            frame = schema.reset_index(drop=True)
        else:
            frame = empty.iloc[:0].reset_index(drop=True) if empty is not None else pd.DataFrame()
        return cls(frame, rejected, drift)


def hand_off(rejected: list[Rejected], sink: RejectSink | None, vendor: str) -> None:
    """Give ``rejected`` to ``sink``; with no sink, log how many rows were refused (they are never dropped quietly)."""
    if not rejected:
        return
    if sink is not None:
        sink(rejected)
    else:
        log.warning("%d %s rows failed validation (pass on_rejected to quarantine them)", len(rejected), vendor)
