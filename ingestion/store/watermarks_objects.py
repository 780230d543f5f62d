"""Watermarks of an offline store on object storage, and the choice between them and the local SQLite table.

Same contract as :class:`~ingestion.store.watermarks.Watermarks` (newest durable event time per (dataset, symbol),
advanced only after the rows are committed, never moved back), kept as one JSON object per dataset,
``<root>/state/watermarks/<dataset>.json`` = ``{symbol: epoch microseconds}``. SQLite's file locks cannot work on
object storage, so an advance is a compare-and-swap (``If-Match`` on the object's ETag, retried on a lost race):
writers on several machines never lose each other's marks, and a max-merge keeps a mark from moving back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd

from ingestion.store.objectstore import ObjectRoot, Root
from ingestion.store.watermarks import Watermarks, _from_us, _to_us


class ObjectWatermarks:
    """The watermark records of an object-storage root (see the module docstring); values are UTC timestamps."""

    def __init__(self, state_root: ObjectRoot) -> None:
        self.root = state_root / "watermarks"

    def _object(self, dataset: str) -> ObjectRoot:
        return self.root / f"{dataset}.json"

    def all(self, dataset: str) -> dict[str, pd.Timestamp]:
        raw = self._object(dataset).read_json() or {}
        return {str(s): _from_us(int(us)) for s, us in raw.items()}

    def get(self, dataset: str, symbol: str) -> pd.Timestamp | None:
        return self.all(dataset).get(symbol)

    def get_many(self, dataset: str, symbols: Iterable[str]) -> dict[str, pd.Timestamp]:
        marks = self.all(dataset)
        return {s: marks[s] for s in set(symbols) if s in marks}

    def advance(self, dataset: str, marks: Mapping[str, datetime | pd.Timestamp]) -> None:
        """Raise several symbols' watermarks in one conditional write; a watermark never moves back."""
        if not marks:
            return
        wanted = {symbol: _to_us(ts) for symbol, ts in marks.items()}

        def raise_marks(data: dict[str, Any]) -> None:
            for symbol, us in wanted.items():
                if us > int(data.get(symbol, -(2**62))):
                    data[symbol] = us

        self._object(dataset).update_json(raise_marks)

    def reset(self, dataset: str, symbols: Iterable[str] | None = None) -> None:
        """Forget watermarks (all of a dataset, or some symbols)."""
        drop = None if symbols is None else set(symbols)

        def forget(data: dict[str, Any]) -> None:
            for symbol in list(data):
                if drop is None or symbol in drop:
                    del data[symbol]

        self._object(dataset).update_json(forget)

    def close(self) -> None:
        """Nothing to release: no connection is held between calls."""

    def __enter__(self) -> ObjectWatermarks:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


AnyWatermarks = Watermarks | ObjectWatermarks


def watermarks_for(root: Root) -> AnyWatermarks:
    """The watermarks of a data dir (SQLite in ``<dir>/state``) or of an object-storage root (JSON in ``state/``)."""
    if isinstance(root, Path):
        return Watermarks.for_data_dir(root)
    return ObjectWatermarks(root / "state")


__all__ = ["AnyWatermarks", "ObjectWatermarks", "watermarks_for"]
