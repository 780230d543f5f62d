"""SimulatorStack and the ``simulate`` command (a real subprocess)."""

from __future__ import annotations

import signal

import orjson
import requests
from fixtures.simulators import SimulateProcess
from websockets.sync.client import connect

from ingestion.simulators.keys import POLYGON_SIM_KEY
from ingestion.simulators.stack import SimulatorStack

AUTH = {"Authorization": f"Bearer {POLYGON_SIM_KEY}"}


def test_stack_exposes_env_style_urls(sim_stack: SimulatorStack) -> None:
    env = sim_stack.env()
    assert env["POLYGON_BASE_URL"].startswith("http://127.0.0.1:")
    assert env["POLYGON_WS_URL"].startswith("ws://127.0.0.1:") and env["POLYGON_WS_URL"].endswith("/stocks")
    assert env["UW_BASE_URL"].startswith("http://127.0.0.1:")
    response = requests.get(f"{env['POLYGON_BASE_URL']}/v3/reference/tickers/AAPL", headers=AUTH, timeout=30)
    assert response.status_code == 200
    with connect(env["POLYGON_WS_URL"]) as ws:
        assert orjson.loads(ws.recv(timeout=10))[0]["status"] == "connected"


def test_simulate_command_prints_urls_serves_and_exits_cleanly_on_sigterm(simulate_process: SimulateProcess) -> None:
    urls = simulate_process.env
    response = requests.get(f"{urls['POLYGON_BASE_URL']}/v3/reference/tickers/MSFT", headers=AUTH, timeout=30)
    assert response.status_code == 200 and response.json()["results"]["ticker"] == "MSFT"
    assert urls["POLYGON_WS_URL"].startswith("ws://127.0.0.1:") and urls["POLYGON_WS_URL"].endswith("/stocks")
    simulate_process.process.send_signal(signal.SIGTERM)
    assert simulate_process.process.wait(timeout=30) == 0


def test_stack_without_uw_still_starts() -> None:
    with SimulatorStack(with_uw=False) as stack:
        assert set(stack.env()) == {"POLYGON_BASE_URL", "POLYGON_WS_URL"}
