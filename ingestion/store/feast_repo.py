"""Glue between the dataset definitions and Feast: schemas, the effective ``feature_store.yaml``, the CLI.

``feature_repo/feature_store.yaml`` holds the defaults (Redis on localhost, data beside the project). The
commands render an *effective* copy into the data directory with the configured Redis and paths, and point Feast at
it with ``feast -f``. So the same repo serves every environment, and plain ``feast apply`` in the repo still works
with the defaults.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import yaml

from ingestion.config import Settings
from ingestion.datasets import EVENT_TS, Dataset
from ingestion.store.redis_conn import feast_online_store, parse_redis_url
from ingestion.store.writable import require_writable

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.field import Field

PROJECT = "market_data"


def offline_glob(data_dir: Path, dataset: Dataset) -> str:
    """The glob Feast's duckdb offline store reads a dataset's part files through (feast-notes pitfall 8)."""
    return str(data_dir / "offline" / dataset.name / "**" / "*.parquet")


def feast_dtype(dtype: pa.DataType) -> Any:
    """Feast type for an Arrow type. Only the types the datasets use are mapped; others are a definition bug."""
    from feast import types

    mapping: dict[pa.DataType, Any] = {
        pa.float64(): types.Float64,
        pa.int64(): types.Int64,
        pa.string(): types.String,
        pa.bool_(): types.Bool,
    }
    if dtype in mapping:
        return mapping[dtype]
    if pa.types.is_timestamp(dtype):
        return types.UnixTimestamp
    raise TypeError(f"no Feast type for Arrow {dtype}")


def feature_fields(dataset: Dataset) -> list[Field]:
    from feast.field import Field

    return [Field(name=c.name, dtype=feast_dtype(c.dtype), description=c.description) for c in dataset.features]


def render_store_yaml(settings: Settings, redis_url: str) -> Path:
    """Write the effective ``feature_store.yaml`` for these settings into the data dir (mode 0600: it holds the Redis
    password) and return its path."""
    template = settings.repo_path / "feature_store.yaml"
    config: dict[str, Any] = yaml.safe_load(template.read_text())
    config["registry"] = {"registry_type": "file", "path": str(settings.registry_path)}
    online = dict(config.get("online_store") or {})
    online.update(feast_online_store(parse_redis_url(redis_url)))
    config["online_store"] = online
    # Every use of Feast (apply, serve, open_store) renders this file: an unwritable data dir ends here in one line.
    require_writable(settings.data_dir)
    target = settings.data_dir / "feature_store.yaml"
    # The file holds the Redis password: mkstemp creates it with mode 0600 (never readable by others, not even
    # between a create and a chmod), under a unique name so concurrent renders do not share a temp file.
    fd, tmp = tempfile.mkstemp(dir=settings.data_dir, prefix=".feature_store.", suffix=".yaml.tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(yaml.safe_dump(config, sort_keys=False))
        # Renamed into place so a concurrent reader never sees half a file; the rename keeps the 0600 mode.
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def feast_env(settings: Settings) -> dict[str, str]:
    """Environment for a Feast CLI child: the data dir for the repo's views, and no typeguard cost.

    PYTHONOPTIMIZE makes Feast skip typeguard's runtime checks, which cut ``import feast`` from about 6 s to 1.4 s
    (feast-notes). It is only set for Feast children: pytest itself needs its asserts.
    """
    env = dict(os.environ)
    env["FEAST_DATA_DIR"] = str(settings.data_dir)
    env.setdefault("PYTHONOPTIMIZE", "1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(settings.repo_path.parent), env.get("PYTHONPATH", "")) if p)
    return env


def feast_cli(settings: Settings, redis_url: str, *args: str, capture: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real ``feast`` CLI on the repo with the effective yaml, e.g. ``feast_cli(s, url, "apply")``."""
    store_yaml = render_store_yaml(settings, redis_url)
    cmd = [sys.executable, "-m", "feast.cli.cli", "-c", str(settings.repo_path), "-f", str(store_yaml), *args]
    return subprocess.run(cmd, env=feast_env(settings), capture_output=capture, text=True, check=False, timeout=600)


def open_store(settings: Settings, redis_url: str) -> FeatureStore:
    """A ``FeatureStore`` on the repo with the effective yaml (the registry must have been applied)."""
    from feast import FeatureStore

    store_yaml = render_store_yaml(settings, redis_url)
    return FeatureStore(repo_path=str(settings.repo_path), fs_yaml_file=store_yaml)


__all__ = [
    "EVENT_TS",
    "PROJECT",
    "feast_cli",
    "feast_dtype",
    "feature_fields",
    "offline_glob",
    "open_store",
    "render_store_yaml",
]
