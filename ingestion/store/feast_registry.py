"""Feast's file registry, kept in the data dir named by ``FEAST_DATA_DIR``.

``feature_repo/feature_store.yaml`` names it by import path::

    registry:
      registry_type: file
      registry_store_type: ingestion.store.feast_registry.DataDirRegistryStore
      path: registry.db

A relative ``path`` is taken from the registry block's ``data_dir`` when given, else from ``FEAST_DATA_DIR`` read when
Feast opens the registry, else the project's ``data/`` folder: the same rule our commands use for the Parquet files.
Feast's own file store would take it from the repo folder, which is how plain ``feast apply`` used to write a second
registry beside the one our commands read. Everything else is Feast's ``FileRegistryStore``.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from feast.infra.registry.file import FileRegistryStore
from feast.protos.feast.core.Registry_pb2 import Registry as RegistryProto
from feast.repo_config import RegistryConfig

from ingestion.config import settings

STORE_TYPE = "ingestion.store.feast_registry.DataDirRegistryStore"


def registry_file(registry_config: Any) -> Path:
    """Where a registry block that names :data:`STORE_TYPE` keeps its file."""
    path = Path(registry_config.path or "registry.db").expanduser()
    if path.is_absolute():
        return path
    data_dir = getattr(registry_config, "data_dir", None)
    return Path(data_dir).expanduser() / path if data_dir else settings().data_dir / path


class DataDirRegistryStore(FileRegistryStore):
    """A ``FileRegistryStore`` whose relative path lives in the data dir rather than the repo folder."""

    def __init__(self, registry_config: RegistryConfig, repo_path: Path | None) -> None:
        absolute = registry_config.model_copy(update={"path": str(registry_file(registry_config))})
        super().__init__(absolute, repo_path or Path.cwd())

    def _write_registry(self, registry_proto: RegistryProto) -> None:
        """Feast's write (a new version id and update time), but atomic: Feast truncates and rewrites the file in
        place, so a process reading it meanwhile (a feature server, a second stream consumer recording its
        materialization interval) can parse half a registry and report a view as missing. A temp file in the same
        folder, fsynced, then renamed over the old one: a reader sees the old registry or the new one."""
        registry_proto.version_id = str(uuid.uuid4())
        registry_proto.last_updated.FromDatetime(datetime.now(tz=UTC))
        # Feast creates only the last folder; a fresh FEAST_DATA_DIR may be several levels deep.
        folder = self._filepath.parent
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self._filepath.name}.", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(registry_proto.SerializeToString())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._filepath)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


__all__ = ["STORE_TYPE", "DataDirRegistryStore", "registry_file"]
