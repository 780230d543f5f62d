"""``python -m ingestion stream --flow``: the flow collector beside the WebSocket stream, on the in-process simulators
(keyless), under the same run, metrics and clean shutdown."""

from __future__ import annotations

import io
import shutil
from dataclasses import replace

import pytest
from fixtures.stream import STREAM_DAY

from ingestion.cli import build_parser
from ingestion.config import Settings
from ingestion.simulators.market import Market
from ingestion.stream.flow import COLLECTOR_STATE, WINDOWS_STATE
from ingestion.stream.runner import StreamOptions, run_stream


def test_flow_flags_are_parsed_and_checked() -> None:
    args = build_parser().parse_args(["stream", "--flow", "--flow-interval", "2.5"])
    assert (args.flow, args.flow_interval) == (True, 2.5)
    assert build_parser().parse_args(["stream"]).flow is False
    for bad in ("0", "-1", "soon"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["stream", "--flow", "--flow-interval", bad])


def test_stream_with_flow_runs_the_collector_and_stops_cleanly(
    applied_repo: Settings, stream_market: Market, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from ingestion.ops.metrics import pipeline_metrics

    data_dir = tmp_path_factory.mktemp("stream-flow")
    shutil.copy(applied_repo.registry_path, data_dir / applied_repo.registry_path.name)
    s = replace(applied_repo, polygon_api_key=None, uw_api_token=None, data_dir=data_dir)
    out = io.StringIO()
    opts = StreamOptions(
        symbols=["AAPL"], seconds=2.0, sim_day=STREAM_DAY, sim_rate=3_000, flush_ms=50, flow=True, flow_interval_s=0.2
    )
    assert run_stream(s, opts, out) == 0
    text = out.getvalue()
    assert "Collecting Unusual Whales flow alerts" in text and "Flow:" in text and "Ticks:" in text
    # The collector polled, saved its watermark and the windows' instant, and published its metrics.
    assert (s.state_dir / COLLECTOR_STATE).exists() and (s.state_dir / WINDOWS_STATE).exists()
    registry = pipeline_metrics().registry
    assert registry.get_sample_value("ingestion_flow_poll_lag_seconds") is not None
    assert registry.get_sample_value("ingestion_flow_quota_left", {"window": "day"}) is not None
