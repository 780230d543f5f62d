"""``feast serve`` end to end: a real HTTP feature server over the applied repo and the test Redis."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime

import requests
from fixtures.serving import etf_flow_row, wait_for_health

from ingestion.commands.serve import serve_command
from ingestion.config import Settings
from ingestion.store.feast_repo import feast_env, open_store
from ingestion.store.redis_server import free_port


def test_http_feature_server_serves_written_values(applied_repo: Settings) -> None:
    assert applied_repo.redis_url
    store = open_store(applied_repo, applied_repo.redis_url)
    now = datetime.now(UTC).replace(microsecond=0)
    store.write_to_online_store("etf_flow_daily", etf_flow_row(now))
    port = free_port()
    cmd = serve_command(applied_repo, "127.0.0.1", port)
    proc = subprocess.Popen(cmd, env=feast_env(applied_repo), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_health(proc, url, timeout=120)
        body = {
            "features": ["etf_flow_daily:etf_close", "etf_flow_daily:etf_volume", "etf_flow_daily:is_fomc"],
            "entities": {"symbol": ["SPY", "QQQ"]},
        }
        response = requests.post(f"{url}/get-online-features", json=body, timeout=30)
        assert response.status_code == 200, response.text
        payload = response.json()
        # The server does not keep the request's feature order: map values by metadata.feature_names.
        names = payload["metadata"]["feature_names"]
        columns = {name: result["values"] for name, result in zip(names, payload["results"], strict=True)}
        assert columns["symbol"] == ["SPY", "QQQ"]
        assert columns["etf_close"] == [601.25, None]
        assert columns["etf_volume"] == [70_000_000, None]
        assert columns["is_fomc"] == [True, None]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
