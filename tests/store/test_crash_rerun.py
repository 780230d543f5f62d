"""kill -9 at random points, then rerun: the offline data ends identical to an uninterrupted run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ingestion.datasets import OHLCV_MINUTE
from ingestion.store.offline import count_duplicates, frames_equal_ignoring_write_time, read_dataset

# The writer child: a backfill-like loop over batches of minute bars (overlapping on purpose, as a paginated
# backfill re-fetching a page would), printing after each batch so the parent can kill it at chosen points.
_CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import pandas as pd
    from ingestion.bench.offline_append import synthetic_frame as dataset_frame
    from ingestion.datasets import OHLCV_MINUTE
    from ingestion.store.offline import OfflineWriter

    frame = dataset_frame(OHLCV_MINUTE, ["AAPL", "MSFT", "SPY"], "2024-01-31 20:00", 400, freq="min", seed=11)
    frame["created_timestamp"] = pd.Timestamp.now(tz="UTC")
    writer = OfflineWriter(Path(sys.argv[1]))
    for start in range(0, 400, 25):
        batch = frame[frame["event_timestamp"].isin(frame["event_timestamp"].unique()[max(0, start - 5) : start + 25])]
        writer.append(OHLCV_MINUTE, batch)
        print(start, flush=True)
    print("done", flush=True)
    """
)


def _run_child(data_dir: Path, kill_after_lines: int | None, delay_s: float) -> bool:
    """Run the writer; with ``kill_after_lines``, SIGKILL it after that many batches plus ``delay_s``.

    Returns True when the child finished on its own.
    """
    code = _CHILD
    child = subprocess.Popen([sys.executable, "-c", code, str(data_dir)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    for lines, line in enumerate(child.stdout, start=1):
        if line.strip() == "done":
            break
        if kill_after_lines is not None and lines >= kill_after_lines:
            # A random pause lands the kill anywhere in the next batch: mid-write, before the rename, before
            # the watermark, or between batches. This is where the point is chosen, not a timing assertion.
            if delay_s:
                time.sleep(delay_s)
            os.kill(child.pid, signal.SIGKILL)
            break
    code_ = child.wait()
    child.stdout.close()
    return code_ == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_killed_writer_rerun_matches_uninterrupted_run(tmp_path: Path, seed: int) -> None:
    reference = tmp_path / "reference"
    assert _run_child(reference, None, 0.0)
    expected = read_dataset(reference, OHLCV_MINUTE)
    assert len(expected) == 1200

    rng = random.Random(seed)
    crashed = tmp_path / "crashed"
    kills = 0
    for _ in range(3):
        finished = _run_child(crashed, rng.randint(1, 15), rng.uniform(0.0, 0.03))
        kills += not finished
    assert kills > 0
    assert _run_child(crashed, None, 0.0)
    got = read_dataset(crashed, OHLCV_MINUTE)
    assert count_duplicates(got, OHLCV_MINUTE) == 0
    assert frames_equal_ignoring_write_time(got, expected, OHLCV_MINUTE)
    # And running the whole thing once more adds nothing.
    assert _run_child(crashed, None, 0.0)
    assert len(read_dataset(crashed, OHLCV_MINUTE)) == 1200
