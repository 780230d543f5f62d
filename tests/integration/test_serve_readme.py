"""``serve`` as the README shows it, end to end against a real server on loopback:

* the README's own ``python -m ingestion serve`` and ``curl`` commands, read from README.md at run time, answer 200;
* ``/metrics`` serves Feast's Prometheus metrics on the server's port, freshness included for a view that our own
  materialization (not Feast's) wrote, because it records the interval in the registry as ``feast materialize`` does.

One server for the module, on a repo applied for it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import requests
from fixtures.serving import stop_server, wait_for_health
from fixtures.store import dataset_frame

from ingestion.config import Settings, settings
from ingestion.datasets import EVENT_TS, OHLCV_DAILY
from ingestion.store.feast_repo import PROJECT, feast_cli, open_store
from ingestion.store.offline import OfflineWriter
from ingestion.store.online import materialize_latest
from ingestion.store.redis_server import free_port

README = Path(__file__).resolve().parents[2] / "README.md"
README_PORT = "6566"
SERVE_BULLET = "**HTTP feature server**"
FRESHNESS = f'feast_feature_freshness_seconds{{feature_view="ohlcv_daily",project="{PROJECT}"}}'


def readme_examples() -> tuple[list[str], list[list[str]]]:
    """The ``python -m ingestion serve`` command and the ``curl`` commands of the README's serve bullet, split as a
    shell splits them. Commands are taken from inline code spans and from fenced blocks inside the bullet."""
    text = README.read_text()
    start = text.index(SERVE_BULLET)
    ends = [i for i in (text.find("\n* ", start), text.find("\n#", start)) if i != -1]
    section = text[start : min(ends, default=len(text))]
    commands = [line for block in re.findall(r"```[^\n]*\n(.*?)```", section, re.S) for line in block.splitlines()]
    commands += re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", section, flags=re.S))
    # Only commands are split: other code spans of the bullet (paths, flags) need not be shell words.
    serve = [shlex.split(c) for c in commands if c.startswith("python -m ingestion serve")]
    curls = [shlex.split(c) for c in commands if c.startswith("curl ")]
    assert len(serve) == 1 and curls, f"README's serve bullet should show one serve command and a curl: {commands}"
    return serve[0], curls


def curl_as_request(argv: list[str]) -> tuple[str, str, dict[str, str], str | None]:
    """Method, URL, headers and body of a ``curl`` command line, with curl's own defaults (``-d`` means POST with a
    form content type unless a Content-Type header is given)."""
    method, url, headers, body = None, "", {}, None
    args = iter(argv[1:])
    for arg in args:
        if arg in ("-X", "--request"):
            method = next(args)
        elif arg in ("-H", "--header"):
            name, _, value = next(args).partition(":")
            headers[name.strip()] = value.strip()
        elif arg in ("-d", "--data", "--data-raw", "--data-binary"):
            body = next(args)
        elif arg.startswith("-"):
            raise AssertionError(f"curl option {arg} of the README is not translated")
        else:
            url = arg if "://" in arg else f"http://{arg}"
    if body is not None and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    return method or ("POST" if body is not None else "GET"), url, headers, body


def run_curl(argv: list[str], port: int, out: Path) -> tuple[int, bytes]:
    """Run a README ``curl`` against ``port``: with curl when installed, else the same request through requests."""
    argv = [a.replace(f":{README_PORT}", f":{port}") for a in argv]
    if shutil.which("curl"):
        done = subprocess.run(
            [*argv, "-sS", "-o", str(out), "-w", "%{http_code}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return int(done.stdout), out.read_bytes()
    method, url, headers, body = curl_as_request(argv)
    response = requests.request(method, url, headers=headers, data=body, timeout=60)
    return response.status_code, response.content


@dataclass
class Served:
    """The running server, its repo, the bars materialized before it started, and when it started."""

    settings: Settings
    bars: pd.DataFrame
    url: str
    port: int
    started: datetime


@pytest.fixture(scope="module")
def served(feast_repo: Path, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The README's serve command on a free port, over a repo applied for this module (materializing changes the
    registry, which no other test should see) after :func:`materialize_latest` wrote ``ohlcv_daily`` rows of AAPL."""
    s = replace(settings({}), repo_path=feast_repo, data_dir=tmp_path_factory.mktemp("serve-data"), redis_url=redis_url)
    applied = feast_cli(s, redis_url, "apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    # Recent bars (an online value older than the view's ttl is served as null), but older than the AAPL bar that
    # test_feast_repo writes to the same Redis (now - 1 day), so that test reads its own value whichever runs first.
    start = pd.Timestamp.now("UTC").floor("min") - pd.Timedelta(days=5)
    bars = dataset_frame(OHLCV_DAILY, ["AAPL"], start, 4, seed=19, null_share=0.0)
    OfflineWriter(s.data_dir).append(OHLCV_DAILY, bars)
    materialize_latest(s, OHLCV_DAILY)
    started = datetime.now(UTC)

    serve, _ = readme_examples()
    port = free_port()
    argv = [sys.executable if a == "python" else a.replace(README_PORT, str(port)) for a in serve]
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "FEAST_DATA_DIR": str(s.data_dir),
        "FEAST_REPO_PATH": str(s.repo_path),
    }
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_health(proc, url)
        yield Served(s, bars, url, port, started)
    finally:
        stop_server(proc)  # serve turns SIGTERM into stopping gunicorn, its workers and their group


def test_readme_curl_example_answers_200(served: Served, tmp_path: Path) -> None:
    _, curls = readme_examples()
    for argv in curls:
        status, body = run_curl(argv, served.port, tmp_path / "body")
        assert status == 200, f"{shlex.join(argv)} answered {status}: {body[:300]!r}"
        payload = json.loads(body)
        names = payload["metadata"]["feature_names"]
        values = {n: r["values"] for n, r in zip(names, payload["results"], strict=True)}
        assert values["symbol"] == ["AAPL"]
        # Another test of the session may have written a newer AAPL bar to the shared Redis: any served value will do.
        assert len(values["close"]) == 1 and isinstance(values["close"][0], float)


def test_readme_curl_sends_json_as_the_server_expects() -> None:
    # Without a server: the request each README curl sends (the same translation serves where curl is missing).
    _, curls = readme_examples()
    for argv in curls:
        method, url, headers, body = curl_as_request(argv)
        assert (method, url) == ("POST", f"http://localhost:{README_PORT}/get-online-features")
        assert body is not None and json.loads(body)["entities"] == {"symbol": ["AAPL"]}
        # FastAPI reads a JSON body only when it is declared as JSON; curl's -d alone declares a form (422).
        assert headers.get("Content-Type") == "application/json", shlex.join(argv)


def _metrics(url: str) -> requests.Response:
    response = requests.get(f"{url}/metrics", timeout=30)
    assert response.status_code == 200, response.text
    return response


def _sample(text: str, series: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_serves_feast_prometheus_text_with_freshness_of_our_writes(served: Served) -> None:
    read = {"features": ["ohlcv_daily:close"], "entities": {"symbol": ["AAPL"]}}
    assert requests.post(f"{served.url}/get-online-features", json=read, timeout=30).status_code == 200

    response = _metrics(served.url)
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE feast_feature_server_request_total counter" in response.text
    assert 'feast_feature_server_request_total{endpoint="/get-online-features",status="success"}' in response.text

    # Feast's worker computes freshness in a background thread right after it starts: poll until the first round.
    deadline = time.monotonic() + 60
    freshness = _sample(response.text, FRESHNESS)
    while freshness is None and time.monotonic() < deadline:
        time.sleep(0.5)
        freshness = _sample(_metrics(served.url).text, FRESHNESS)
    assert freshness is not None, "no feast_feature_freshness_seconds series for ohlcv_daily"
    # Computed after the server started, from the end of the interval our materialization recorded.
    newest = served.bars[EVENT_TS].max().to_pydatetime()
    assert freshness >= (served.started - newest).total_seconds()

    assert requests.post(f"{served.url}/metrics", timeout=30).status_code == 405


def test_materialize_records_the_interval_feast_reads(served: Served) -> None:
    assert served.settings.redis_url
    # A fresh store reads the registry as every later Feast process will.
    view = open_store(served.settings, served.settings.redis_url).get_feature_view("ohlcv_daily")
    assert view.materialization_intervals
    newest = served.bars[EVENT_TS].max().to_pydatetime()
    assert view.most_recent_end_time == newest
