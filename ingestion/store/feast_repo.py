"""Glue between the dataset definitions and Feast: schemas, the configured ``FeatureStore``, the CLI.

``feature_repo/feature_store.yaml`` is the one configuration: plain ``feast`` in that folder,
``FeatureStore(repo_path=...)`` and these functions all load it, completed from ``REDIS_URL`` and ``FEAST_DATA_DIR``
(:mod:`ingestion.store.feast_config`). A Feast child gets this run's values through its environment
(:func:`feast_env`), an in-process store through :func:`open_store`; neither writes a copy of the yaml, and the Redis
password (the embedded server's, say) never reaches a file.

Importing this module is cheap (no pandas, pyarrow or Feast): ``apply`` and ``plan`` only start a Feast child, and
that child's start-up is what a team's CI waits for.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ingestion.config import Settings
from ingestion.store.writable import require_writable

if TYPE_CHECKING:
    import pyarrow as pa
    from feast import FeatureStore
    from feast.field import Field

    from ingestion.datasets import Dataset
    from ingestion.store.objectstore import Root

PROJECT = "market_data"
# Feast's CLI as our commands run it: the same click commands, minus typeguard's import-time instrumentation.
FEAST_CLI = (sys.executable, "-m", "ingestion.store.feast_launch")


def offline_glob(data_dir: Root, dataset: Dataset) -> str:
    """The glob Feast's duckdb offline store reads a dataset's part files through (feast-notes pitfall 8); an
    ``s3://`` URL for an offline store on object storage."""
    return str(data_dir / "offline" / dataset.name / "**" / "*.parquet")


def feast_dtype(dtype: pa.DataType) -> Any:
    """Feast type for an Arrow type. Only the types the datasets use are mapped; others are a definition bug."""
    import pyarrow as pa
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
    """Write the repo's ``feature_store.yaml`` with the data dir of ``settings`` pinned, for a caller that needs a
    file for settings other than its environment's (mode 0600), and return its path.

    No command of ours uses it. Nothing secret is written: ``${VAR}``s stay unexpanded and the online store still
    takes ``REDIS_URL`` from the environment of whoever loads the file (``feast_env`` sets it for a child), so
    ``redis_url`` is not written either.
    """
    from ingestion.store.feast_config import pin_data_dir

    del redis_url  # a password is never written; see the docstring
    config: dict[str, Any] = yaml.safe_load((settings.repo_path / "feature_store.yaml").read_text())
    pin_data_dir(config, settings.data_dir)
    require_writable(settings.data_dir)
    target = settings.data_dir / "feature_store.yaml"
    # mkstemp: 0600 from the start and a unique temp name, so concurrent renders never share one.
    fd, tmp = tempfile.mkstemp(dir=settings.data_dir, prefix=".feature_store.", suffix=".yaml.tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(yaml.safe_dump(config, sort_keys=False))
        # Renamed into place so a concurrent reader never sees half a file.
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def feast_env(settings: Settings, redis_url: str | None = None) -> dict[str, str]:
    """Environment for a Feast child: this process's, plus the data dir and Redis (``redis_url`` or the settings')
    that the repo's yaml reads.

    The Redis URL (it may hold the embedded server's password) travels only here: a process's environment is
    readable by its own user alone, unlike its command line. No PYTHONOPTIMIZE: it is fast only where optimised
    bytecode was compiled beforehand, and slower than nothing on a fresh install; our Feast children skip
    typeguard's cost through :mod:`ingestion.store.feast_launch` instead.
    """
    from ingestion.store.feast_config import feast_environment

    env = {**os.environ, **feast_environment(settings, redis_url)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(settings.repo_path.parent), env.get("PYTHONPATH", "")) if p)
    return env


def feast_cli(settings: Settings, redis_url: str, *args: str, capture: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real ``feast`` CLI on the repo and its own yaml, e.g. ``feast_cli(s, url, "apply")``, started
    without typeguard's import cost (:mod:`ingestion.store.feast_launch`)."""
    # An unwritable data dir ends here in one line, not in a traceback from Feast's registry.
    require_writable(settings.data_dir)
    cmd = [*FEAST_CLI, "-c", str(settings.repo_path), *args]
    env = feast_env(settings, redis_url)
    return subprocess.run(cmd, env=env, capture_output=capture, text=True, check=False, timeout=600)


def open_store(settings: Settings, redis_url: str) -> FeatureStore:
    """A ``FeatureStore`` on the repo's yaml for these settings (the registry must have been applied)."""
    from feast import FeatureStore

    from ingestion.store.feast_config import repo_config

    require_writable(settings.data_dir)
    return FeatureStore(repo_path=str(settings.repo_path), config=repo_config(settings, redis_url))


__all__ = [
    "FEAST_CLI",
    "PROJECT",
    "feast_cli",
    "feast_dtype",
    "feast_env",
    "feature_fields",
    "offline_glob",
    "open_store",
    "render_store_yaml",
]
