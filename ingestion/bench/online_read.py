"""Online read latency: stock ``get_online_features`` vs a raw redis-py HMGET pipeline of the same keys and fields.

The project's repo is applied into a temporary data dir on an embedded redis-server, and one row per symbol of every
view the FeatureServices read is written with :class:`~ingestion.store.online.OnlineWriter` (Feast's bytes). Then,
for each FeatureService (``daily_model``, ``intraday_model``) and 1 / 10 / 100 entities:

* ``get_online_features().to_dict()``: ``store.get_online_features(features=<service>, entity_rows=...).to_dict()``,
  what a model server calls (registry cached, connection open); the goals are on this figure;
* ``get_online_features()``: the same without ``to_dict()`` (Feast's ``OnlineResponse`` of protobuf values), to show
  what the conversion to Python costs;
* ``raw HMGET pipeline``: one pipeline with one ``HMGET`` per (entity key, view) of exactly the fields Feast asks
  for (the features of the service's projection, then ``_ts:<view>``), keys and fields from
  ``OnlineWriter.entity_key``/``layout``; bytes back, nothing decoded. It is the floor: the Redis round trip alone.

The readers run in interleaved blocks so load drift on a shared machine hits them alike. Reported: median and p99
per call (ms), and ours / raw per size. Goals (issue 10): <= 2.5x raw at 1 entity, <= 2x at 100.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ingestion.bench.common import applied_repo, machine, peak_rss_mb, summarize, timings

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore

    from ingestion.store.online import OnlineWriter

SERVICES = ("daily_model", "intraday_model")
# Entities per call -> calls per block at full size (fewer for the slow sizes; p99 still rests on hundreds of calls).
SIZES = {1: 400, 10: 200, 100: 100}
OURS, RESPONSE, RAW = "get_online_features().to_dict()", "get_online_features()", "raw HMGET pipeline"
N_SYMBOLS = 100


def _symbols() -> list[str]:
    return [f"R{i:04d}" for i in range(N_SYMBOLS)]


def write_rows(store: FeatureStore, writer: OnlineWriter) -> int:
    """One seeded row per symbol for every view the services read; returns the number of views written."""
    from ingestion.bench.offline_append import synthetic_frame
    from ingestion.datasets import get

    views = sorted({p.name for name in SERVICES for p in store.get_feature_service(name).feature_view_projections})
    for i, view in enumerate(views):
        frame = synthetic_frame(get(view), _symbols(), "2024-03-01 21:00", 1, seed=i, null_share=0.0)
        writer.write(view, frame)
    return len(views)


def hmget_commands(
    service: FeatureService, writer: OnlineWriter, symbols: list[str]
) -> list[tuple[bytes, list[bytes]]]:
    """The (key, fields) pairs Feast's Redis store reads for ``service`` and ``symbols``: one per view and entity."""
    commands = []
    for projection in service.feature_view_projections:
        layout = writer.layout(projection.name)
        by_feature = dict(zip(layout.features, layout.fields, strict=True))
        fields = [by_feature[f.name] for f in projection.features] + [layout.ts_field]
        commands += [(writer.entity_key(layout.join_key, s), fields) for s in symbols]
    return commands


def _ours(store: FeatureStore, service: FeatureService, symbols: list[str], *, to_dict: bool) -> Callable[[], object]:
    rows = [{"symbol": s} for s in symbols]
    if to_dict:
        return lambda: store.get_online_features(features=service, entity_rows=rows).to_dict()
    return lambda: store.get_online_features(features=service, entity_rows=rows)


def _raw(client: Any, commands: list[tuple[bytes, list[bytes]]]) -> Callable[[], object]:
    def call() -> object:
        with client.pipeline(transaction=False) as pipe:
            for key, fields in commands:
                pipe.hmget(key, fields)
            return pipe.execute()

    return call


def _check(store: FeatureStore, service: FeatureService, symbols: list[str]) -> None:
    """Before timing: Feast must read back values for every entity, or the comparison times empty reads."""
    out = store.get_online_features(features=service, entity_rows=[{"symbol": s} for s in symbols]).to_dict()
    for name, values in out.items():
        if name != "symbol" and all(v is None for v in values):
            raise RuntimeError(f"{service.name}: feature {name} read back empty for every entity")


def run(quick: bool) -> dict[str, Any]:
    """Median and p99 ms of each reader per service and entity count, with ours / raw."""
    import redis

    from ingestion.store.online import OnlineWriter

    blocks = 2 if quick else 5  # blocks alternate the readers
    rows: list[dict[str, Any]] = []
    ratios: dict[str, float] = {}
    with applied_repo() as repo:
        store = repo.store
        writer = OnlineWriter(store)
        write_rows(store, writer)
        client = redis.Redis.from_url(repo.redis_url)
        for name in SERVICES:
            service = store.get_feature_service(name)
            for n, full_calls in SIZES.items():
                calls = 30 if quick else full_calls
                symbols = _symbols()[:n]
                _check(store, service, symbols)
                readers = {
                    OURS: _ours(store, service, symbols, to_dict=True),
                    RESPONSE: _ours(store, service, symbols, to_dict=False),
                    RAW: _raw(client, hmget_commands(service, writer, symbols)),
                }
                samples: dict[str, list[float]] = {variant: [] for variant in readers}
                for _ in range(blocks):
                    for variant, reader in readers.items():
                        samples[variant] += timings(reader, calls, warmup=3)
                medians = {}
                for variant, values in samples.items():
                    stats = summarize(values)
                    medians[variant] = stats["median_ms"]
                    rows.append(
                        {
                            "variant": variant,
                            "service": name,
                            "entities": n,
                            "median_ms": stats["median_ms"],
                            "p99_ms": stats["p99_ms"],
                            "calls": int(stats["n"]),
                            # One process runs every reader: its peak so far, shared by the rows.
                            "peak_rss_mb": peak_rss_mb(),
                        }
                    )
                ratios[f"{name}, {n} entities: ours / raw"] = medians[OURS] / medians[RAW]
                ratios[f"{name}, {n} entities: without to_dict / raw"] = medians[RESPONSE] / medians[RAW]
        client.close()
        writer.close()
    goals = {}
    for name in SERVICES:
        goals[f"{name}: <= 2.5x raw at 1 entity"] = ratios[f"{name}, 1 entities: ours / raw"] <= 2.5
        goals[f"{name}: <= 2x raw at 100 entities"] = ratios[f"{name}, 100 entities: ours / raw"] <= 2.0
    return {
        "rows": rows,
        "ratios": ratios,
        "goals": goals,
        "machine": machine(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(parser.parse_args().quick), indent=2, default=str))
