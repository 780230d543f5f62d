"""Every benchmark (``python -m ingestion bench``, see :mod:`ingestion.commands.bench`), each in its own process,
gathered into one report.

Each benchmark runs in a child process so its peak RSS is its own and one crash cannot take the others down. The
report is JSON (everything measured) plus a Markdown table for the README. ``--quick`` runs tiny sizes in seconds,
which is what CI does so the harness cannot rot; the full run is for this machine, by hand.

Children start with Feast's typeguard instrumentation off (``feast_launch.skip_typeguard``), as the project runs
every Feast CLI process: that saves seconds of import per benchmark and gives the Feast baselines their best case.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ingestion.bench.common import machine

# Module under ingestion.bench -> what it measures. Modules not present are reported as missing, not skipped quietly.
BENCHMARKS: dict[str, str] = {
    "online_read": "online read: get_online_features vs raw HMGET pipeline",
    "feature_server": "HTTP feature server, 10 entities a request: ours vs stock feast serve",
    "online_write": "online write of stream rows: our writer vs Feast push vs raw HSET",
    "stream": "WebSocket receive + bridge vs raw websockets loop and the official client",
    "rest_parse": "REST parse to the standard frame vs the official client and bare orjson",
    "retrieval": "training retrieval: ours vs raw DuckDB ASOF vs stock Feast stores",
    "spark_retrieval": "training retrieval: Feast's Spark offline store (local mode) vs ours",
    "materialize": "materialize: ours vs stock feast materialize",
    "offline_append": "offline append cost per batch vs Feast offline push",
    "feast_apply": "feast apply of the repo: CI's invocation vs plain",
    "universe": "universe daily backfill: grouped daily vs per-ticker requests, N tickers x Y years",
}


def child_env() -> dict[str, str]:
    """Environment of a benchmark child: this one."""
    return dict(os.environ)


def run_one(name: str, quick: bool, timeout: float) -> dict[str, Any]:
    """Run ``ingestion.bench.<name>.run(quick)`` in a child process and return its result (or the failure)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        code = (
            "import json, sys, importlib\n"
            "from ingestion.store.feast_launch import skip_typeguard\n"
            "skip_typeguard()\n"
            f"m = importlib.import_module('ingestion.bench.{name}')\n"
            f"r = m.run(quick={quick!r})\n"
            f"open({str(out)!r}, 'w').write(json.dumps(r, default=str))\n"
        )
        t0 = time.monotonic()
        try:
            proc = subprocess.run(
                [sys.executable, "-c", code],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                env=child_env(),
            )
        except subprocess.TimeoutExpired:
            return {"status": "timeout", "seconds": timeout}
        elapsed = time.monotonic() - t0
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
            return {"status": "failed", "seconds": elapsed, "error": "\n".join(tail)}
        result: dict[str, Any] = json.loads(out.read_text())
        return {"status": "ok", "seconds": elapsed, "result": result}


def _cell(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def markdown(report: dict[str, Any]) -> str:
    """The README table: one section per benchmark, its rows, then its ratios and goals."""
    m = report["machine"]
    lines = [
        f"Run {report['date']} on commit {m.get('commit')}: Python {m['python']}, {m['cpus']} CPUs, "
        f"feast {m['versions'].get('feast')}, {'quick' if report['quick'] else 'full'} sizes, "
        f"typeguard off in children, total {report.get('seconds', 0.0):.0f} s.",
        "",
    ]
    for name, entry in report["benchmarks"].items():
        lines.append(f"### {name}: {BENCHMARKS.get(name, '')} ({entry.get('seconds', 0.0):.0f} s)")
        lines.append("")
        if entry["status"] != "ok":
            lines.append(f"**{entry['status']}**: {entry.get('error', '')}".strip())
            lines.append("")
            continue
        result = entry["result"]
        rows = result.get("rows")
        if isinstance(rows, list) and rows:
            columns = list(dict.fromkeys(k for row in rows for k in row))
            lines.append("| " + " | ".join(columns) + " |")
            lines.append("|" + "---|" * len(columns))
            for row in rows:
                lines.append("| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |")
            lines.append("")
        for key in ("ratios", "goals"):
            if isinstance(result.get(key), dict):
                pairs = ", ".join(f"{k}: {_cell(v)}" for k, v in result[key].items())
                lines.append(f"{key}: {pairs}")
        scalars = {
            k: v for k, v in result.items() if k not in ("rows", "ratios", "goals") and not isinstance(v, dict | list)
        }
        if scalars:
            lines.append(", ".join(f"{k}: {_cell(v)}" for k, v in scalars.items()))
        lines.append("")
    return "\n".join(lines)


def run_all(names: list[str], quick: bool, timeout: float, out: Path) -> int:
    """Run ``names``, write ``results.json`` and ``results.md`` under ``out``; 1 if any failed.

    A full run goes one benchmark at a time, so none competes with another for the cores it measures. A quick run
    checks only that the harness works, not speed, so it runs two children at a time and takes half as long.
    """
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        from ingestion.errors import ConfigError

        raise ConfigError(f"unknown benchmark {unknown[0]!r}: choose from {', '.join(BENCHMARKS)}")
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": machine(),
        "benchmarks": {},
    }
    started = time.monotonic()

    def one(name: str) -> dict[str, Any]:
        print(f"bench {name} ...", flush=True)
        entry = run_one(name, quick, timeout)
        print(f"bench {name}: {entry['status']} in {entry['seconds']:.1f} s", flush=True)
        return entry

    with ThreadPoolExecutor(max_workers=2 if quick else 1) as pool:
        entries = list(pool.map(one, names))
    report["benchmarks"] = dict(zip(names, entries, strict=True))
    failed = sum(entry["status"] != "ok" for entry in entries)
    report["seconds"] = time.monotonic() - started
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=2, default=str))
    (out / "results.md").write_text(markdown(report))
    print(f"wrote {out / 'results.json'} and {out / 'results.md'}")
    return 1 if failed else 0
