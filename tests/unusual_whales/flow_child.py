"""A flow collector process for the kill -9 test (run as a script, not collected by pytest).

``python flow_child.py URL SIM_START WALL_START SPEED START_AT``: a :class:`~ingestion.stream.flow.FlowFeed` polling
the simulator at ``URL`` on the simulator's clock (simulated epoch ``SIM_START`` at wall time ``WALL_START``, running
``SPEED`` times real time), from ``START_AT`` (ISO), with the settings of the environment (``FEAST_DATA_DIR``,
``FEAST_REPO_PATH``, ``REDIS_URL``). SIGTERM stops it cleanly; SIGKILL is what the test sends.
"""

from __future__ import annotations

import sys
import threading
import time

import pandas as pd

from ingestion.config import settings
from ingestion.shutdown import on_signals
from ingestion.simulators.keys import UW_SIM_TOKEN
from ingestion.store.feast_repo import open_store
from ingestion.stream.flow import FlowFeed, FlowOptions
from ingestion.unusual_whales.client import EnhancedUnusualWhalesClient


def main(argv: list[str]) -> int:
    url, sim_start, wall_start, speed, start_at = argv
    s0, w0, k = float(sim_start), float(wall_start), float(speed)

    def clock() -> float:
        return s0 + (time.time() - w0) * k

    s = settings()
    assert s.redis_url
    client = EnhancedUnusualWhalesClient(UW_SIM_TOKEN, url, use_cache=False, requests_per_minute=None, clock=clock)
    # A second of simulated slack: this process's copy of the clock may run a hair ahead of the server's.
    opts = FlowOptions(interval_s=0.05, start_at=pd.Timestamp(start_at), publication_lag_s=1.0)
    feed = FlowFeed(client, open_store(s, s.redis_url), s.data_dir, s.state_dir, opts)
    done = threading.Event()
    with on_signals(lambda _signum: done.set()):
        feed.start()
        print("started", flush=True)
        done.wait()
        feed.stop()
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
