"""``feast apply`` of the repo as a team's CI runs it: ``python -m ingestion apply`` against plain ``feast apply``.

Each sample is a whole CLI process in the repo folder, which is what CI pays, with no ``PYTHONOPTIMIZE`` (a fresh
install has no optimised bytecode, and ``-O`` without it is slower than nothing). Both variants run in this
environment and, unless ``--quick``, in a fresh virtualenv that the benchmark creates the way CI would: ``python -m
venv`` and ``pip install --no-deps -e <repo>``, with ``--system-site-packages`` standing in for the dependencies
(the same wheels, installed with their ordinary bytecode, and nothing downloaded). Rounds alternate the variants,
so a busy moment of the machine falls on both.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ingestion.bench.common import child_peak_rss_mb
from ingestion.config import PROJECT_ROOT
from ingestion.store.redis_server import RedisServer

GOAL_S = 3.0
OURS, PLAIN = "ingestion apply", "plain feast apply"
SKIP_FRESH_IN_QUICK = (
    "skipped in --quick: creating the venv and installing the project takes 10-20 s before any sample; "
    "the full run measures it"
)


def fresh_venv(root: Path, project: Path) -> Path:
    """A new virtualenv under ``root`` with the project installed editable, as CI's ``pip install -e .`` does; the
    dependencies come from this interpreter's site-packages (``--system-site-packages``), so nothing is downloaded."""
    venv = root / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    python = venv / "bin" / "python"
    # pip itself comes from the system site-packages; the project's build backend through pip's usual isolation.
    install = [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check", "-e"]
    done = subprocess.run([*install, str(project)], capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pip install -e {project} in a fresh venv failed: {done.stderr.strip()[-500:]}")
    return python


def _commands(python: str) -> dict[str, list[str]]:
    return {OURS: [python, "-m", "ingestion", "apply"], PLAIN: [python, "-m", "feast.cli.cli", "apply"]}


def _sampler(repo: Path, data_root: Path, redis_url: str) -> Callable[[list[str]], float]:
    count = iter(range(1_000_000))

    def seconds(cmd: list[str]) -> float:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONOPTIMIZE"}
        env.update(FEAST_REPO_PATH=str(repo), FEAST_DATA_DIR=str(data_root / f"d{next(count)}"), REDIS_URL=redis_url)
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300, check=False)
        elapsed = time.perf_counter() - t0
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[1:])} failed: {(done.stderr or done.stdout).strip()[-800:]}")
        return elapsed

    return seconds


def _measure(install: str, python: str, sample: Callable[[list[str]], float], repeat: int) -> list[dict[str, Any]]:
    commands = _commands(python)
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for i in range(repeat):
        order = list(commands) if i % 2 == 0 else list(reversed(commands))
        for name in order:
            samples[name].append(sample(commands[name]))
    return [
        {
            "variant": name,
            "install": install,
            "median_s": statistics.median(values),
            "max_s": max(values),
            "runs": repeat,
            # Largest child so far (Linux carries the high-water mark across exec): an upper bound per row.
            "peak_rss_mb": child_peak_rss_mb(),
        }
        for name, values in samples.items()
    ]


def run(quick: bool) -> dict[str, Any]:
    repeat = 1 if quick else 5
    project = PROJECT_ROOT
    rows: list[dict[str, Any]] = []
    # Other processes on the machine slow both variants alike; the load says how far from an idle machine it was.
    result: dict[str, Any] = {"load_avg_1m_before": os.getloadavg()[0]}
    with RedisServer() as server, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        repo = root / "feature_repo"
        shutil.copytree(project / "feature_repo", repo, ignore=shutil.ignore_patterns("data", "__pycache__"))
        sample = _sampler(repo, root / "data", server.url)
        rows += _measure("this environment", sys.executable, sample, repeat)
        if quick:
            print(f"feast_apply: fresh virtualenv {SKIP_FRESH_IN_QUICK}", flush=True)
            result["fresh_venv"] = SKIP_FRESH_IN_QUICK
        else:
            t0 = time.perf_counter()
            python = fresh_venv(root, project)
            result["fresh_venv_setup_s"] = time.perf_counter() - t0
            rows += _measure("fresh virtualenv", str(python), sample, repeat)
    result["load_avg_1m_after"] = os.getloadavg()[0]
    median = {(r["install"], r["variant"]): r["median_s"] for r in rows}
    installs = list(dict.fromkeys(r["install"] for r in rows))
    measured = installs[-1]  # the fresh virtualenv when it ran
    return {
        "rows": rows,
        "ratios": {f"plain / ours, {i}": median[(i, PLAIN)] / median[(i, OURS)] for i in installs},
        "goals": {f"ours <= {GOAL_S:g} s, {measured}": median[(measured, OURS)] <= GOAL_S},
        **result,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(parser.parse_args().quick), indent=2))
