"""The data sources of the repo: Feast's ``FileSource`` and ``PushSource``, made stable through a registry round trip.

Two things differ from Feast's own classes.

**Validation of a glob.** Feast's ``FileSource.validate`` (run by ``feast apply`` and ``feast plan`` for every
source) asks the filesystem whether the path exists. Our path is a glob (``<data_dir>/offline/<dataset>/**/*.parquet``),
which both Feast's duckdb engine and our ASOF store read, and which never "exists" as a file: every Feast command
warned "Could not validate FileSource path" once per source. :class:`DatasetSource` validates what the glob means
instead: the files it matches, which may be none before the first backfill (an empty view is not an error), and the
event-time columns in the first of them.

**The same proto before and after a materialization.** ``feast plan`` (and a second ``feast apply``) reported
"Updated feature view" for every view once anything recorded a materialization interval, with stock Feast classes
too. Feast 0.67's diff (``feast.diff.registry_diff.diff_registry_objects``) compares the stored and the parsed view
field by field only when the two are unequal, and the stored view's intervals always make them so. The field
comparison then sees the embedded source protos, which differ in two ways that ``DataSource.__eq__`` ignores:

- ``data_source_class_type``: a view's proto records its sources' Python class (``serialize_data_source``), but
  ``DataSource.from_proto`` rebuilds a ``BATCH_FILE`` or ``PUSH_SOURCE`` proto as the stock class and looks at the
  recorded class only for ``CUSTOM_SOURCE``. ``apply_materialization`` reads the view back and writes it whole, so
  the stored source became a plain ``FileSource`` while the repo still defines a subclass;
- ``meta`` timestamps: every source constructor stamps ``now`` and the registry restamps ``last_updated`` on each
  apply, so a source parsed by ``feast plan`` never has the stored source's timestamps.

And the file registry never repairs it: a re-apply that changes no schema updates only the view's metadata fields in
place (``Registry._update_metadata_fields``), so the stale source stays and every later plan reports it again.

So these classes write the ``CUSTOM_SOURCE`` type with their own class (``DataSource.from_proto`` then rebuilds them,
not the stock class) and no ``meta`` timestamps (bookkeeping that Feast reads nowhere for a source): their proto is a
function of the definition alone, and a parsed view equals a stored one field for field. Everything else is
Feast's: ``isinstance(source, FileSource)`` and ``isinstance(source, PushSource)``, which is all Feast's offline
stores, ``push`` and our ASOF store check, still hold.
"""

from __future__ import annotations

import glob
import logging
from typing import Any

import pyarrow.parquet as pq
from feast.data_source import DataSource, PushSource
from feast.infra.offline_stores.file_source import FileSource
from feast.protos.feast.core.DataSource_pb2 import DataSource as DataSourceProto
from feast.repo_config import RepoConfig

logger = logging.getLogger(__name__)


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _stable(proto: DataSourceProto, cls: type) -> DataSourceProto:
    """``proto`` typed as a custom source of ``cls``, so that ``DataSource.from_proto`` rebuilds ``cls``."""
    proto.type = DataSourceProto.CUSTOM_SOURCE
    proto.data_source_class_type = _class_path(cls)
    return proto


class DatasetSource(FileSource):
    """A ``FileSource`` whose path is a glob of part files; see the module docstring."""

    def source_type(self) -> DataSourceProto.SourceType.ValueType:
        return DataSourceProto.CUSTOM_SOURCE

    @staticmethod
    def from_proto(data_source: DataSourceProto) -> DatasetSource:
        stock = FileSource.from_proto(data_source)
        return DatasetSource(
            name=stock.name,
            path=stock.path,
            file_format=stock.file_format,
            timestamp_field=stock.timestamp_field,
            created_timestamp_column=stock.created_timestamp_column,
            field_mapping=stock.field_mapping,
            s3_endpoint_override=stock.s3_endpoint_override,
            description=stock.description,
            tags=stock.tags,
            owner=stock.owner,
            connection_ref=stock.connection_ref,
        )

    def _to_proto_impl(self) -> DataSourceProto:
        return _stable(super()._to_proto_impl(), DatasetSource)

    def _set_timestamps_in_proto(self, data_source_proto: DataSourceProto) -> None:
        del data_source_proto  # no meta: see the module docstring

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


class DatasetPushSource(PushSource):
    """A ``PushSource`` with the same proto before and after a registry round trip; see the module docstring."""

    def source_type(self) -> DataSourceProto.SourceType.ValueType:
        return DataSourceProto.CUSTOM_SOURCE

    @staticmethod
    def from_proto(data_source: DataSourceProto) -> DatasetPushSource:
        batch: Any = DataSource.from_proto(data_source.batch_source) if data_source.HasField("batch_source") else None
        return DatasetPushSource(
            name=data_source.name,
            batch_source=batch,
            description=data_source.description,
            tags=dict(data_source.tags),
            owner=data_source.owner,
        )

    def _to_proto_impl(self) -> DataSourceProto:
        return _stable(super()._to_proto_impl(), DatasetPushSource)

    def _set_timestamps_in_proto(self, data_source_proto: DataSourceProto) -> None:
        del data_source_proto  # no meta: see the module docstring


__all__ = ["DatasetPushSource", "DatasetSource"]
