import datetime as dt
import subprocess
import sys
from pathlib import Path

from ingestion.jobs.coverage import Coverage, merge, missing

D = dt.date


def test_merge_joins_touching_and_overlapping() -> None:
    assert merge(
        [(D(2024, 3, 1), D(2024, 3, 31)), (D(2024, 1, 1), D(2024, 2, 29)), (D(2024, 3, 10), D(2024, 4, 2))]
    ) == [(D(2024, 1, 1), D(2024, 4, 2))]


def test_missing_parts() -> None:
    covered = [(D(2024, 2, 1), D(2024, 2, 29)), (D(2024, 4, 1), D(2024, 4, 30))]
    assert missing((D(2024, 1, 15), D(2024, 5, 5)), covered) == [
        (D(2024, 1, 15), D(2024, 1, 31)),
        (D(2024, 3, 1), D(2024, 3, 31)),
        (D(2024, 5, 1), D(2024, 5, 5)),
    ]
    assert missing((D(2024, 2, 3), D(2024, 2, 20)), covered) == []
    assert missing((D(2024, 6, 1), D(2024, 6, 2)), []) == [(D(2024, 6, 1), D(2024, 6, 2))]


def test_persisted_across_instances(tmp_path: Path) -> None:
    Coverage(tmp_path).add("ohlcv_daily", "AAPL", (D(2024, 1, 1), D(2024, 1, 31)))
    Coverage(tmp_path).add("ohlcv_daily", "AAPL", (D(2024, 2, 1), D(2024, 2, 10)))
    assert Coverage(tmp_path).get("ohlcv_daily", "AAPL") == [(D(2024, 1, 1), D(2024, 2, 10))]
    assert Coverage(tmp_path).get("ohlcv_daily", "MSFT") == []


_WRITER = """
import datetime as dt, sys, time
from pathlib import Path
from ingestion.jobs.coverage import Coverage

state, me, n = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
coverage = Coverage(state)
(state / f"ready-{me}").touch()
while not all((state / f"ready-{k}").exists() for k in (0, 1)):  # start together, so the writes interleave
    time.sleep(0.001)
for i in range(n):
    day = dt.date(2000, 1, 1) + dt.timedelta(days=4 * i + 2 * me)  # a day apart from every other: nothing merges
    coverage.add("ohlcv_daily", "AAPL", (day, day))
    coverage.add("ohlcv_daily", f"S{me}{i}", (day, day))
"""


def test_two_processes_recording_at_once_lose_no_unit(tmp_path: Path) -> None:
    n = 300
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), str(me), str(n)], stderr=subprocess.PIPE)
        for me in (0, 1)
    ]
    for proc in writers:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
    coverage = Coverage(tmp_path)
    days = sorted(dt.date(2000, 1, 1) + dt.timedelta(days=4 * i + 2 * me) for i in range(n) for me in (0, 1))
    assert coverage.get("ohlcv_daily", "AAPL") == [(d, d) for d in days]
    for me in (0, 1):
        for i in range(n):
            day = dt.date(2000, 1, 1) + dt.timedelta(days=4 * i + 2 * me)
            assert coverage.get("ohlcv_daily", f"S{me}{i}") == [(day, day)]
