"""Feast's CLI as our commands start it (``ingestion.store.feast_launch``): the same CLI, without typeguard's
import-time instrumentation and without the plotting libraries, and with no optimised bytecode needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version

import pytest

from ingestion.store.feast_launch import skip_typeguard

PROBE = """
import json, sys
from ingestion.store.feast_launch import hide_plotting, skip_typeguard
skip_typeguard()
hide_plotting()
import feast.cli.cli
from feast import FeatureView
print(json.dumps({
    "instrumented": "check_argument_types_internal" in FeatureView.__init__.__code__.co_names,
    "plotting": sorted(m for m in ("matplotlib", "IPython") if sys.modules.get(m) is not None),
    "debug": __debug__,
}))
"""


def _plain_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONOPTIMIZE"}


def _instrumented_here() -> bool:
    from feast import FeatureView

    return "check_argument_types_internal" in FeatureView.__init__.__code__.co_names


def test_the_launched_feast_is_not_instrumented_and_keeps_its_asserts() -> None:
    # The control: this pytest process imported Feast the ordinary way, so typeguard instrumented it.
    assert _instrumented_here()
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=_plain_env(), capture_output=True, text=True, timeout=300, check=True
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"instrumented": False, "plotting": [], "debug": True}


def test_the_launcher_runs_feasts_own_cli() -> None:
    cmd = [sys.executable, "-m", "ingestion.store.feast_launch", "version"]
    done = subprocess.run(cmd, env=_plain_env(), capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert version("feast") in done.stdout


def test_skip_typeguard_refuses_once_feast_is_loaded() -> None:
    import feast  # noqa: F401  # loaded, as in any process that already used Feast

    with pytest.raises(RuntimeError, match="before feast is imported"):
        skip_typeguard()
