"""Training retrieval on Feast's Spark offline store in local mode against ours, on the same part files.

The data and entity frames are the ``retrieval`` benchmark's (:mod:`ingestion.bench.retrieval`: ohlcv_daily, 14
features, ttl 5 days, 1% unknown symbols, 1% rows past the ttl). ``spark`` is ``feature_store.spark.yaml``'s
offline store (:mod:`ingestion.store.spark_store`, ``local[*]``) on this machine; ``ours`` is the ASOF store. Each
variant runs in its own child process; the Spark child starts its session (the JVM) first and reports that time
apart, then times ``get_historical_features(...).to_df()``. Sizes (entity rows x feature rows):

* quick: 1k x 10k;
* full: 100k x 1M and 1M x 10M.

The checksum columns (non-null count and sum of ``close``) compare the two answers.
``python -m ingestion.bench.spark_retrieval [--quick] [--size '100k x 1M']`` prints the report as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from ingestion.bench import retrieval
from ingestion.bench.common import machine
from ingestion.config import settings

VARIANTS = ("ours", "spark")


# (label, entity rows, symbols, sessions, repeats)
def _sizes(quick: bool) -> list[tuple[str, int, int, int, int]]:
    if quick:
        return [("1k x 10k", 1_000, 50, 200, 1)]
    return [("100k x 1M", 100_000, 500, 2000, 2), ("1M x 10M", 1_000_000, 5000, 2000, 1)]


def _spark_yaml(workdir: Path) -> None:
    """``spark.yaml`` beside the retrieval benchmark's yamls: theirs with the repo's Spark offline store block."""
    from ingestion.store.spark_store import SPARK_YAML

    config = yaml.safe_load((workdir / "ours.yaml").read_text())
    spark = yaml.safe_load((settings().repo_path / SPARK_YAML).read_text())
    config["offline_store"] = spark["offline_store"]
    (workdir / "spark.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def _child(variant: str, workdir: Path, entity_file: Path, repeat: int) -> dict[str, Any]:
    """One variant in this (fresh) process; Spark's session start is timed on its own."""
    session_s = None
    if variant == "spark":
        from feast.repo_config import load_repo_config

        from ingestion.store.spark_store import spark_session

        t0 = time.perf_counter()
        spark_session(load_repo_config(settings().repo_path, workdir / "spark.yaml"))
        session_s = time.perf_counter() - t0
    result = retrieval._child(variant, workdir, entity_file, repeat)
    return result if session_s is None else {**result, "session_start_s": session_s}


def _run_child(variant: str, workdir: Path, entity_file: Path, repeat: int, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "ingestion.bench.spark_retrieval", "--child", variant, str(workdir), str(entity_file)]
    env = dict(os.environ, FEAST_DATA_DIR=str(workdir / "data"))
    try:
        proc = subprocess.run(
            [*cmd, "--repeat", str(repeat)], capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": f"exit {proc.returncode}: {(proc.stderr or proc.stdout)[-600:]}"}
    out: dict[str, Any] = json.loads(lines[-1])
    return out


def run(quick: bool, timeout: float = 3600.0, only: tuple[str, ...] = ()) -> dict[str, Any]:
    """Generate the data once per size (or the sizes labelled in ``only``), run both variants, and the Spark/ours
    ratio per size."""
    from ingestion.store.redis_server import RedisServer

    with tempfile.TemporaryDirectory(prefix="bench-spark-") as tmp:
        workdir = Path(tmp)
        bench = replace(settings(), data_dir=workdir / "data")
        with RedisServer() as redis:
            retrieval._store_yamls(workdir, bench, redis.url)
        _spark_yaml(workdir)
        rows: list[dict[str, Any]] = []
        for label, n_entity, n_symbols, n_sessions, repeat in _sizes(quick):
            if only and label not in only:
                continue
            root = bench.offline_dir / retrieval.DATASET.name
            if root.exists():
                import shutil

                shutil.rmtree(root)
            feature_rows = retrieval.write_features(root, n_symbols, n_sessions)
            entity_file = workdir / f"entity-{n_entity}.parquet"
            retrieval.write_entities(entity_file, n_entity, n_symbols, n_sessions)
            for variant in VARIANTS:
                result = _run_child(variant, workdir, entity_file, repeat, timeout)
                row = {"variant": variant, "size": label, **result, "feature_rows": feature_rows}
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    return {
        "benchmark": "spark_retrieval",
        "quick": quick,
        "ratios": _ratios(rows),
        "goals": _goals(rows),
        "machine": machine(),
        "rows": rows,
    }


def _pairs(rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    by = {(r["size"], r["variant"]): r for r in rows if "median_s" in r}
    return [(by[(s, "ours")], r) for (s, v), r in by.items() if v == "spark" and (s, "ours") in by]


def _ratios(rows: list[dict[str, Any]]) -> dict[str, float]:
    return {f"{spark['size']}: spark / ours": spark["median_s"] / ours["median_s"] for ours, spark in _pairs(rows)}


def _goals(rows: list[dict[str, Any]]) -> dict[str, bool]:
    """Both ran at every size and gave the same answer (the checksum of ``close``; rows kept)."""
    pairs = _pairs(rows)
    same = all(
        o["rows_out"] == s["rows_out"]
        and o["close_non_null"] == s["close_non_null"]
        and abs(o["close_sum"] - s["close_sum"]) <= 1e-9 * max(1.0, abs(o["close_sum"]))
        for o, s in pairs
    )
    return {"both ran at every size": len(pairs) == len(rows) // 2 and bool(pairs), "same answers": same}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ingestion.bench.spark_retrieval", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes")
    parser.add_argument("--size", action="append", default=[], help="only this size label, e.g. '100k x 1M'")
    parser.add_argument("--child", nargs=3, metavar=("VARIANT", "WORKDIR", "ENTITY"), help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = _child(args.child[0], Path(args.child[1]), Path(args.child[2]), args.repeat)
    else:
        result = run(args.quick, only=tuple(args.size))
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
