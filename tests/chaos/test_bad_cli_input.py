"""Bad command-line arguments and bad configuration: a non-zero exit and ONE error line on stderr that says how to fix
it, never a traceback. Each case is a real ``python -m ingestion`` subprocess; they run side by side.

Numbers and ports are checked where they are parsed (argparse types in ``ingestion.jobs.args``), a port in use where
it is bound, ``REDIS_URL`` before any command runs, dates against the bounds every vendor row is held to."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
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


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port another process (this one) is listening on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def _cases(s: Settings, polygon_url: str, busy: int) -> list[Case]:
    rejected_key = {"POLYGON_API_KEY": "not-a-valid-key", "POLYGON_BASE_URL": polygon_url, "UW_API_TOKEN": UW_SIM_TOKEN}
    aapl = ["backfill", "ohlcv", "--symbols", "AAPL"]
    in_use = "cannot listen there (Address already in use)"
    not_a_port = "is not a port: use 1..65535"
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
        Case("date before 1970", [*aapl, "--from", "0001-01-01", "--to", "2024-01-31"], _env(s),
             "use a date in 1970-01-01..2099-12-31"),
        Case("negative request budget", [*aapl, *RANGE, "--requests-per-minute", "-5"], _env(s),
             "'-5' is not a positive number of requests"),
        Case("zero request budget", [*aapl, *RANGE, "--requests-per-minute", "0"], _env(s),
             "leave the option out for no client-side limit"),
        Case("metrics port out of range", ["stream", "--metrics-port", "70000"], _env(s), not_a_port),
        Case("health port out of range", ["stream", "--health-port", "-1"], _env(s), not_a_port),
        Case("serve port out of range", ["serve", "--port", "99999"], _env(s), not_a_port),
        Case("metrics port in use", ["stream", "--metrics-port", str(busy)], _env(s),
             f"--metrics-port {busy}: {in_use}"),
        Case("health port in use", ["stream", "--health-port", str(busy)], _env(s), f"--health-port {busy}: {in_use}"),
        Case("serve port in use", ["serve", "--port", str(busy)], _env(s), f"--port {busy}: {in_use}"),
        Case("simulator port in use", ["simulate", "--uw-port", str(busy)], _env(s), f"--uw-port {busy}: {in_use}"),
        Case("REDIS_URL scheme (backfill)", [*aapl, *RANGE], _env(s, REDIS_URL="http://x"), "REDIS_URL must look like"),
        Case("REDIS_URL scheme (serve)", ["serve"], _env(s, REDIS_URL="http://x"), "REDIS_URL must look like"),
    ]  # fmt: skip


def test_bad_input_gets_one_line_that_says_how_to_fix_it(
    make_applied_repo: Callable[[], Settings], polygon_rest: object, busy_port: int
) -> None:
    s = make_applied_repo()
    cases = _cases(s, polygon_rest.url, busy_port)  # type: ignore[attr-defined]
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
