"""HTTP feature server: ours (``python -m ingestion serve``) against stock ``feast serve``, 10 entities a request.

The project's repo is applied into a temporary data dir on an embedded redis-server and one fresh row per symbol of
every view the services read is written (as in :mod:`ingestion.bench.online_read`). Two servers then run side by
side on loopback, one gunicorn worker each, on the same registry and Redis:

* ``ours serve``: the command ``python -m ingestion serve`` runs (:func:`~ingestion.commands.serve.serve_command`:
  Feast's server with our online store class, read-only gate and ``/metrics``), asked for the feature service
  (``{"feature_service": ...}``): the fast service read;
* ``stock feast serve``: Feast's own CLI on a copy of the repo's yaml naming Feast's ``RedisOnlineStore``
  (``type: redis``), typeguard off as for every Feast child here, asked for the service's feature references
  (stock Feast cannot read a ``precompute_online`` service without ``feast precompute``): Feast as shipped.

Before timing, both must answer the same values for the same request. Then a closed-loop client (threads, each with
one keep-alive connection, each sending its next request when the last is answered) runs at growing concurrency,
the two servers alternating at each step so load drift hits both alike. Per step: requests/s and latency p50/p99.
The figure of merit is the highest requests/s of a step whose p99 is at most 50 ms (issue 20's goal: ours against
stock). The client shares the machine's cores with the server it measures, so absolute rates are a floor; the ratio
is the comparison.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingestion.bench.common import applied_repo, machine, peak_rss_mb, summarize

if TYPE_CHECKING:
    from ingestion.config import Settings

SERVICE = "daily_model"
ENTITIES = 10
N_SYMBOLS = 100
P99_GOAL_MS = 50.0
OURS = "ours serve"
STOCK = "stock feast serve"
HOST = "127.0.0.1"
STOCK_REDIS_VARIABLE = "FEAST_BENCH_STOCK_REDIS"


def _symbols() -> list[str]:
    return [f"R{i:04d}" for i in range(N_SYMBOLS)]


def bodies(request: dict[str, Any]) -> list[bytes]:
    """Request bodies of ``ENTITIES`` symbols each, sliding over the written symbols (every request differs)."""
    symbols = _symbols()
    out = []
    for start in range(N_SYMBOLS):
        window = [symbols[(start + i) % N_SYMBOLS] for i in range(ENTITIES)]
        out.append(json.dumps({**request, "entities": {"symbol": window}}).encode())
    return out


def stock_repo(settings: Settings, folder: Path) -> Path:
    """A repo folder whose yaml is the project's with Feast's stock Redis store; the Redis target comes from
    ``$FEAST_BENCH_STOCK_REDIS`` when Feast loads it (so no password is written to disk)."""
    import yaml

    raw = yaml.safe_load((settings.repo_path / "feature_store.yaml").read_text())
    raw["online_store"] = {"type": "redis", "connection_string": "${" + STOCK_REDIS_VARIABLE + "}"}
    (folder / "feature_store.yaml").write_text(yaml.safe_dump(raw))
    return folder


def stock_command(repo: Path, port: int) -> list[str]:
    """Stock ``feast serve`` (Feast's click CLI), typeguard off, with our command's server options."""
    code = (
        "import sys\n"
        "from ingestion.store.feast_launch import skip_typeguard\n"
        "skip_typeguard()\n"
        "from feast.cli.cli import cli\n"
        "cli.main(args=sys.argv[1:], prog_name='feast', standalone_mode=True)\n"
    )
    return [
        sys.executable, "-c", code, "-c", str(repo), "serve", "--host", HOST, "--port", str(port),
        "--workers", "1", "--max-requests", "0", "--no-access-log",
    ]  # fmt: skip


@contextlib.contextmanager
def servers(commands: list[tuple[list[str], dict[str, str], int]], timeout: float = 180.0) -> Iterator[None]:
    """Start every ``(cmd, env, port)`` at once, each in its own process group; wait until each ``/health``
    answers; stop every group afterwards."""
    from ingestion.commands.serve import stop_group

    with contextlib.ExitStack() as stack:
        started = []
        for cmd, env, port in commands:
            log = stack.enter_context(tempfile.TemporaryFile())
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, start_new_session=True)
            stack.callback(stop_group, proc, 15.0)
            started.append((proc, log, port))
        deadline = time.monotonic() + timeout
        for proc, log, port in started:
            while not _healthy(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    tail = log.read().decode(errors="replace").strip().splitlines()[-15:]
                    raise RuntimeError(f"server on port {port} did not start:\n" + "\n".join(tail))
                time.sleep(0.25)
        yield


def _healthy(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection(HOST, port, timeout=2)
        conn.request("GET", "/health")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def connect(port: int) -> http.client.HTTPConnection:
    """A keep-alive connection with Nagle off: ``http.client`` sends a request's headers and body in two writes, and
    Nagle holding the body until the server's delayed ACK of the headers adds about 20 ms to every request."""
    import socket

    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    conn.connect()
    assert conn.sock is not None
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def post(conn: http.client.HTTPConnection, body: bytes) -> bytes:
    conn.request("POST", "/get-online-features", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {data[:300]!r}")
    return data


def by_name(payload: bytes) -> dict[str, list[Any]]:
    """A feature server response as feature name -> values (the server's column order aside)."""
    doc = json.loads(payload)
    names = doc["metadata"]["feature_names"]
    return {name: result["values"] for name, result in zip(names, doc["results"], strict=True)}


def closed_loop(port: int, payloads: list[bytes], concurrency: int, seconds: float) -> tuple[float, list[float]]:
    """``concurrency`` clients sending back to back for ``seconds``: (requests/s, latencies in seconds)."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[BaseException] = []
    start = threading.Barrier(concurrency + 1)
    stop_at = [float("inf")]  # until the window opens: a client may start before the caller sets the end

    def client(i: int) -> None:
        conn = connect(port)
        try:
            post(conn, payloads[i % len(payloads)])  # connect and warm outside the window
            start.wait()
            k, mine = i, latencies[i]
            while True:
                t0 = time.perf_counter()
                if t0 >= stop_at[0]:
                    break
                post(conn, payloads[k % len(payloads)])
                mine.append(time.perf_counter() - t0)
                k += concurrency
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)
            with contextlib.suppress(threading.BrokenBarrierError):
                start.abort()
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        start.wait()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"client failed: {errors[0]!r}") from errors[0]
    flat = [x for mine in latencies for x in mine]
    return len(flat) / elapsed, flat


def _free_port() -> int:
    from ingestion.store.redis_server import free_port

    return free_port()


def run(quick: bool) -> dict[str, Any]:
    """Requests/s and p50/p99 per server and concurrency; the best rate with p99 <= 50 ms of each, and ours / stock."""
    from ingestion.bench.online_read import write_rows
    from ingestion.commands.serve import serve_command
    from ingestion.store.feast_online import feast_redis_fields
    from ingestion.store.feast_repo import feast_env
    from ingestion.store.online import OnlineWriter

    steps = (1, 4) if quick else (1, 2, 4, 8, 16, 32)
    seconds = 0.5 if quick else 3.0
    rows: list[dict[str, Any]] = []
    with applied_repo() as repo, tempfile.TemporaryDirectory(prefix="bench-stock-") as folder:
        settings = repo.settings
        writer = OnlineWriter(repo.store, record_every_s=None)
        write_rows(repo.store, writer)
        writer.close()
        service = repo.store.get_feature_service(SERVICE)
        refs = [f"{p.name}:{f.name}" for p in service.feature_view_projections for f in p.features]
        env = feast_env(settings, repo.redis_url)
        stock_env = {**env, STOCK_REDIS_VARIABLE: feast_redis_fields(repo.redis_url)["connection_string"]}
        ports = {OURS: _free_port(), STOCK: _free_port()}
        payloads = {OURS: bodies({"feature_service": SERVICE}), STOCK: bodies({"features": refs})}
        ours_cmd = serve_command(settings, HOST, ports[OURS], workers=1)
        stock_cmd = stock_command(stock_repo(settings, Path(folder)), ports[STOCK])
        with servers([(ours_cmd, env, ports[OURS]), (stock_cmd, stock_env, ports[STOCK])]):
            _check(ports, payloads)
            for concurrency in steps:
                for variant in (OURS, STOCK):
                    rps, latencies = closed_loop(ports[variant], payloads[variant], concurrency, seconds)
                    stats = summarize(latencies)
                    rows.append(
                        {
                            "variant": variant,
                            "concurrency": concurrency,
                            "requests_per_s": rps,
                            "p50_ms": stats["median_ms"],
                            "p99_ms": stats["p99_ms"],
                            "requests": int(stats["n"]),
                            "peak_rss_mb": peak_rss_mb(),  # the client's
                        }
                    )
    best = {variant: _best(rows, variant) for variant in (OURS, STOCK)}
    return {
        "rows": rows,
        "best_requests_per_s_at_p99_50ms": best,
        "ratios": ratios(rows, best),
        "goals": {"ours serves more requests/s than stock at p99 <= 50 ms": best[OURS] > best[STOCK]},
        "entities_per_request": ENTITIES,
        "machine": machine(),
    }


def ratios(rows: list[dict[str, Any]], best: dict[str, float]) -> dict[str, float]:
    """Ours / stock: the best rates at p99 <= 50 ms (when stock met it at all), and the median over concurrency
    steps of the two rates at the same step (defined even on a machine too loaded for either to meet 50 ms)."""
    import statistics

    rate = {(r["variant"], r["concurrency"]): r["requests_per_s"] for r in rows}
    steps = sorted({c for v, c in rate if v == OURS and (STOCK, c) in rate})
    out = {"ours / stock, requests/s at the same concurrency (median)": statistics.median(
        rate[(OURS, c)] / rate[(STOCK, c)] for c in steps
    )}  # fmt: skip
    if best[STOCK] > 0:
        out["ours / stock, requests/s at p99 <= 50 ms"] = best[OURS] / best[STOCK]
    return out


def _best(rows: list[dict[str, Any]], variant: str) -> float:
    """The highest requests/s of ``variant``'s steps whose p99 met the goal (0 when none did)."""
    met = [r["requests_per_s"] for r in rows if r["variant"] == variant and r["p99_ms"] <= P99_GOAL_MS]
    return max(met, default=0.0)


def _check(ports: dict[str, int], payloads: dict[str, list[bytes]]) -> None:
    """Both servers answer the same values for the same entities, and not all null."""
    answers = {}
    for variant, port in ports.items():
        conn = connect(port)
        try:
            answers[variant] = by_name(post(conn, payloads[variant][0]))
        finally:
            conn.close()
    if answers[OURS] != answers[STOCK]:
        raise RuntimeError(f"ours and stock disagree: {answers[OURS]} != {answers[STOCK]}")
    if all(v is None for name, values in answers[OURS].items() if name != "symbol" for v in values):
        raise RuntimeError("every feature read back null")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    print(json.dumps(run(parser.parse_args().quick), indent=2, default=str))
