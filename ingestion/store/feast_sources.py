"""The batch source of a dataset: Feast's ``FileSource`` over the dataset's append-only part files, by glob.

Feast's own ``FileSource.validate`` (run by ``feast apply`` and ``feast plan`` for every source) asks the filesystem
whether the path exists. Our path is a glob (``<data_dir>/offline/<dataset>/**/*.parquet``), which both Feast's
duckdb engine and our ASOF store read, and which never "exists" as a file: every Feast command warned
"Could not validate FileSource path" once per source. :class:`DatasetSource` validates what the glob means instead:
the files it matches, which may be none before the first backfill (an empty view is not an error), and the event-time
columns in the first of them. In the registry it is a plain ``FileSource``: only this check differs.
"""

from __future__ import annotations

import glob
import logging

import pyarrow.parquet as pq
from feast.infra.offline_stores.file_source import FileSource
from feast.repo_config import RepoConfig

logger = logging.getLogger(__name__)


class DatasetSource(FileSource):
    """A ``FileSource`` whose path is a glob of part files; see the module docstring."""

    def validate(self, config: RepoConfig) -> None:
        del config  # the path is absolute: views.py builds it from the data dir
        first = next(glob.iglob(self.path, recursive=True), None)
        if first is None:
            return  # no part file yet: the view is empty until the first write, which is not a fault
        names = set(pq.read_schema(first).names)
        missing = [c for c in (self.timestamp_field, self.created_timestamp_column) if c and c not in names]
        if missing:
            # A warning, as in Feast's own check: retrieval would fail later with the file named.
            logger.warning("part file %s of source %r has no column %s", first, self.name, ", ".join(missing))


__all__ = ["DatasetSource"]
