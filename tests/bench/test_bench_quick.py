"""The benchmark harness end to end at ``--quick`` sizes: what CI runs so the harness cannot rot.

Speed is not asserted here (benchmarks measure it; a test must not flake on a busy machine). What is checked is the
shape every benchmark owes the harness and the README: a run per benchmark, rows with a ``variant``, ratios, goals.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ingestion.bench.runner import BENCHMARKS


def test_quick_harness_runs_every_benchmark_and_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    proc = subprocess.run(
        [sys.executable, "-m", "ingestion", "bench", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    report = json.loads((out / "results.json").read_text())
    assert report["quick"] is True
    assert list(report["benchmarks"]) == list(BENCHMARKS)
    for name, entry in report["benchmarks"].items():
        assert entry["status"] == "ok", f"{name}: {entry}"
        result = entry["result"]
        rows = result["rows"]
        assert rows, f"{name} returned no rows"
        assert all("variant" in row for row in rows), f"{name}: a row lacks its variant"
        assert isinstance(result["ratios"], dict) and result["ratios"], f"{name}: no ratios"
        assert result["goals"] and all(isinstance(v, bool) for v in result["goals"].values()), f"{name}: goals"

    markdown = (out / "results.md").read_text()
    for name in BENCHMARKS:
        assert f"### {name}: " in markdown
    # Every row of every benchmark made it into its section's table: one header line per section, then its rows.
    table_lines = [line for line in markdown.splitlines() if line.startswith("| ")]
    rows = sum(len(e["result"]["rows"]) for e in report["benchmarks"].values())
    assert len(table_lines) == len(BENCHMARKS) + rows
