"""``feast apply`` of the repo: the project's invocation (optimised bytecode, PYTHONOPTIMIZE) vs plain ``feast apply``.

Both apply the same repo into fresh data dirs against the same embedded Redis; each sample is a whole CLI process,
which is what CI and a user pay.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ingestion.bench.common import child_peak_rss_mb
from ingestion.config import settings
from ingestion.store.feast_repo import feast_env, render_store_yaml
from ingestion.store.redis_server import RedisServer


def _apply_seconds(repo: Path, data_dir: Path, redis_url: str, optimize: bool) -> float:
    s = replace(settings({}), repo_path=repo, data_dir=data_dir)
    store_yaml = render_store_yaml(s, redis_url)
    env = feast_env(s)
    if not optimize:
        env.pop("PYTHONOPTIMIZE", None)
    cmd = [sys.executable, "-m", "feast.cli.cli", "-c", str(repo), "-f", str(store_yaml), "apply"]
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, capture_output=True, check=True, timeout=300)
    return time.perf_counter() - t0


def run(quick: bool) -> dict[str, Any]:
    repeat = 1 if quick else 3
    repo = settings().repo_path
    rows = []
    medians: dict[str, float] = {}
    with RedisServer() as server, tempfile.TemporaryDirectory() as tmp:
        for label, optimize in (("ingestion apply (PYTHONOPTIMIZE)", True), ("plain feast apply", False)):
            samples = [_apply_seconds(repo, Path(tmp) / f"{optimize}-{i}", server.url, optimize) for i in range(repeat)]
            medians[label] = statistics.median(samples)
            # Ours runs first, so its figure is its own; plain's is the larger of the two (children's peak so far).
            rows.append(
                {
                    "variant": label,
                    "median_s": medians[label],
                    "max_s": max(samples),
                    "runs": repeat,
                    "peak_rss_mb": child_peak_rss_mb(),
                }
            )
    ours, plain = medians["ingestion apply (PYTHONOPTIMIZE)"], medians["plain feast apply"]
    return {
        "rows": rows,
        "ratios": {"plain / ours": plain / ours},
        "goals": {"ours <= 3 s": ours <= 3.0},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(parser.parse_args().quick), indent=2))
