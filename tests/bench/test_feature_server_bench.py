"""The feature-server benchmark's bookkeeping: the best rate within the p99 goal, the ratios, the stock repo's yaml.

The benchmark itself runs end to end at quick sizes in ``test_bench_quick`` (both servers, a check that they answer
the same values, a closed-loop client); speed is never asserted.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from ingestion.bench.feature_server import OURS, STOCK, STOCK_REDIS_VARIABLE, _best, bodies, by_name, ratios, stock_repo
from ingestion.config import settings


def _row(variant: str, concurrency: int, rps: float, p99: float) -> dict[str, object]:
    return {"variant": variant, "concurrency": concurrency, "requests_per_s": rps, "p99_ms": p99}


def test_the_best_rate_counts_only_steps_within_the_p99_goal() -> None:
    rows = [
        _row(OURS, 1, 100.0, 10.0), _row(STOCK, 1, 50.0, 20.0),
        _row(OURS, 4, 300.0, 49.0), _row(STOCK, 4, 120.0, 51.0),
        _row(OURS, 8, 400.0, 90.0), _row(STOCK, 8, 100.0, 200.0),
    ]  # fmt: skip
    best = {OURS: _best(rows, OURS), STOCK: _best(rows, STOCK)}
    assert best == {OURS: 300.0, STOCK: 50.0}
    got = ratios(rows, best)
    assert got["ours / stock, requests/s at p99 <= 50 ms"] == 6.0
    assert got["ours / stock, requests/s at the same concurrency (median)"] == 2.5


def test_no_step_within_the_goal_leaves_only_the_per_step_ratio() -> None:
    rows = [_row(OURS, 1, 30.0, 60.0), _row(STOCK, 1, 20.0, 70.0)]
    best = {OURS: _best(rows, OURS), STOCK: _best(rows, STOCK)}
    assert best == {OURS: 0.0, STOCK: 0.0}
    assert ratios(rows, best) == {"ours / stock, requests/s at the same concurrency (median)": 1.5}


def test_requests_carry_ten_entities_and_responses_read_by_name() -> None:
    first = json.loads(bodies({"feature_service": "daily_model"})[0])
    assert first["feature_service"] == "daily_model" and len(first["entities"]["symbol"]) == 10
    payload = {"metadata": {"feature_names": ["symbol", "close"]}, "results": [{"values": ["A"]}, {"values": [1.5]}]}
    assert by_name(json.dumps(payload).encode()) == {"symbol": ["A"], "close": [1.5]}


def test_the_stock_repo_names_feasts_redis_store_and_no_redis_target(tmp_path: Path) -> None:
    folder = stock_repo(settings({}), tmp_path)
    raw = yaml.safe_load((folder / "feature_store.yaml").read_text())
    assert raw["online_store"] == {"type": "redis", "connection_string": "${" + STOCK_REDIS_VARIABLE + "}"}
