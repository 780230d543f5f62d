"""The flow backfill publishes rows written and quarantined, and the quarantine-spike alert, as the OHLCV one does.

Scraped from the real ``/metrics`` endpoint on a loopback port, around a flow backfill against the Unusual Whales
simulator whose dark-pool route answers one day with unparseable prices.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import requests
from fixtures.uw_client import MakeKit
from prometheus_client.parser import text_string_to_metric_families
from test_backfill_flow import START, _runtime

from ingestion import calendar
from ingestion.config import settings
from ingestion.jobs.flow import FLOW_DATASETS, backfill_flow
from ingestion.ops.alerts import QUARANTINE_SPIKE, Alert, add_hook, remove_hook
from ingestion.ops.metrics import serve_metrics
from ingestion.simulators.faults import Fault

END = dt.date(2024, 2, 29)  # one month unit, long closed
RAW_DARK_POOL = "uw_dark_pool"  # the dataset name a refused dark-pool print carries
RAW_FLOW_ALERTS = "uw_flow_alerts"  # and a refused flow alert


def _rows(port: int) -> dict[tuple[str, str], float]:
    """``(family, dataset) -> value`` of the row counters, as served on ``/metrics``."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {
        (sample.name, sample.labels["dataset"]): sample.value
        for family in text_string_to_metric_families(text)
        if family.name in ("ingestion_rows_written", "ingestion_rows_quarantined")
        for sample in family.samples
        if sample.name.endswith("_total")
    }


def test_flow_backfill_publishes_rows_written_and_quarantined(make_uw_client: MakeKit, tmp_path: Path) -> None:
    kit = make_uw_client()
    rt = _runtime(settings({"FEAST_DATA_DIR": str(tmp_path)}), kit.sim.url)
    kit.sim.faults.add(Fault.drift(lambda r: {**r, "price": "bad"}, routes={"darkpool-ticker"}, times=1))
    # Every flow alert refused too: a unit's batch also lands its raw alerts and their rolling windows (issue 21), so
    # only with those refused is the batch mostly quarantined.
    kit.sim.faults.add(Fault.drift(lambda r: {**r, "price": "bad"}, routes={"flow-alerts"}))
    bad = len(kit.sim.truth.darkpool_prints("AAPL", calendar.previous_session(START).date()))
    assert bad >= 10, "the fault must refuse enough prints to be a spike"
    alerts: list[Alert] = []
    add_hook(alerts.append)
    hooks = list(kit.client.http.on_response)
    server = serve_metrics(0)
    try:
        before = _rows(server.server_port)
        summary = backfill_flow(rt, ["AAPL"], START, END, workers=1, client=kit.client)
        after = _rows(server.server_port)
    finally:
        server.shutdown()
        remove_hook(alerts.append)

    def delta(family: str, dataset: str) -> float:
        key = (family, dataset)
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert summary.ok, summary.errors
    for ds in FLOW_DATASETS:
        assert delta("ingestion_rows_written_total", ds.name) == summary.rows_written[ds.name]
    written = sum(summary.rows_written.values())
    assert written > 0 and summary.rows_written["options_flow_daily"] > 0
    assert delta("ingestion_rows_quarantined_total", RAW_DARK_POOL) == summary.quarantined[RAW_DARK_POOL] == bad
    # Mostly quarantined (more refused than written, and at least ten): the spike alert fires, as for bars.
    refused_alerts = summary.quarantined[RAW_FLOW_ALERTS]
    assert refused_alerts > 0 and bad + refused_alerts >= written, summary.rows_written
    spikes = [a for a in alerts if a.kind == QUARANTINE_SPIKE]
    assert [(a.fields["dataset"], a.fields["quarantined"], a.fields["written"]) for a in spikes] == [
        (f"{RAW_DARK_POOL}, {RAW_FLOW_ALERTS}", bad + refused_alerts, written)
    ]
    # The run's response hook is gone from the caller's client.
    assert kit.client.http.on_response == hooks
