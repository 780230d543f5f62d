"""The fresh-virtualenv half of the ``feast_apply`` benchmark, which ``--quick`` skips: a venv made as CI makes one
(``pip install --no-deps -e <repo>`` over this interpreter's packages) runs our Feast launcher and our command."""

from __future__ import annotations

import os
import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest

from ingestion.bench.feast_apply import fresh_venv
from ingestion.config import PROJECT_ROOT


@pytest.mark.slow
def test_a_fresh_venv_runs_our_feast_launcher(tmp_path: Path) -> None:
    python = fresh_venv(tmp_path, PROJECT_ROOT)
    assert python.parent.parent == tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONOPTIMIZE"}
    # The project comes from the venv's own editable install, Feast from the shared site-packages.
    where = subprocess.run(
        [str(python), "-c", "import sys, ingestion; print(sys.prefix); print(ingestion.__file__)"],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    ).stdout.split()  # fmt: skip
    assert where == [str(tmp_path / "venv"), str(PROJECT_ROOT / "ingestion" / "__init__.py")]
    done = subprocess.run(
        [str(python), "-m", "ingestion.store.feast_launch", "version"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert version("feast") in done.stdout
