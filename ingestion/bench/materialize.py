"""Materialize: our ``materialize_latest`` vs stock ``feast materialize``, on the same Parquet part files.

The project's repo is applied into a temporary data dir on an embedded redis-server, and ``keys`` symbols x ``days``
seeded ``ohlcv_daily`` rows are landed as part files by :class:`~ingestion.store.offline.OfflineWriter`. Each
variant then loads the latest row per symbol into an emptied Redis:

* ``ours``: :func:`~ingestion.store.online.materialize_latest` with the view's layout already resolved (a
  long-running job's case); ``ours, cold`` also resolves the registry and opens its connection inside the timing;
* ``feast materialize (in-process)``: ``FeatureStore.materialize`` over the same interval, the like-for-like figure;
* ``feast materialize (CLI)``: the stock ``feast materialize --views ohlcv_daily`` command, a whole process (what a
  cron job pays), import included.

All variants write through our online store class, so each writes the vector slices of the precompute services
with the values. Feast's two variants then also run Feast's own ``precompute_feature_service`` pass, which stock
Feast starts after every materialize of a view read by a ``precompute_online`` service (a scan of every key and a
vector per entity): that is what ``feast materialize`` costs on this repo, and most of its time.

After each variant Redis must hold exactly ``keys`` hashes, so no figure counts a partial load. Reported: keys/s,
seconds, peak RSS (this process, or the CLI child), and for ours the CPU time per key of this process and of
redis-server (steadier than keys/s on a shared machine: the two together bound the rate two idle cores reach).
Goal (issues 10, 20): ours >= 40k keys/s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import datetime
from typing import Any

import pandas as pd

from ingestion.bench.common import AppliedRepo, applied_repo, child_peak_rss_mb, machine, peak_rss_mb, rate

VIEW = "ohlcv_daily"


def land_history(repo: AppliedRepo, keys: int, days: int) -> tuple[datetime, datetime]:
    """Write ``keys`` symbols x ``days`` daily rows as part files; returns the event-time interval (UTC) to load."""
    from ingestion.bench.offline_append import synthetic_frame
    from ingestion.datasets import EVENT_TS, OHLCV_DAILY
    from ingestion.store.offline import OfflineWriter

    symbols = [f"M{i:06d}" for i in range(keys)]
    writer = OfflineWriter(repo.settings.data_dir)
    first, last = pd.Timestamp.max.tz_localize("UTC"), pd.Timestamp.min.tz_localize("UTC")
    # Chunks of symbols keep the generator's frames small, so this process's peak RSS is the loaders', not the data's.
    chunk = 50_000
    for i in range(0, keys, chunk):
        frame = synthetic_frame(OHLCV_DAILY, symbols[i : i + chunk], "2024-01-02 21:00", days, freq="D", seed=i)
        writer.append(OHLCV_DAILY, frame)
        first, last = min(first, frame[EVENT_TS].min()), max(last, frame[EVENT_TS].max())
    return (first - pd.Timedelta(days=1)).to_pydatetime(), (last + pd.Timedelta(seconds=1)).to_pydatetime()


def _loaded(client: Any, keys: int, variant: str) -> None:
    found = int(client.dbsize())
    if found != keys:
        raise RuntimeError(f"{variant} left {found} keys in Redis, expected {keys}")
    client.flushdb()


def _redis_cpu_s(client: Any) -> float:
    """CPU seconds redis-server has used so far (user + system)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def run(quick: bool) -> dict[str, Any]:
    """Keys/s of each loader on the same files, and ours against stock Feast."""
    import redis

    from ingestion.datasets import OHLCV_DAILY
    from ingestion.store.feast_repo import feast_cli
    from ingestion.store.online import OnlineWriter, materialize_latest

    keys = 2_000 if quick else 200_000
    days = 2 if quick else 5
    repeat = 1 if quick else 3
    rows: list[dict[str, Any]] = []
    with applied_repo() as repo:
        store, data_dir = repo.store, repo.settings.data_dir
        start, end = land_history(repo, keys, days)
        client = redis.Redis.from_url(repo.redis_url)
        client.flushdb()

        cold = materialize_latest(store, OHLCV_DAILY, data_dir, start=start, end=end)
        _loaded(client, keys, "ours, cold")
        rows.append({"variant": "ours, cold", "keys": keys, "seconds": cold.seconds,
                     "keys_per_s": cold.keys_per_second, "peak_rss_mb": peak_rss_mb()})  # fmt: skip

        writer = OnlineWriter(store)
        writer.layout(VIEW)
        warm, py_cpu, redis_cpu = [], [], []
        for _ in range(repeat):
            r0, p0 = _redis_cpu_s(client), time.process_time()
            warm.append(materialize_latest(store, OHLCV_DAILY, data_dir, start=start, end=end, writer=writer).seconds)
            redis_cpu.append(_redis_cpu_s(client) - r0)
            py_cpu.append(time.process_time() - p0)
            _loaded(client, keys, "ours")
        ours_s = statistics.median(warm)
        # CPU per key, this process and redis-server: what the run costs whatever else the shared machine runs.
        rows.append({"variant": "ours", "keys": keys, "seconds": ours_s, "keys_per_s": rate(keys, ours_s),
                     "python_cpu_us_per_key": statistics.median(py_cpu) / keys * 1e6,
                     "redis_cpu_us_per_key": statistics.median(redis_cpu) / keys * 1e6,
                     "peak_rss_mb": peak_rss_mb()})  # fmt: skip
        writer.close()

        # Order matters for the RSS figures: ours before Feast (this process's peak only grows), and the CLI child
        # before Feast in-process (a child's figure starts from this process's peak at spawn, see child_peak_rss_mb).
        t0 = time.perf_counter()
        done = feast_cli(repo.settings, repo.redis_url, "materialize", start.isoformat(), end.isoformat(),
                         "--views", VIEW)  # fmt: skip
        cli_s = time.perf_counter() - t0
        if done.returncode != 0:
            raise RuntimeError(f"feast materialize failed: {done.stderr[-1000:]}")
        _loaded(client, keys, "feast materialize (CLI)")
        rows.append({"variant": "feast materialize (CLI)", "keys": keys, "seconds": cli_s,
                     "keys_per_s": rate(keys, cli_s), "peak_rss_mb": child_peak_rss_mb()})  # fmt: skip
        t0 = time.perf_counter()
        store.materialize(start, end, feature_views=[VIEW])
        feast_s = time.perf_counter() - t0
        _loaded(client, keys, "feast materialize (in-process)")
        rows.append({"variant": "feast materialize (in-process)", "keys": keys, "seconds": feast_s,
                     "keys_per_s": rate(keys, feast_s), "peak_rss_mb": peak_rss_mb()})  # fmt: skip

        client.close()
    ours = rate(keys, ours_s)
    return {
        "rows": rows,
        "feature_rows": keys * days,
        "ratios": {
            "ours / feast materialize (CLI)": ours / rate(keys, cli_s),
            "ours / feast materialize (in-process)": ours / rate(keys, feast_s),
        },
        "goals": {"ours >= 40k keys/s": ours >= 40_000},
        "machine": machine(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(parser.parse_args().quick), indent=2, default=str))
