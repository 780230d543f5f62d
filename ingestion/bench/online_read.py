"""Online read latency: stock Feast, ours and a raw redis-py pipeline, side by side, on the same Redis and rows.

The project's repo is applied into a temporary data dir on an embedded redis-server, and one fresh row per symbol
of every view the FeatureServices read is written with :class:`~ingestion.store.online.OnlineWriter` (through our
store class, so the values, their event times and the services' vector slices are all there). Then, for each
FeatureService (``daily_model``, ``intraday_model``) and 1 / 10 / 100 entities:

* ``stock get_online_features().to_dict()``: a second ``FeatureStore`` on the same registry and Redis with Feast's
  own ``RedisOnlineStore`` (``type: redis``) and the service read per view (``precompute_online`` off, as stock
  Feast has no vectors to read without ``feast precompute``): Feast as shipped;
* ``ours get_online_features().to_dict()``: ``store.get_online_features(features=<service>)`` on the repo's
  store, our online store class: the pre-computed vector, one ``HMGET`` per entity, TTLs applied at read;
* ``raw HMGET pipeline``: one pipeline with one ``HMGET`` per (entity key, view) of exactly the fields Feast's
  per-view read asks for (the service's features of the view, then ``_ts:<view>``); bytes back, nothing decoded.
  The floor of the per-view layout, and the figure the goals divide by;
* ``raw vector HMGET``: the one ``HMGET`` per entity our read sends (slices and view times); bytes back.

Readers run in interleaved blocks so load drift on a shared machine hits them alike. Reported: median and p99 per
call (ms) and each reader / raw per size. Goals (issue 20): ours <= 3x raw at 1 entity, <= 2x raw at 100.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ingestion.bench.common import applied_repo, machine, peak_rss_mb, summarize, timings

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore

    from ingestion.config import Settings
    from ingestion.store.online import OnlineWriter

SERVICES = ("daily_model", "intraday_model")
# Entities per call -> calls per block at full size (fewer for the slow sizes; p99 still rests on hundreds of calls).
SIZES = {1: 400, 10: 200, 100: 100}
STOCK = "stock get_online_features().to_dict()"
OURS = "ours get_online_features().to_dict()"
RAW = "raw HMGET pipeline"
RAW_VECTOR = "raw vector HMGET"
N_SYMBOLS = 100


def _symbols() -> list[str]:
    return [f"R{i:04d}" for i in range(N_SYMBOLS)]


def stock_store(settings: Settings, redis_url: str) -> FeatureStore:
    """A ``FeatureStore`` on the repo's registry and ``redis_url`` with Feast's stock ``RedisOnlineStore``."""
    import os

    import yaml
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    from ingestion.store.feast_config import expand_variables, feast_environment, pin_data_dir
    from ingestion.store.feast_online import feast_redis_fields

    path = settings.repo_path / "feature_store.yaml"
    env = {**os.environ, **feast_environment(settings, redis_url)}
    raw = yaml.safe_load(expand_variables(path.read_text(), env))
    pin_data_dir(raw, settings.data_dir)
    raw["online_store"] = {**feast_redis_fields(redis_url), "type": "redis"}
    config = RepoConfig(**raw)
    config.repo_path = settings.repo_path
    return FeatureStore(repo_path=str(settings.repo_path), config=config)


def write_rows(store: FeatureStore, writer: OnlineWriter) -> int:
    """One seeded row per symbol, five minutes old, for every view the services read; returns the view count."""
    import pandas as pd

    from ingestion.bench.offline_append import synthetic_frame
    from ingestion.datasets import get

    start = pd.Timestamp.now(tz="UTC").floor("s") - pd.Timedelta(minutes=5)
    views = sorted({p.name for name in SERVICES for p in store.get_feature_service(name).feature_view_projections})
    for i, view in enumerate(views):
        frame = synthetic_frame(get(view), _symbols(), start, 1, seed=i, null_share=0.0)
        writer.write(view, frame, record=False)
    return len(views)


def hmget_commands(
    service: FeatureService, writer: OnlineWriter, symbols: list[str]
) -> list[tuple[bytes, list[bytes]]]:
    """The (key, fields) pairs Feast's per-view Redis read sends for ``service``: one per view and entity."""
    commands = []
    for projection in service.feature_view_projections:
        layout = writer.layout(projection.name)
        by_feature = dict(zip(layout.features, layout.fields, strict=True))
        fields = [by_feature[f.name] for f in projection.features] + [layout.ts_field]
        commands += [(writer.entity_key(layout.join_key, s), fields) for s in symbols]
    return commands


def vector_commands(
    service: FeatureService, writer: OnlineWriter, symbols: list[str]
) -> list[tuple[bytes, list[bytes]]]:
    """The (key, fields) pairs our vector read sends: one per entity."""
    plan = writer.online.catalog(writer.store.registry, writer.project).plan(service)
    join_key = writer.layout(service.feature_view_projections[0].name).join_key
    return [(writer.entity_key(join_key, s), plan.fields) for s in symbols]


def _reader(store: FeatureStore, service: FeatureService, symbols: list[str]) -> Callable[[], object]:
    rows = [{"symbol": s} for s in symbols]
    return lambda: store.get_online_features(features=service, entity_rows=rows).to_dict()


def _raw(client: Any, commands: list[tuple[bytes, list[bytes]]]) -> Callable[[], object]:
    def call() -> object:
        with client.pipeline(transaction=False) as pipe:
            for key, fields in commands:
                pipe.hmget(key, fields)
            return pipe.execute()

    return call


def _check(readers: dict[str, Callable[[], object]], stock: Callable[[], object]) -> None:
    """Before timing: ours must read back exactly what stock Feast reads, and no feature may be empty."""
    ours, theirs = readers[OURS](), stock()
    if ours != theirs:
        raise RuntimeError(f"ours and stock disagree: {ours} != {theirs}")
    for name, values in dict(ours).items():  # type: ignore[call-overload]
        if name != "symbol" and all(v is None for v in values):
            raise RuntimeError(f"feature {name} read back empty for every entity")


def run(quick: bool) -> dict[str, Any]:
    """Median and p99 ms of each reader per service and entity count, with each / raw."""
    import redis

    from ingestion.store.online import OnlineWriter

    blocks = 2 if quick else 5  # blocks alternate the readers
    rows: list[dict[str, Any]] = []
    ratios: dict[str, float] = {}
    with applied_repo() as repo:
        store = repo.store
        stock = stock_store(repo.settings, repo.redis_url)
        writer = OnlineWriter(store, record_every_s=None)
        write_rows(store, writer)
        client = redis.Redis.from_url(repo.redis_url)
        for name in SERVICES:
            service = store.get_feature_service(name)
            stock_service = stock.get_feature_service(name)
            stock_service.precompute_online = False
            for n, full_calls in SIZES.items():
                calls = 30 if quick else full_calls
                symbols = _symbols()[:n]
                readers = {
                    STOCK: _reader(stock, stock_service, symbols),
                    OURS: _reader(store, service, symbols),
                    RAW: _raw(client, hmget_commands(service, writer, symbols)),
                    RAW_VECTOR: _raw(client, vector_commands(service, writer, symbols)),
                }
                _check(readers, readers[STOCK])
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
                ratios[f"{name}, {n} entities: stock / raw"] = medians[STOCK] / medians[RAW]
                ratios[f"{name}, {n} entities: stock / ours"] = medians[STOCK] / medians[OURS]
        client.close()
        writer.close()
    goals = {}
    for name in SERVICES:
        goals[f"{name}: ours <= 3x raw at 1 entity"] = ratios[f"{name}, 1 entities: ours / raw"] <= 3.0
        goals[f"{name}: ours <= 2x raw at 100 entities"] = ratios[f"{name}, 100 entities: ours / raw"] <= 2.0
    return {"rows": rows, "ratios": ratios, "goals": goals, "machine": machine()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(parser.parse_args().quick), indent=2, default=str))
