"""Training/serving skew: what a model reads online against what training read offline, at the same instant.

For a sample of symbols and each FeatureService, :func:`measure_skew` reads ``get_online_features`` (the service's
pre-computed vector, what a model server gets) and ``get_historical_features`` with every entity row at the same
read instant (the point-in-time join training uses), and compares them value by value per view and feature. Both
null counts as equal; numbers are compared exactly, except floats within a relative 1e-9 (a double that went
through Parquet and one that went through protobuf can differ in the last bit of a derived value, never more). A
difference means the online store serves something training never saw: a value the offline join expired, a row
the online store missed, or a slice left behind.

A service's on-demand views are compared like any view, output by output: online Feast computes them from the
per-view values our store read (expired by the ttl before the transform, as offline), offline from the join's.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feast import FeatureStore

    from ingestion.store.objectstore import Root

SERVICES = ("daily_model", "intraday_model")


class _Absent:
    """A feature column one side does not return at all."""

    def __repr__(self) -> str:
        return "<absent>"


_ABSENT = _Absent()


@dataclass
class FeatureSkew:
    """One feature of one view in one service: values compared, how many differ, and the first that differs."""

    service: str
    view: str
    feature: str
    compared: int = 0
    different: int = 0
    example: str = ""


@dataclass
class SkewReport:
    at: datetime
    symbols: list[str]
    features: list[FeatureSkew] = field(default_factory=list)

    @property
    def differences(self) -> int:
        return sum(f.different for f in self.features)

    def table(self) -> str:
        """One line per feature: service, view, feature, compared, different, an example of a difference."""
        head = ("service", "view", "feature", "compared", "different", "example (symbol: online != offline)")
        rows = [head] + [
            (f.service, f.view, f.feature, str(f.compared), str(f.different), f.example) for f in self.features
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in rows]
        total = sum(f.compared for f in self.features)
        lines.append(
            f"{self.differences} of {total} values differ between online and offline at {self.at.isoformat()} "
            f"({len(self.symbols)} symbols)"
        )
        return "\n".join(lines)


def _same(online: Any, offline: Any) -> bool:
    if _null(online) and _null(offline):
        return True
    if _null(online) or _null(offline):
        return False
    if isinstance(online, float) or isinstance(offline, float):
        try:
            return math.isclose(float(online), float(offline), rel_tol=1e-9, abs_tol=0.0)
        except (TypeError, ValueError):
            return False
    if hasattr(offline, "to_pydatetime"):
        offline = offline.to_pydatetime()
    return bool(online == offline)


def _null(value: Any) -> bool:
    """None, NaN, NaT or pandas' NA (Int64 columns of the offline join)."""
    import pandas as pd

    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or array value is not a null
        return False


def sample_symbols(data_dir: Root, n: int, *, seed: int = 0, datasets: Sequence[str] = ("ohlcv_daily",)) -> list[str]:
    """Up to ``n`` symbols drawn (seeded) from the distinct symbols of the datasets' stored rows (a local data dir
    or an ``s3://`` root)."""
    from ingestion.store.offline import stored_symbols

    found = sorted({symbol for name in datasets for symbol in stored_symbols(data_dir, name)})
    return sorted(random.Random(seed).sample(found, min(n, len(found))))


def measure_skew(
    store: FeatureStore, symbols: Sequence[str], *, services: Iterable[str] = SERVICES, at: datetime | None = None
) -> SkewReport:
    """Online against point-in-time offline values of every service's features for ``symbols`` at ``at``.

    ``at`` (default: now) is also the online read's instant (our store's ``read_at``), so both sides judge TTLs
    at the very same microsecond.
    """
    import pandas as pd

    from ingestion.store.online.layout import alias

    when = (at or datetime.now(UTC)).astimezone(UTC)
    report = SkewReport(when, list(symbols))
    if not symbols:
        return report
    online_config = store.config.online_store
    had_read_at = hasattr(online_config, "read_at")
    before = getattr(online_config, "read_at", None)
    if had_read_at:
        online_config.read_at = when
    try:
        for name in services:
            service = store.get_feature_service(name)
            rows = [{"symbol": s} for s in symbols]
            online = store.get_online_features(features=service, entity_rows=rows, full_feature_names=True).to_dict()
            entity = pd.DataFrame({"symbol": list(symbols), "event_timestamp": [pd.Timestamp(when)] * len(symbols)})
            job = store.get_historical_features(entity_df=entity, features=service, full_feature_names=True)
            offline = job.to_df().set_index("symbol")
            for projection in service.feature_view_projections:
                view = alias(projection)
                for feature in projection.features:
                    column = f"{view}__{feature.name}"
                    skew = FeatureSkew(name, view, feature.name)
                    # A column one side lacks (Feast 0.67 drops a python-mode on-demand output online under full
                    # feature names) differs for every symbol: a model reading it by name gets nothing.
                    served = online.get(column, [_ABSENT] * len(online["symbol"]))
                    for symbol, value in zip(online["symbol"], served, strict=True):
                        if symbol not in offline.index:
                            other = None
                        else:
                            other = offline.at[symbol, column] if column in offline.columns else _ABSENT
                        skew.compared += 1
                        if value is _ABSENT or other is _ABSENT or not _same(value, other):
                            skew.different += 1
                            skew.example = skew.example or f"{symbol}: {value!r} != {other!r}"
                    report.features.append(skew)
    finally:
        if had_read_at:
            online_config.read_at = before
    return report


__all__ = ["SERVICES", "FeatureSkew", "SkewReport", "measure_skew", "sample_symbols"]
