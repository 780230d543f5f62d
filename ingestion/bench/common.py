"""Shared measuring helpers for the benchmarks: timing percentiles, peak RSS, machine description."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feast import FeatureStore

    from ingestion.config import Settings


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child_peak_rss_mb() -> float:
    """Largest peak RSS of any child process waited for so far, in MiB (for baselines run as a CLI process).

    Linux carries the forking process's high-water mark across ``exec`` into the child's figure, so this is at least
    the parent's peak when the child started: run CLI children before the parent itself grows large.
    """
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0


def rate(count: int, seconds: float) -> float:
    """``count`` per second (infinite for a zero duration, which only a clock too coarse for the work gives)."""
    return count / seconds if seconds > 0 else float("inf")


@dataclass(frozen=True)
class AppliedRepo:
    """The project's Feast repo applied into a temporary data dir, on an embedded Redis."""

    settings: Settings
    redis_url: str
    store: FeatureStore


@contextlib.contextmanager
def applied_repo() -> Iterator[AppliedRepo]:
    """A real redis-server, a fresh data dir and ``feast apply`` of the repo there (the real CLI), for one benchmark.

    Heavy imports stay inside: the harness imports this module only to build its parser.
    """
    from ingestion.config import settings
    from ingestion.store.feast_repo import feast_cli, open_store
    from ingestion.store.redis_server import RedisServer

    with RedisServer() as server, tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        s = replace(settings({}), data_dir=Path(tmp) / "data", redis_url=server.url)
        applied = feast_cli(s, server.url, "apply")
        if applied.returncode != 0:
            raise RuntimeError(f"feast apply failed: {applied.stderr[-1000:]}")
        yield AppliedRepo(s, server.url, open_store(s, server.url))


def timings(fn: Callable[[], object], repeat: int, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of ``repeat`` calls of ``fn`` after ``warmup`` unmeasured calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def summarize(samples: list[float]) -> dict[str, float]:
    """Median and p99 in milliseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"median_ms": statistics.median(ordered) * 1000.0, "p99_ms": p99 * 1000.0, "n": float(len(ordered))}


def machine() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for pkg in ("feast", "pandas", "pyarrow", "duckdb", "redis", "websockets", "orjson", "massive"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "versions": versions,
        "commit": _git_commit(),
    }


def _git_commit() -> str | None:
    """Short HEAD commit, with ``-dirty`` when the code measured (ingestion/, feature_repo/) differs from it."""
    from ingestion.config import PROJECT_ROOT

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--", "ingestion", "feature_repo")
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{commit}-dirty" if commit and changed else commit or None
