"""``python -m ingestion stream``: arguments, and a short keyless run on the in-process simulators."""

from __future__ import annotations

import io
import shutil
from dataclasses import replace

import pytest
from fixtures.stream import STREAM_DAY

from ingestion.cli import build_parser
from ingestion.config import Settings
from ingestion.errors import ConfigError
from ingestion.simulators.market import Market
from ingestion.store.offline import read_dataset
from ingestion.stream.runner import StreamOptions, parse_symbols, run_stream


def test_symbols_are_parsed_and_checked() -> None:
    assert parse_symbols(" aapl, MSFT ,") == ["AAPL", "MSFT"]
    assert parse_symbols("*") == ["*"]
    with pytest.raises(ConfigError):
        parse_symbols(" , ")
    with pytest.raises(ConfigError):
        parse_symbols("*,AAPL")


def test_stream_command_is_registered() -> None:
    args = build_parser().parse_args(["stream", "--symbols", "AAPL", "--seconds", "2", "--flush-ms", "50"])
    assert (args.command, args.symbols, args.seconds, args.flush_ms, args.online) == ("stream", "AAPL", 2.0, 50, "fast")


def test_keyless_run_streams_from_the_simulator(
    applied_repo: Settings,
    stream_market: Market,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Its own data dir (with a copy of the applied registry), so no other test sees these rows.
    data_dir = tmp_path_factory.mktemp("stream-cli")
    shutil.copy(applied_repo.registry_path, data_dir / applied_repo.registry_path.name)
    s = replace(applied_repo, polygon_api_key=None, data_dir=data_dir)
    out = io.StringIO()
    opts = StreamOptions(symbols=["AAPL", "MSFT"], seconds=3.0, sim_day=STREAM_DAY, sim_rate=3_000, flush_ms=50)
    assert run_stream(s, opts, out) == 0
    text = out.getvalue()
    assert "No POLYGON_API_KEY" in capsys.readouterr().err  # the runtime says it uses the simulators
    assert "Ticks:" in text and "Freshness" in text
    quotes = read_dataset(s.data_dir, "realtime_quotes", symbols=["AAPL", "MSFT"])
    assert set(quotes["symbol"]) == {"AAPL", "MSFT"}


def test_stream_publishes_queue_metrics(
    applied_repo: Settings, stream_market: Market, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from ingestion.ops.metrics import pipeline_metrics

    data_dir = tmp_path_factory.mktemp("stream-metrics")
    shutil.copy(applied_repo.registry_path, data_dir / applied_repo.registry_path.name)
    s = replace(applied_repo, polygon_api_key=None, data_dir=data_dir)
    opts = StreamOptions(symbols=["AAPL"], seconds=1.5, sim_day=STREAM_DAY, sim_rate=3_000, flush_ms=50, offline=False)
    assert run_stream(s, opts, io.StringIO()) == 0
    registry = pipeline_metrics().registry
    assert registry.get_sample_value("ingestion_stream_queue_depth") is not None
    assert (registry.get_sample_value("ingestion_stream_lag_seconds") or 0.0) > 0.0
