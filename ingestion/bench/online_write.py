"""Online write throughput of stream-like rows: our writer vs Feast ``push`` vs raw pipelined HSET, one run.

All three write the same ``realtime_quotes`` rows (one row per symbol per micro-batch, like the bridge) into one
real redis-server, through the project's applied Feast repo. Raw HSET sends the very bytes our writer prepared,
without the compare-and-set, so it is the floor. Materialize has its own benchmark (:mod:`ingestion.bench.materialize`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import pandas as pd
import redis

from ingestion.bench.common import applied_repo, machine, peak_rss_mb, rate
from ingestion.bench.offline_append import synthetic_frame
from ingestion.datasets import REALTIME_QUOTES
from ingestion.store.online import OnlineWriter

OURS, RAW, FEAST = "ours (compare-and-set)", "raw pipelined HSET", "feast push ONLINE"
VARIANTS = (OURS, RAW, FEAST)


def _batches(n_symbols: int, n_batches: int, seed: int) -> list[pd.DataFrame]:
    symbols = [f"Q{i:05d}" for i in range(n_symbols)]
    frame = synthetic_frame(REALTIME_QUOTES, symbols, "2024-03-01 14:30", n_batches, freq="100ms", seed=seed)
    return [group for _, group in frame.groupby("event_timestamp", sort=True)]


def _ours(writer: OnlineWriter, batches: list[pd.DataFrame]) -> float:
    t = time.perf_counter()
    for batch in batches:
        writer.write("realtime_quotes", batch)
    return time.perf_counter() - t


def _raw_hset(writer: OnlineWriter, client: redis.Redis, batches: list[pd.DataFrame]) -> float:
    t = time.perf_counter()
    for batch in batches:
        prepared = writer.prepare("realtime_quotes", batch)
        with client.pipeline(transaction=False) as pipe:
            for i, key in enumerate(prepared.keys):
                pipe.hset(key, mapping=prepared.hset_mapping(i))  # type: ignore[arg-type]
            pipe.execute()
    return time.perf_counter() - t


def _feast_push(store: Any, batches: list[pd.DataFrame]) -> float:
    from feast.data_source import PushMode

    columns = REALTIME_QUOTES.column_names
    t = time.perf_counter()
    for batch in batches:
        store.push("realtime_quotes_push", batch[columns], to=PushMode.ONLINE)
    return time.perf_counter() - t


def run(quick: bool) -> dict[str, Any]:
    """Rows/s of each writer on the same batches; ratios against Feast push and raw HSET."""
    n_symbols = 200 if quick else 2000
    n_batches = 5 if quick else 20
    feast_batches = 2 if quick else 5
    rounds = 1 if quick else 5
    with applied_repo() as repo:
        store = repo.store
        writer = OnlineWriter(store)
        client = redis.Redis.from_url(repo.redis_url)
        writer.write("realtime_quotes", _batches(n_symbols, 1, seed=99)[0])  # warm registry, script and connection
        store.push("realtime_quotes_push", _batches(n_symbols, 1, seed=98)[0][REALTIME_QUOTES.column_names])
        # Interleaved rounds: the machine is shared and noisy, so each round runs all three back to back and the
        # median round is reported.
        rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for r in range(rounds):
            ours_s = _ours(writer, _batches(n_symbols, n_batches, 10 * r + 1))
            rates[OURS].append(rate(n_symbols * n_batches, ours_s))
            client.flushdb()
            raw_s = _raw_hset(writer, client, _batches(n_symbols, n_batches, 10 * r + 2))
            rates[RAW].append(rate(n_symbols * n_batches, raw_s))
            client.flushdb()
            feast_s = _feast_push(store, _batches(n_symbols, feast_batches, 10 * r + 3))
            rates[FEAST].append(rate(n_symbols * feast_batches, feast_s))
            client.flushdb()
        writer.close()
        client.close()
    median = {name: statistics.median(values) for name, values in rates.items()}
    # One process runs all three, so the peak RSS is shared; it is given per row as the harness asks.
    rss = peak_rss_mb()
    rows = [
        {"variant": name, "rows_per_s": median[name], "best_rows_per_s": max(rates[name]), "peak_rss_mb": rss}
        for name in VARIANTS
    ]
    return {
        "rows": rows,
        "rows_per_batch": n_symbols,
        "rounds": rounds,
        "ratios": {"ours / feast push": median[OURS] / median[FEAST], "ours / raw HSET": median[OURS] / median[RAW]},
        "goals": {"ours >= 5x feast push": median[OURS] / median[FEAST] >= 5.0},
        "machine": machine(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(parser.parse_args().quick), indent=2, default=str))
