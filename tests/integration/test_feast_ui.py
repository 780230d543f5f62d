"""``feast ui`` on the applied repo: Feast's web UI (it needs Feast's ``grpcio`` extra) answers on loopback."""

from __future__ import annotations

import subprocess
import sys

import requests
from fixtures.serving import stop_server, wait_for_health

from ingestion.config import Settings
from ingestion.store.feast_repo import PROJECT, feast_env
from ingestion.store.redis_server import free_port


def test_feast_ui_answers_on_loopback(applied_repo: Settings) -> None:
    assert applied_repo.redis_url
    port = free_port()
    # feast_cli's command line, started in the background: `feast ui` runs until it is stopped.
    cmd = [sys.executable, "-m", "feast.cli.cli", "-c", str(applied_repo.repo_path)]
    cmd += ["ui", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=feast_env(applied_repo), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_health(proc, url, timeout=120)
        page = requests.get(f"{url}/", timeout=30)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        # The UI's registry API reads our registry: the repo's views are listed.
        views = requests.get(f"{url}/api/v1/feature_views", params={"project": PROJECT}, timeout=30)
        assert views.status_code == 200, views.text
        assert "ohlcv_daily" in views.text and "realtime_quotes" in views.text
    finally:
        stop_server(proc)
