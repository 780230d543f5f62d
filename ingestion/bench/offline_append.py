"""Offline append cost per batch at millions of existing rows: our part-file writer vs Feast's offline push.

Ours appends a batch as new part files (O(batch)). Feast's ``store.push(..., to=PushMode.OFFLINE)`` reads the
whole Parquet file of the batch source, concatenates and writes it back (feast-notes pitfall 4), so its cost grows
with history; it is measured at the largest size it handles in reasonable time (1M rows full, 20k quick). Both
write the same minute-bar rows. Goal: ours <= 50 ms per batch at 5M existing rows.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ingestion.bench.common import machine, peak_rss_mb, summarize
from ingestion.datasets import CREATED_TS, ENTITY_KEY, EVENT_TS, OHLCV_MINUTE, Dataset
from ingestion.store.offline import OfflineWriter, part_files, to_table, write_parquet_atomic


def synthetic_frame(
    dataset: Dataset,
    symbols: list[str],
    start: str | pd.Timestamp,
    periods: int,
    *,
    freq: str = "D",
    seed: int = 0,
    created: str = "2030-01-01",
    null_share: float = 0.05,
) -> pd.DataFrame:
    """``periods`` seeded rows per symbol in every column of ``dataset``; event times step by ``freq`` (UTC).

    Values are random but typed like the dataset (floats with about ``null_share`` NaN, ints, bools, dates), so the
    frame stands in for any dataset in benchmarks and storage tests.
    """
    rng = np.random.default_rng(seed)
    times = pd.date_range(start, periods=periods, freq=freq, tz="UTC")
    n = len(symbols) * periods
    data: dict[str, Any] = {
        ENTITY_KEY: np.repeat(np.asarray(symbols, dtype=object), periods),
        EVENT_TS: pd.DatetimeIndex(np.tile(times.tz_convert(None).to_numpy(), len(symbols))).tz_localize("UTC"),
        CREATED_TS: pd.Timestamp(created, tz="UTC"),
    }
    for column in dataset.columns:
        if column.name in data:
            continue
        kind = str(column.dtype)
        if kind == "double":
            values = rng.normal(100, 10, n).round(4)
            values[rng.random(n) < null_share] = np.nan
            data[column.name] = values
        elif kind == "int64":
            data[column.name] = rng.integers(0, 10_000, n)
        elif kind == "bool":
            data[column.name] = rng.random(n) < 0.5
        elif kind.startswith("timestamp"):
            # Stands for a window start: one minute before the event time, unique per row like a bar's.
            data[column.name] = data[EVENT_TS] - pd.Timedelta(minutes=1)
        elif kind == "date32[day]":
            data[column.name] = np.tile(times.date, len(symbols))
        else:
            data[column.name] = [f"{column.name}-{i}" for i in range(n)]
    return pd.DataFrame(data)


def _symbols(count: int) -> list[str]:
    return [f"S{i:04d}" for i in range(count)]


def _history(writer: OfflineWriter, rows: int, n_symbols: int) -> pd.Timestamp:
    """Write ``rows`` minute bars of ``n_symbols`` symbols in large batches; returns the first free minute."""
    periods = rows // n_symbols
    start = pd.Timestamp("2024-01-02 14:30", tz="UTC")
    per_chunk = max(1, 400_000 // periods)
    symbols = _symbols(n_symbols)
    for i in range(0, n_symbols, per_chunk):
        writer.append(
            OHLCV_MINUTE, synthetic_frame(OHLCV_MINUTE, symbols[i : i + per_chunk], start, periods, freq="min", seed=i)
        )
    return start + pd.Timedelta(minutes=periods)


def _ours(data_dir: Path, existing: int, n_symbols: int, batch_rows: list[int], repeat: int) -> dict[str, Any]:
    writer = OfflineWriter(data_dir)
    t0 = time.perf_counter()
    cursor = _history(writer, existing, n_symbols)
    setup_s = time.perf_counter() - t0
    out: dict[str, Any] = {
        "existing_rows": existing,
        "history_files": len(part_files(data_dir, OHLCV_MINUTE)),
        "setup_s": setup_s,
    }
    for size in batch_rows:
        # A batch is whole symbol-sessions of minute bars (390 rows each), as a backfill page or a day of one symbol.
        symbols = _symbols(min(n_symbols, max(1, size // 390)))
        periods = max(1, size // len(symbols))
        samples = []
        for r in range(repeat + 1):
            frame = synthetic_frame(OHLCV_MINUTE, symbols, cursor, periods, freq="min", seed=1000 + r)
            cursor += pd.Timedelta(minutes=periods)
            t = time.perf_counter()
            writer.append(OHLCV_MINUTE, frame)
            if r:  # the first call warms imports and caches
                samples.append(time.perf_counter() - t)
        out[f"batch_{size}"] = {**summarize(samples), "rows_per_batch": len(symbols) * periods}
    return out


def _feast(tmp: Path, existing: int, batch: int, repeat: int) -> dict[str, Any]:
    """Feast's offline push into a one-file FileSource holding ``existing`` rows (duckdb offline store)."""
    from feast import Entity, FeatureStore, FeatureView, FileSource, PushSource, RepoConfig, ValueType
    from feast.data_source import PushMode
    from feast.repo_config import RegistryConfig

    from ingestion.store.feast_repo import feature_fields

    path = tmp / "feast" / "ohlcv_minute.parquet"
    history = synthetic_frame(OHLCV_MINUTE, _symbols(100), "2024-01-02 14:30", existing // 100, freq="min")
    write_parquet_atomic(to_table(OHLCV_MINUTE, history), path, fsync=False)
    cursor = history[EVENT_TS].max() + pd.Timedelta(minutes=1)
    del history
    config = RepoConfig(
        project="bench_offline",
        provider="local",
        registry=RegistryConfig(registry_type="file", path=str(tmp / "feast" / "registry.db")),
        online_store={"type": "sqlite", "path": str(tmp / "feast" / "online.db")},
        offline_store={"type": "duckdb"},
        entity_key_serialization_version=3,
        repo_path=str(tmp / "feast"),
    )
    store = FeatureStore(config=config)
    ticker = Entity(name="ticker", join_keys=[ENTITY_KEY], value_type=ValueType.STRING)
    source = FileSource(
        name="minute_file", path=str(path), timestamp_field=EVENT_TS, created_timestamp_column=CREATED_TS
    )
    push = PushSource(name="minute_push", batch_source=source)
    view = FeatureView(name="ohlcv_minute", entities=[ticker], schema=feature_fields(OHLCV_MINUTE), source=push)
    store.apply([ticker, push, view])
    samples = []
    for r in range(repeat + 1):
        frame = synthetic_frame(OHLCV_MINUTE, _symbols(1), cursor, batch, freq="min", seed=2000 + r)
        cursor += pd.Timedelta(minutes=batch)
        frame = to_table(OHLCV_MINUTE, frame).to_pandas()
        t = time.perf_counter()
        store.push("minute_push", frame, to=PushMode.OFFLINE)
        if r:
            samples.append(time.perf_counter() - t)
    return {"existing_rows": existing, f"batch_{batch}": summarize(samples)}


def run(quick: bool) -> dict[str, Any]:
    """Figures: ours at ``existing`` rows for small and large batches; Feast's offline push at a size it survives."""
    existing = 50_000 if quick else 5_000_000
    feast_existing = 20_000 if quick else 1_000_000
    n_symbols = 50 if quick else 250
    repeat = 5 if quick else 20
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        # Peak RSS is this process's, read after each part; it only grows, so ours runs before Feast to keep its
        # figures its own.
        ours = _ours(tmp / "ours", existing, n_symbols, [390, 10_000], repeat)
        ours["peak_rss_mb"] = peak_rss_mb()
        # Ours at the same history size as Feast, for a like-for-like ratio.
        ours_same = _ours(tmp / "ours_same", feast_existing, n_symbols, [390], repeat)
        ours_same["peak_rss_mb"] = peak_rss_mb()
        feast = _feast(tmp, feast_existing, 390, 3 if quick else 5)
        feast["peak_rss_mb"] = peak_rss_mb()
    ours_390 = ours["batch_390"]["median_ms"]
    rows = [
        _row("ours", ours, 390),
        _row("ours", ours, 10_000),
        _row("ours", ours_same, 390),
        _row("feast offline push", feast, 390),
    ]
    return {
        "rows": rows,
        "ratios": {
            "feast push / ours, same history, 390-row batch": feast["batch_390"]["median_ms"]
            / ours_same["batch_390"]["median_ms"],
            "feast push at its size / ours at full size": feast["batch_390"]["median_ms"] / ours_390,
        },
        "goals": {f"ours <= 50 ms per 390-row batch at {existing:,} rows": ours_390 <= 50.0},
        "machine": machine(),
    }


def _row(variant: str, part: dict[str, Any], batch: int) -> dict[str, Any]:
    stats = part[f"batch_{batch}"]
    return {
        "variant": variant,
        "existing_rows": part["existing_rows"],
        "batch_rows": int(stats.get("rows_per_batch", batch)),
        "median_ms": stats["median_ms"],
        "p99_ms": stats["p99_ms"],
        "peak_rss_mb": part["peak_rss_mb"],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(parser.parse_args().quick), indent=2, default=str))
