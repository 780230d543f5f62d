"""Bad command-line arguments and bad configuration: a non-zero exit and ONE error line on stderr that says how to fix
it, never a traceback. Each case is a real ``python -m ingestion`` subprocess; they run side by side."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from ingestion.config import Settings
from ingestion.simulators.keys import UW_SIM_TOKEN

RANGE = ["--from", "2024-01-02", "--to", "2024-01-31"]


@dataclass(frozen=True)
class Case:
    name: str
    args: list[str]
    env: dict[str, str]
    hint: str
    """Text the error line must contain: the fix."""


def _env(s: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("POLYGON_API_KEY", "MASSIVE_API_KEY", "UW_API_TOKEN")}
    env.update({"FEAST_DATA_DIR": str(s.data_dir), "FEAST_REPO_PATH": str(s.repo_path), "REDIS_URL": s.redis_url or ""})
    env.update(extra)
    return env


def _cases(s: Settings, polygon_url: str) -> list[Case]:
    rejected_key = {"POLYGON_API_KEY": "not-a-valid-key", "POLYGON_BASE_URL": polygon_url, "UW_API_TOKEN": UW_SIM_TOKEN}
    return [
        Case("malformed symbol", ["backfill", "ohlcv", "--symbols", "A$B", *RANGE], _env(s), "use tickers like AAPL"),
        Case("unknown symbol", ["backfill", "ohlcv", "--symbols", "ZZZZ", *RANGE, "--no-online"], _env(s),
             "use some of AAPL"),
        Case("inverted range", ["backfill", "ohlcv", "--symbols", "AAPL", "--from", "2024-03-01", "--to", "2024-01-31"],
             _env(s), "swap them"),
        Case("missing argument", ["backfill", "ohlcv", "--from", "2024-01-02"], _env(s), "--help"),
        Case("bad flush interval", ["stream", "--flush-ms", "0"], _env(s), "positive number of milliseconds"),
        Case("rejected key", ["backfill", "ohlcv", "--symbols", "AAPL", *RANGE, "--no-online"],
             _env(s, **rejected_key), "check POLYGON_API_KEY"),
        Case("unreachable Redis", ["backfill", "ohlcv", "--symbols", "AAPL", *RANGE], _env(s, REDIS_URL="redis://127.0.0.1:1/0"),
             "unset REDIS_URL"),
    ]  # fmt: skip


def test_bad_input_gets_one_line_that_says_how_to_fix_it(
    make_applied_repo: Callable[[], Settings], polygon_rest: object
) -> None:
    s = make_applied_repo()
    cases = _cases(s, polygon_rest.url)  # type: ignore[attr-defined]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "ingestion", *case.args],
            env=case.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for case in cases
    ]
    failures = []
    for case, proc in zip(cases, procs, strict=True):
        out, err = proc.communicate(timeout=240)
        # Lines about the run itself ("using the built-in simulators") are allowed; the failure is said once.
        errors = [line for line in err.splitlines() if case.hint in line]
        if proc.returncode == 0 or "Traceback" in err or len(errors) != 1:
            failures.append(f"{case.name}: exit {proc.returncode}, stderr:\n{err}\nstdout tail:\n{out[-500:]}")
    assert not failures, "\n\n".join(failures)


def test_malformed_redis_url_is_one_line_without_the_url() -> None:
    from ingestion.errors import ConfigError
    from ingestion.runtime import check_redis

    with pytest.raises(ConfigError) as info:
        check_redis("rediss://user:s3cret@")
    assert "\n" not in str(info.value) and "REDIS_URL" in str(info.value) and "s3cret" not in str(info.value)
