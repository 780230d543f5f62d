"""The package's names resolve lazily (so logging setup does not import pandas), and every one of them resolves."""

from __future__ import annotations

import subprocess
import sys

import ingestion.http as http


def test_every_exported_name_resolves_to_its_module() -> None:
    assert set(http._EXPORTS) == set(http.__all__)
    for name, module in http._EXPORTS.items():
        value = getattr(http, name)
        assert getattr(sys.modules[f"ingestion.http.{module}"], name) is value


def test_redaction_alone_does_not_import_pandas_or_redis() -> None:
    code = "import sys; from ingestion.http import redaction; print('pandas' in sys.modules, 'redis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
