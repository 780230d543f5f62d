"""Health checks: the data dir, Redis, the Feast registry, vendor reachability and auth, and freshness per view.

Each check returns a :class:`Check` with a one-line reason, so ``python -m ingestion health`` can print what is
wrong and exit non-zero, and long-running commands can serve the same report on ``/health``. Freshness covers every
feature view, each judged by the rule of its kind on the NYSE calendar (:mod:`ingestion.ops.freshness_rules`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import orjson

from ingestion.config import Settings
from ingestion.errors import AuthError, IngestionError, NotEntitled

if TYPE_CHECKING:
    from ingestion.ops.freshness_rules import ViewRule


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class HealthReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def text(self) -> str:
        lines = [f"{'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}" for c in self.checks]
        lines.append("healthy" if self.ok else "UNHEALTHY: " + "; ".join(c.name for c in self.checks if not c.ok))
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [c.__dict__ for c in self.checks]}


def check_redis(redis_url: str | None) -> Check:
    if not redis_url:
        return Check("redis", False, "REDIS_URL is not set: health checks a running deployment's Redis")
    from ingestion.store.redis_conn import connect

    try:
        client = connect(redis_url, socket_connect_timeout=2, socket_timeout=2)
        client.ping()
    except Exception as exc:  # any failure to reach Redis is the finding itself
        return Check("redis", False, f"cannot reach Redis ({type(exc).__name__}): start it or fix REDIS_URL")
    return Check("redis", True, "reachable")


def check_data_dir(s: Settings) -> Check:
    """Can the commands write the data dir? Probed with a real write, changing nothing (no folder is created)."""
    from ingestion.store.writable import unwritable_problem

    problem = unwritable_problem(s.data_dir, create=False)
    return Check("data dir", problem is None, problem or f"{s.data_dir} writable")


def check_registry(s: Settings, redis_url: str) -> tuple[Check, Any]:
    """The repo's views in whatever registry its yaml names (file or SQL), read through Feast's registry API."""
    from ingestion.datasets import FEATURE_DATASETS
    from ingestion.store.registry_probe import probe_registry

    probe = probe_registry(s, redis_url, {d.name for d in FEATURE_DATASETS})
    return Check("registry", probe.ok, probe.detail), probe.store


def check_vendor(vendor: str, base_url: str, key: str | None, path: str, hint: str) -> Check:
    """One cheap authenticated request, no retries: is the vendor reachable and is the key accepted?"""
    if not key:
        return Check(vendor, True, f"skipped: no key ({hint} unset), the commands use the simulators")
    from ingestion.http import RetryPolicy
    from ingestion.vendor_http import HTTPOptions, build_vendor_http

    http = build_vendor_http(vendor, base_url, key, HTTPOptions(use_cache=False, retry=RetryPolicy(max_attempts=1)))
    try:
        http.get("health", path)
    except AuthError:
        return Check(vendor, False, f"the key was rejected (401): check {hint}")
    except NotEntitled:
        return Check(vendor, True, "reachable; key valid (this endpoint is outside the plan)")
    except IngestionError as exc:
        return Check(vendor, False, f"unreachable or failing: {exc}")
    finally:
        http.close()
    return Check(vendor, True, "reachable, key accepted")


def check_freshness(
    store: Any,
    symbols: Iterable[str],
    max_age: Mapping[str, float | ViewRule] | None = None,
    now: float | None = None,
) -> list[Check]:
    """One check per view: each view of ``max_age`` (an age limit in seconds, or a rule), or every feature view by
    its default rule (:mod:`ingestion.ops.freshness_rules`) when None."""
    from ingestion.ops.alerts import FRESHNESS_BREACHED, raise_alert
    from ingestion.ops.freshness import event_times, newest, record_ages
    from ingestion.ops.freshness_rules import judge_view

    rules = resolve_rules(max_age)
    at = time.time() if now is None else now
    times = event_times(store, list(rules), list(symbols))
    record_ages(newest(times), at)
    checks = []
    for view, rule in rules.items():
        finding = judge_view(rule, times[view], at)
        if not finding.ok:
            known = [t for t in times[view].values() if t is not None]
            age = at - min(known) if known else None
            raise_alert(FRESHNESS_BREACHED, f"{view}: {finding.text}", view=view, age_seconds=age)
        checks.append(Check(f"freshness {view}", finding.ok, finding.text))
    return checks


def resolve_rules(max_age: Mapping[str, float | ViewRule] | None) -> dict[str, ViewRule]:
    """``max_age`` as rules: a number is an explicit limit (:func:`~ingestion.ops.freshness_rules.rule_with_limit`);
    None is every view's default rule."""
    from ingestion.ops.freshness_rules import ViewRule, default_rules, rule_with_limit

    if max_age is None:
        return default_rules()
    return {v: r if isinstance(r, ViewRule) else rule_with_limit(v, float(r)) for v, r in max_age.items()}


def run_health(
    s: Settings,
    symbols: Iterable[str],
    max_age: Mapping[str, float | ViewRule] | None = None,
    *,
    vendors: bool = True,
    now: float | None = None,
    skew: bool = False,
) -> HealthReport:
    """Every check, in dependency order: a failed Redis or data dir check skips what needs them (the registry and
    the online values are read through both). ``max_age`` as for :func:`check_freshness` (None: every view's rule)."""
    report = HealthReport()
    if vendors:
        report.checks.append(
            check_vendor(
                "polygon", s.polygon_base_url, s.polygon_api_key, "/v3/reference/tickers/AAPL", "POLYGON_API_KEY"
            )
        )
        report.checks.append(
            check_vendor("unusual_whales", s.uw_base_url, s.uw_api_token, "/api/market/market-tide", "UW_API_TOKEN")
        )
    data_dir = check_data_dir(s)
    redis_check = check_redis(s.redis_url)
    report.checks.extend((data_dir, redis_check))
    if not redis_check.ok or not data_dir.ok or s.redis_url is None:
        return report
    registry, store = check_registry(s, s.redis_url)
    report.checks.append(registry)
    if store is not None and registry.ok:
        report.checks.extend(check_freshness(store, symbols, max_age, now))
        if skew:
            report.checks.append(check_skew(store, symbols))
    return report


def check_skew(store: Any, symbols: Iterable[str]) -> Check:
    """Online against point-in-time offline values of the services, now (:mod:`ingestion.ops.skew`)."""
    from ingestion.ops.skew import measure_skew

    result = measure_skew(store, list(symbols))
    bad = [f"{f.view}:{f.feature}" for f in result.features if f.different]
    total = sum(f.compared for f in result.features)
    if bad:
        listed = ", ".join(bad[:5])
        return Check("skew", False, f"{result.differences} of {total} values differ online vs offline: {listed}")
    return Check("skew", True, f"0 of {total} values differ online vs offline")


def serve_health(report: Callable[[], HealthReport], port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serve ``GET /health`` (200 healthy, 503 not, JSON body) in a daemon thread; results cached for 5 s."""
    cache: dict[str, Any] = {"at": 0.0, "report": None}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/health":
                self.send_error(404)
                return
            with lock:
                if cache["report"] is None or time.monotonic() - cache["at"] > 5.0:
                    cache["report"], cache["at"] = report(), time.monotonic()
                current: HealthReport = cache["report"]
            body = orjson.dumps(current.as_dict())
            self.send_response(200 if current.ok else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health-http", daemon=True).start()
    return server
