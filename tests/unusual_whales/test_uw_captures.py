"""The vendor's own material parses: spec examples, unverified REST captures and WebSocket captures, read from
../shared/vendor at run time. No row that should parse is quarantined; the known-fabricated file is caught."""

from __future__ import annotations

import ast
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ingestion.errors import SchemaError
from ingestion.rejects import ParseResult
from ingestion.unusual_whales import parse as uw

Parser = Callable[..., ParseResult]

# (parser, file under unusual_whales/, endpoint it answers)
REST_FILES: list[tuple[Parser, str, str]] = [
    (uw.parse_flow_alerts, "spec-examples/rest/option-trades__flow-alerts.json", uw.FLOW_ALERTS),
    (uw.parse_flow_alerts, "rest-captures-unverified/option-trades__flow-alerts.json", uw.FLOW_ALERTS),
    (uw.parse_flow_alerts, "spec-examples/rest/stock__ticker__flow-alerts.json", "/api/stock/MSFT/flow-alerts"),
    (uw.parse_flow_recent, "spec-examples/rest/stock__ticker__flow-recent.json", "/api/stock/BABA/flow-recent"),
    (
        uw.parse_options_volume,
        "spec-examples/rest/stock__ticker__options-volume.json",
        "/api/stock/AAPL/options-volume",
    ),
    (uw.parse_net_prem_ticks, "spec-examples/rest/stock__ticker__net-prem-ticks.json", "/api/stock/SPY/net-prem-ticks"),
    (uw.parse_ohlc, "spec-examples/rest/stock__ticker__ohlc__candle_size.json", "/api/stock/TSLA/ohlc/1m"),
    (uw.parse_dark_pool, "spec-examples/rest/darkpool__recent.json", uw.DARK_POOL_RECENT),
    (uw.parse_dark_pool, "spec-examples/rest/darkpool__ticker.json", "/api/darkpool/QID"),
    (uw.parse_dark_pool, "rest-captures-unverified/darkpool__darkpool-recent.json", uw.DARK_POOL_RECENT),
    (uw.parse_dark_pool, "rest-captures-unverified/darkpool__darkpool-ticker.json", "/api/darkpool/AAPL"),
    (uw.parse_insider_transactions, "spec-examples/rest/insider__transactions.json", uw.INSIDER_TRANSACTIONS),
    (uw.parse_insider_transactions, "rest-captures-unverified/insider__transactions.json", uw.INSIDER_TRANSACTIONS),
    (uw.parse_etf_in_outflow, "spec-examples/rest/etfs__ticker__in-outflow.json", "/api/etfs/SPY/in-outflow"),
    (uw.parse_market_tide, "spec-examples/rest/market__market-tide.json", uw.MARKET_TIDE),
    (uw.parse_market_tide, "rest-captures-unverified/market__market-tide.json", uw.MARKET_TIDE),
]


def uw_dir(vendor: Path) -> Path:
    return vendor / "unusual_whales"


def parse_file(vendor: Path, parser: Parser, name: str, endpoint: str) -> ParseResult:
    return parser((uw_dir(vendor) / name).read_bytes(), endpoint=endpoint)


def parsed(vendor: Path, name: str) -> ParseResult:
    """A file of REST_FILES parsed with its parser and endpoint."""
    parser, endpoint = next((p, e) for p, f, e in REST_FILES if f == name)
    return parse_file(vendor, parser, name, endpoint)


def ws_payloads(path: Path) -> list[dict[str, Any]]:
    """Payloads of a .jsonl capture (lines are either the payload or {local_recv_time, channel, payload})."""
    out = []
    for line in path.read_text().splitlines():
        obj = json.loads(line)
        out.append(obj.get("payload", obj))
    return out


@pytest.mark.parametrize(("parser", "name", "endpoint"), REST_FILES, ids=[f for _, f, _ in REST_FILES])
def test_every_rest_example_parses_without_quarantine(vendor: Path, parser: Parser, name: str, endpoint: str) -> None:
    raw_rows = json.loads((uw_dir(vendor) / name).read_text())["data"]
    result = parse_file(vendor, parser, name, endpoint)
    assert result.rejected == []
    assert len(result.frame) == len(raw_rows) > 0
    # Columns that the files fill are never silently nulled.
    assert not result.frame.dropna(axis=1, how="all").empty


def test_spec_flow_alert_values(vendor: Path) -> None:
    result = parsed(vendor, "spec-examples/rest/option-trades__flow-alerts.json")
    row = result.frame.iloc[0]
    assert row["symbol"] == "MSFT"
    assert row["option_chain"] == "MSFT231222C00375000"
    assert row["type"] == "call"
    assert row["strike"] == 375.0
    assert row["expiry"] == dt.date(2023, 12, 22)
    assert row["created_at"] == pd.Timestamp("2023-12-12T16:35:52.168490Z")
    assert row["total_premium"] == 186705.0
    assert row["total_ask_side_prem"] == 151875.0
    assert row["price"] == 4.05
    assert row["underlying_price"] == 372.99
    assert row["volume_oi_ratio"] == pytest.approx(0.30860609124226)
    assert (row["volume"], row["open_interest"], row["total_size"], row["trade_count"]) == (2442, 7913, 461, 32)
    assert row["has_sweep"] and not row["has_floor"]
    assert row["issue_type"] == "Common Stock"
    # The spec example has no vendor id; a stable surrogate stands in for it.
    assert row["id"].startswith("uw-sha1:")


def test_unverified_flow_alert_values_and_drift(vendor: Path) -> None:
    result = parsed(vendor, "rest-captures-unverified/option-trades__flow-alerts.json")
    row = result.frame.iloc[0]
    assert row["id"] == "fda36fab-b0a8-4d12-9bd4-79b8880cc78f"
    assert row["created_at"] == pd.Timestamp("2025-10-22T20:27:01.354429Z")
    assert row["start_time"] == pd.Timestamp("2025-10-22T20:13:52.782Z")  # epoch ms 1761164032782
    assert row["end_time"] == pd.Timestamp("2025-10-22T20:13:52.828Z")
    assert row["iv_start"] == pytest.approx(0.161479236210277)
    assert (row["bid"], row["ask"], row["marketcap"]) == (2.79, 2.8, 385698577500.0)
    assert row["total_bid_side_prem"] == 0.0
    # Fields neither in the spec nor kept by the parser: tolerated, reported.
    # Company-context fields of the live feed are known (ignored, not stored), so they are not drift.
    assert result.drift == set()


def test_flow_recent_options_volume_net_prem_values(vendor: Path) -> None:
    recent = parsed(vendor, "spec-examples/rest/stock__ticker__flow-recent.json").frame
    assert recent["expiry"].tolist() == [dt.date(2024, 1, 26), dt.date(2024, 2, 2)]
    assert recent["date"].tolist() == [dt.date(2024, 1, 22)] * 2
    assert recent["call_premium"].tolist() == [5839180.0, 1869073.0]
    assert recent["put_volume_bid_side"].tolist() == [8113, 3004]

    volume = parsed(vendor, "spec-examples/rest/stock__ticker__options-volume.json").frame.iloc[0]
    assert volume["symbol"] == "AAPL" and volume["date"] == dt.date(2023, 9, 8)
    assert (volume["bullish_premium"], volume["bearish_premium"]) == (152015294.0, 138449839.0)
    assert (volume["call_volume"], volume["put_volume"]) == (1071546, 666386)
    assert volume["avg_30_day_call_volume"] == pytest.approx(658450.333333333333)

    ticks = parsed(vendor, "spec-examples/rest/stock__ticker__net-prem-ticks.json").frame
    assert ticks["tape_time"].tolist() == [pd.Timestamp("2025-03-21T19:58Z"), pd.Timestamp("2025-03-21T19:59Z")]
    assert ticks["net_put_premium"].tolist() == [-11106.0, -9106.0]
    assert ticks["net_put_volume"].tolist() == [-137, -127]
    assert ticks["net_delta"][0] == pytest.approx(26294.858179642318)


def test_ohlc_values(vendor: Path) -> None:
    frame = parsed(vendor, "spec-examples/rest/stock__ticker__ohlc__candle_size.json").frame
    assert frame["symbol"].tolist() == ["TSLA", "TSLA"]
    assert frame["start_time"][0] == pd.Timestamp("2023-09-07T20:10:00Z")
    assert frame["end_time"][1] == pd.Timestamp("2023-09-07T20:07:00Z")
    assert frame["close"].tolist() == [56.79, 56.79]
    assert frame["volume"].tolist() == [29812, 10699]
    assert frame["total_volume"].tolist() == [13774488, 13744676]
    assert frame["market_time"].tolist() == ["po", "po"]


def test_dark_pool_values(vendor: Path) -> None:
    spec = parsed(vendor, "spec-examples/rest/darkpool__recent.json").frame
    assert spec["symbol"].tolist() == ["QID", "QID"]
    assert spec["executed_at"].tolist() == [
        pd.Timestamp("2025-05-02T13:42:12Z"),
        pd.Timestamp("2023-02-16T00:59:44Z"),
    ]
    assert spec["trf_executed_at"][0] == pd.Timestamp("2025-05-02T13:42:11Z")
    assert pd.isna(spec["trf_executed_at"][1])
    assert spec["premium"].tolist() == [121538.56, 353214.0]
    assert spec["price"].tolist() == [18.9904, 18.99]
    assert spec["size"].tolist() == [6400, 18600]
    assert spec["canceled"].tolist() == [False, False]
    assert spec["tracking_id"].tolist() == [71984388012245, 71984384768588]
    assert pd.isna(spec["sale_cond_codes"][0])

    live = parsed(vendor, "rest-captures-unverified/darkpool__darkpool-ticker.json").frame.iloc[0]
    assert live["executed_at"] == pd.Timestamp("2025-10-22T21:23:24Z")
    assert (live["price"], live["size"], live["premium"]) == (258.45, 9399, 2429171.55)
    assert (live["nbbo_bid"], live["nbbo_ask"], live["volume"]) == (258.5, 258.6, 44915021)


def test_insider_values(vendor: Path) -> None:
    spec = parsed(vendor, "spec-examples/rest/insider__transactions.json").frame.iloc[0]
    assert spec["symbol"] == "META" and spec["owner_name"] == "ZUCKERBERG MARK"
    assert spec["amount"] == -35921 and spec["is_disposal"]
    assert spec["value"] == -35921 * 632.0
    assert spec["filing_date"] == dt.date(2024, 12, 12)
    assert spec["filed_at"] == pd.Timestamp("2024-12-13T05:00:00Z")  # end of the New York filing day (EST)
    assert spec["next_earnings_date"] == dt.date(2025, 2, 6)
    assert spec["marketcap"] == 1375122749418.0
    assert pd.isna(spec["stock_price"]) and pd.isna(spec["shares_owned_after"])

    live = parsed(vendor, "rest-captures-unverified/insider__transactions.json").frame.iloc[0]
    assert live["symbol"] == "UTHR" and live["price"] == 422.15 and live["stock_price"] == 421.64
    assert live["filed_at"] == pd.Timestamp("2025-10-23T04:00:00Z")  # EDT
    assert live["value"] == -4000 * 422.15
    assert not live["reporter_is_public_company"]


def test_etf_and_market_tide_values(vendor: Path) -> None:
    etf = parsed(vendor, "spec-examples/rest/etfs__ticker__in-outflow.json").frame
    assert etf["symbol"].tolist() == ["SPY", "SPY"]
    assert etf["date"].tolist() == [dt.date(2024, 10, 2), dt.date(2024, 10, 1)]
    assert etf["change"].tolist() == [-50, 100]
    assert etf["change_prem"].tolist() == [-12000.0, 23500.0]
    assert etf["close"].tolist() == [236.16, 235.12]
    assert etf["is_fomc"].tolist() == [False, False]

    tide = parsed(vendor, "spec-examples/rest/market__market-tide.json").frame
    # "2023-09-08 09:30:00-04:00" is 13:30 UTC.
    assert tide["timestamp"].tolist()[0] == pd.Timestamp("2023-09-08T13:30:00Z")
    assert tide["net_volume"].tolist() == [23558, 64312, 80029]
    assert tide["net_put_premium"][2] == -2731793.0

    live = parsed(vendor, "rest-captures-unverified/market__market-tide.json").frame
    assert live["timestamp"].tolist()[-1] == pd.Timestamp("2025-10-22T13:45:00Z")
    assert live["net_call_premium"][1] == -16868723.0


def test_suspect_fabricated_etf_file_is_quarantined_not_accepted(vendor: Path) -> None:
    name = "rest-captures-unverified/SUSPECT_fabricated__etfs__in-outflow.json"
    result = parse_file(vendor, uw.parse_etf_in_outflow, name, "/api/etfs/SPY/in-outflow")
    assert result.frame.empty
    (rejected,) = result.rejected
    assert rejected.reason == "missing required field(s): change, change_prem, close, volume"
    assert rejected.payload["net_flow"] == "246913.57"
    assert rejected.source == "unusual_whales /api/etfs/SPY/in-outflow"
    assert result.drift == {"inflow", "outflow", "net_flow"}


# ----------------------------------------------------------------------------------------------------- WebSocket


def test_ws_flow_alert_captures_parse_like_rest(vendor: Path) -> None:
    payloads = ws_payloads(uw_dir(vendor) / "ws-captures/demo_flowalerts_20250516_131951.jsonl")
    alerts = [p for p in payloads if "id" in p]
    acks = [p for p in payloads if "id" not in p]
    assert len(alerts) == 17 and acks == [{"response": {}, "status": "ok"}]
    # The join ack is not a row: it would be a SchemaError, so the socket reader filters it first.
    with pytest.raises(SchemaError):
        uw.parse_flow_alerts(acks[0], endpoint="flow-alerts")
    result = uw.parse_flow_alerts(alerts, endpoint="flow-alerts")
    assert result.rejected == [] and result.drift == set()
    first = result.frame.iloc[0]
    assert first["id"] == "8efad402-65ae-4ea9-9a24-bfc608d69adb"
    assert first["symbol"] == "JD" and first["alert_rule"] == "RepeatedHits"  # WebSocket says rule_name
    # type, strike and expiry come from the OCC symbol JD250523P00034000.
    assert (first["type"], first["strike"], first["expiry"]) == ("put", 34.0, dt.date(2025, 5, 23))
    # No created_at on the socket: executed_at (epoch ms 1747419586893) stands in.
    assert first["created_at"] == pd.Timestamp("2025-05-16T18:19:46.893Z")
    assert first["total_premium"] == 29326.0 and first["underlying_price"] == 33.74
    assert (first["ask_vol"], first["bid_vol"], first["mid_vol"]) == (233, 558, 24)
    assert (first["bid"], first["ask"]) == (0.84, 0.87)
    assert result.frame["id"].is_unique


def test_ws_txt_capture_gives_the_same_frame_as_its_jsonl(vendor: Path) -> None:
    folder = uw_dir(vendor) / "ws-captures"
    from_txt = []
    for line in (folder / "demo_flowalerts_20250516_131951.txt").read_text().splitlines():
        payload = ast.literal_eval(line.split("|", 2)[2])  # the capture wrote Python reprs, not JSON
        if "id" in payload:
            from_txt.append(payload)
    from_jsonl = [p for p in ws_payloads(folder / "demo_flowalerts_20250516_131951.jsonl") if "id" in p]
    pd.testing.assert_frame_equal(
        uw.parse_flow_alerts(from_txt, endpoint="flow-alerts").frame,
        uw.parse_flow_alerts(from_jsonl, endpoint="flow-alerts").frame,
    )


def test_kafka_stream_alerts_with_string_numbers_and_omitted_defaults(vendor: Path) -> None:
    payloads = ws_payloads(uw_dir(vendor) / "ws-captures/sample_flow_alerts_from_stream.jsonl")
    result = uw.parse_flow_alerts(payloads, endpoint="flow-alerts")
    assert result.rejected == [] and len(result.frame) == 6
    first = result.frame.iloc[0]
    assert first["id"] == "bb642f33-1739-469c-8714-d582f8c8b71a"
    assert first["volume"] == 368  # "368" on this stream
    assert first["ask_vol"] == 115  # "115"
    assert first["start_time"] == pd.Timestamp("2026-01-07T15:32:20.925Z")  # "1767799940925"
    assert first["created_at"] == pd.Timestamp("2026-01-07T15:32:20.941Z")  # executed_at "1767799940941"
    assert (first["type"], first["strike"], first["expiry"]) == ("call", 265.0, dt.date(2026, 1, 9))
    # The stream omits false/zero fields; they are unknown (null), not invented as False/0.
    second = result.frame.iloc[1]
    assert pd.isna(second["has_sweep"]) and pd.isna(second["alert_rule"])
    assert second["type"] == "put"


def test_spec_websocket_examples(vendor: Path) -> None:
    folder = uw_dir(vendor) / "spec-examples/websocket"
    (channel, payload), *_ = json.loads((folder / "socket__flow_alerts.json").read_text())["payload_examples"]
    assert channel == "flow-alerts"
    row = uw.parse_flow_alerts(payload, endpoint="flow-alerts").frame.iloc[0]
    assert (row["symbol"], row["type"], row["strike"]) == ("DIA", "call", 415.0)
    assert row["created_at"] == pd.Timestamp("2024-09-18T14:36:52.748Z")
    assert row["total_bid_side_prem"] == 0.0 and row["alert_rule"] == "RepeatedHitsDescendingFill"

    (_, tide), *_ = json.loads((folder / "socket__market_tide.json").read_text())["payload_examples"]
    tick = uw.parse_market_tide(tide, endpoint="market_tide").frame.iloc[0]
    assert tick["timestamp"] == pd.Timestamp("2026-04-27T14:27:54Z")
    assert tick["date"] == dt.date(2026, 4, 27)
    assert (tick["net_call_premium"], tick["otm_net_volume"]) == (488078.0, 1345)

    (_, dark), *_ = json.loads((folder / "socket__off_lit_trades.json").read_text())["payload_examples"]
    result = uw.parse_dark_pool([dark], endpoint="off_lit_trades")
    assert result.rejected == []
    print_ = result.frame.iloc[0]
    assert print_["symbol"] == "AAPL"  # this channel says "symbol", REST says "ticker"
    assert print_["premium"] == 150.25 * 100  # no premium on the socket: price x size
    assert print_["trf_executed_at"] == pd.Timestamp("2024-09-22T14:30:00.250Z")
