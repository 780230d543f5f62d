"""The Feast face of the ASOF store: its config class and ``OfflineStore`` implementation.

Feast resolves ``offline_store: type: ingestion.store.asof.store.AsofDuckDBOfflineStore`` by importing this module
and taking ``AsofDuckDBOfflineStoreConfig`` (the type name plus ``Config``) from it, so both classes live here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
from feast.data_source import DataSource
from feast.feature_logging import LoggingConfig, LoggingSource
from feast.feature_view import FeatureView
from feast.infra.offline_stores.file_source import FileLoggingDestination, FileSource
from feast.infra.offline_stores.offline_store import OfflineStore, RetrievalJob, RetrievalMetadata
from feast.infra.registry.base_registry import BaseRegistry
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.repo_config import FeastConfigBaseModel, RepoConfig
from feast.type_map import feast_value_type_to_pa

from ingestion.datasets import Dataset
from ingestion.store.asof.entity import EntityFrame, prepare
from ingestion.store.asof.job import AsofRetrievalJob, ConnectionOptions
from ingestion.store.asof.logs import write_log_batch
from ingestion.store.asof.objects import object_dataset, register_files
from ingestion.store.asof.sql import (
    ENTITY_RELATION,
    FeatureColumn,
    ViewPlan,
    historical_query,
    ident,
    literal,
    pull_query,
)
from ingestion.store.objectstore import Root, is_object_url
from ingestion.store.offline import OfflineWriter, locate
from ingestion.store.precedence import precedence_of
from ingestion.store.watermarks_objects import watermarks_for

TYPE_PATH: Literal["ingestion.store.asof.store.AsofDuckDBOfflineStore"] = (
    "ingestion.store.asof.store.AsofDuckDBOfflineStore"
)
_TS_UTC = pa.timestamp("us", tz="UTC")
_EMPTY_PULL = "__asof_empty"
"""The relation a pull reads from a source with no files yet."""


class AsofDuckDBOfflineStoreConfig(FeastConfigBaseModel):
    """``offline_store:`` block of ``feature_store.yaml``.

    ``memory_limit`` (e.g. ``"1GB"``) caps DuckDB's buffer pool so large joins spill to ``temp_directory`` instead
    of growing; ``threads`` defaults to DuckDB's choice (all cores). ``union_by_name`` lets part files written before
    a column was added be read with nulls for it.
    """

    type: Literal["ingestion.store.asof.store.AsofDuckDBOfflineStore"] = TYPE_PATH
    threads: int | None = None
    memory_limit: str | None = None
    temp_directory: str | None = None
    union_by_name: bool = True


def _config(config: RepoConfig) -> AsofDuckDBOfflineStoreConfig:
    store = config.offline_store
    if not isinstance(store, AsofDuckDBOfflineStoreConfig):
        raise TypeError(f"offline_store config is {type(store).__name__}, expected AsofDuckDBOfflineStoreConfig")
    return store


def _options(config: RepoConfig) -> ConnectionOptions:
    c = _config(config)
    return ConnectionOptions(threads=c.threads, memory_limit=c.memory_limit, temp_directory=c.temp_directory)


def _resolve(config: RepoConfig, path: str) -> str:
    """A relative path is taken from the repo folder, as ``feast apply`` does; URLs and absolute paths are kept."""
    if "://" in path or Path(path).is_absolute():
        return path
    return str(Path(config.repo_path or ".") / path)


def source_path(config: RepoConfig, source: DataSource) -> str:
    """The file or glob of a FileSource; a folder (a logging destination is one) means every Parquet file below it."""
    if not isinstance(source, FileSource):
        raise TypeError(f"{type(source).__name__} {source.name!r}: the ASOF store reads FileSources only")
    path = _resolve(config, source.path)
    if "://" not in path and Path(path).is_dir():
        return str(Path(path) / "**" / "*.parquet")
    return path


def _has_files(con: duckdb.DuckDBPyConnection, path: str) -> bool:
    rows = con.execute("SELECT count(*) FROM glob(?)", [path]).fetchall()
    return bool(rows[0][0])


def _relation(con: duckdb.DuckDBPyConnection, path: str, union_by_name: bool, name: str) -> str | None:
    """The SQL relation of a source's files (a ``read_parquet`` over the local glob, or the committed part files on
    object storage registered as ``name``), or None when it has no files yet."""
    if is_object_url(path):
        return register_files(con, path, name)
    return _read(path, union_by_name) if _has_files(con, path) else None


def _time_columns(plan: ViewPlan) -> list[str]:
    return [c for c in (plan.timestamp_field, plan.created_timestamp_column) if c]


def _all_tz(con: duckdb.DuckDBPyConnection, relation: str, columns: list[str]) -> bool:
    """Whether these columns of the files are microsecond ``TIMESTAMPTZ`` (read from the Parquet footers)."""
    types = {str(r[0]): str(r[1]) for r in con.sql(f"DESCRIBE SELECT * FROM {relation}").fetchall()}  # noqa: S608
    return all(types.get(c) == "TIMESTAMP WITH TIME ZONE" for c in columns)


def _read(path: str, union_by_name: bool) -> str:
    # Part files carry every column of their dataset; folder names are never columns (a `symbol=X/` folder read as
    # hive partitioning would clash with the file's own symbol column: feast-notes pitfall 8).
    by_name = str(union_by_name).lower()
    return f"read_parquet({literal(path)}, union_by_name = {by_name}, hive_partitioning = false)"


def _batch_source(fv: FeatureView) -> DataSource:
    if fv.batch_source is None:
        raise ValueError(f"feature view {fv.name!r} has no batch source")
    return fv.batch_source


def _source_column(source: DataSource, name: str) -> str:
    """The source column that Feast's ``field_mapping`` renames to ``name`` (or ``name`` itself)."""
    for src, dst in (source.field_mapping or {}).items():
        if dst == name:
            return str(src)
    return name


def _view_plan(
    fv: FeatureView, feature_refs: list[str], full_feature_names: bool, entity: EntityFrame, path: str
) -> tuple[ViewPlan, str, dict[str, pa.DataType]]:
    """The view's plan (relation left empty), its path, and the empty-table schema used when it has no files yet."""
    source = _batch_source(fv)
    prefix = str(fv.projection.name_to_use())  # type: ignore[no-untyped-call]
    wanted = [ref.split(":", 1)[1] for ref in feature_refs if ref.split(":", 1)[0] == prefix]
    fields = {f.name: f for f in fv.features}
    base = fv.projection.name_alias or fv.name
    features = []
    for name in wanted:
        if name not in fields:
            raise ValueError(f"feature view {fv.name!r} has no feature {name!r}")
        dtype = feast_value_type_to_pa(fields[name].dtype.to_value_type())
        if pa.types.is_timestamp(dtype):
            dtype = _TS_UTC
        output = f"{base}__{name}" if full_feature_names else name
        features.append(FeatureColumn(source=_source_column(source, name), output=output, dtype=dtype))
    key_map = fv.projection.join_key_map or {c.name: c.name for c in fv.entity_columns}
    missing = [col for col in key_map.values() if col not in entity.columns]
    if missing:
        raise ValueError(f"entity frame lacks join key columns {missing} needed by feature view {fv.name!r}")
    join_keys = tuple((_source_column(source, key), col) for key, col in key_map.items())
    created = source.created_timestamp_column or None
    plan = ViewPlan(
        name=fv.name,
        relation="",
        join_keys=join_keys,
        timestamp_field=source.timestamp_field,
        created_timestamp_column=created,
        features=tuple(features),
        ttl=fv.ttl or None,
        precedence=_precedence_sql(path),
    )
    schema: dict[str, pa.DataType] = {src: entity.table.schema.field(col).type for src, col in join_keys}
    schema[source.timestamp_field] = _TS_UTC
    if created:
        schema[created] = _TS_UTC
    schema.update({f.source: f.dtype for f in features})
    return plan, path, schema


def _historical_render(
    entity: EntityFrame, views: list[tuple[ViewPlan, str, dict[str, pa.DataType]]], union_by_name: bool
) -> Callable[[duckdb.DuckDBPyConnection], str]:
    def render(con: duckdb.DuckDBPyConnection) -> str:
        con.register(ENTITY_RELATION, entity.table)
        plans = []
        for i, (plan, path, schema) in enumerate(views):
            found = _relation(con, path, union_by_name, f"__asof_files_{i}")
            if found is not None:
                relation = found
                plan = replace(plan, cast_timestamps=not _all_tz(con, relation, _time_columns(plan)))
            else:
                # A view with no data yet answers nulls of its declared types instead of failing the whole call.
                relation = f"__asof_empty_{i}"
                plan = replace(plan, precedence=None)  # no origin column, and no two rows to rank
                con.register(relation, pa.table({n: pa.array([], t) for n, t in schema.items()}))
            plans.append(replace(plan, relation=relation))
        return historical_query(entity.columns, plans, entity.min_ts, entity.max_ts)

    return render


def _pull_render(
    path: str, union_by_name: bool, columns: list[str], build: Callable[[str], str]
) -> Callable[[duckdb.DuckDBPyConnection], str]:
    def render(con: duckdb.DuckDBPyConnection) -> str:
        relation = _relation(con, path, union_by_name, "__asof_files")
        if relation is not None:
            return build(relation)
        con.register(_EMPTY_PULL, pa.table({c: pa.array([], pa.null()) for c in columns}))
        return build(_EMPTY_PULL)

    return render


class AsofDuckDBOfflineStore(OfflineStore):
    """Point-in-time retrieval by DuckDB ``ASOF LEFT JOIN`` over each FileSource's Parquet glob.

    Result rows are the entity rows, in the entity frame's order, none dropped or repeated; entity columns come back
    as given, features follow in request order. See ``ingestion.store.asof.sql`` for the exact rule.
    """

    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str | None,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        **kwargs: Any,
    ) -> RetrievalJob:
        if entity_df is None:
            raise ValueError(
                "the ASOF offline store needs an entity frame (DataFrame or SQL); start/end alone is unsupported"
            )
        store = _config(config)
        entity = prepare(entity_df)
        views = [
            _view_plan(fv, feature_refs, full_feature_names, entity, source_path(config, _batch_source(fv)))
            for fv in feature_views
        ]
        outputs = [f.output for plan, _, _ in views for f in plan.features]
        clash = sorted(set(outputs) & set(entity.columns))
        if clash or len(set(outputs)) != len(outputs):
            raise ValueError(f"feature columns collide with entity columns or each other: {clash or outputs}")
        odfvs = OnDemandFeatureView.get_requested_odfvs(feature_refs, project, registry)
        metadata = RetrievalMetadata(
            features=feature_refs,
            keys=[c for c in entity.columns if c != entity.event_timestamp_column],
            min_event_timestamp=entity.min_ts,
            max_event_timestamp=entity.max_ts,
        )
        return AsofRetrievalJob(
            _historical_render(entity, views, store.union_by_name),
            _options(config),
            full_feature_names=full_feature_names,
            on_demand_feature_views=odfvs,
            metadata=metadata,
        )

    @staticmethod
    def pull_latest_from_table_or_query(
        config: RepoConfig,
        data_source: DataSource,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None,
        start_date: datetime,
        end_date: datetime,
    ) -> RetrievalJob:
        """The newest row per key with event time in ``[start_date, end_date]`` (what ``materialize`` writes)."""
        columns = _pull_columns(join_key_columns, feature_name_columns, timestamp_field, created_timestamp_column)
        rank = _precedence_sql(source_path(config, data_source))

        def build(relation: str) -> str:
            # The latest row of a key is the one the point-in-time join serves: equal event times by origin first.
            ranked = rank if relation != _EMPTY_PULL else None
            return pull_query(
                relation,
                columns,
                timestamp_field,
                start_date,
                end_date,
                join_key_columns,
                created_timestamp_column,
                precedence=ranked,
            )

        path = source_path(config, data_source)
        return AsofRetrievalJob(_pull_render(path, _config(config).union_by_name, columns, build), _options(config))

    @staticmethod
    def pull_all_from_table_or_query(
        config: RepoConfig,
        data_source: DataSource,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
    ) -> RetrievalJob:
        """Every row with event time in ``[start_date, end_date]`` (either bound optional), except, for a dataset
        with an order of origins, the rows outranked by another row of the same key and event time.

        This is what ``feast materialize`` reads by default (Feast's local engine then keeps, per key, the newest
        event time, then created time). A minute's stream bar written after its REST bar would win that
        de-duplication by created time alone; left out here, it loses as in the point-in-time join and in
        :meth:`pull_latest_from_table_or_query`. The rows left out are those ``compact`` drops: no reader serves them.
        """
        columns = _pull_columns(join_key_columns, feature_name_columns, timestamp_field, created_timestamp_column)
        rank = _precedence_sql(source_path(config, data_source))

        def build(relation: str) -> str:
            ranked = rank if relation != _EMPTY_PULL else None
            return pull_query(
                relation, columns, timestamp_field, start_date, end_date, precedence=ranked, ties_by=join_key_columns
            )

        path = source_path(config, data_source)
        return AsofRetrievalJob(_pull_render(path, _config(config).union_by_name, columns, build), _options(config))

    def get_table_column_names_and_types_from_data_source(
        self, config: RepoConfig, data_source: DataSource
    ) -> list[tuple[str, str]]:
        """Columns of the source's part files as DuckDB sees them through the glob (Feast's own reader takes one
        file or folder, not a glob)."""
        path = source_path(config, data_source)
        con = _options(config).connect()
        try:
            relation = _relation(con, path, _config(config).union_by_name, "__asof_files")
            if relation is None:
                relation = _first_file_schema(con, path)
            rows = con.sql(f"DESCRIBE SELECT * FROM {relation}").fetchall()  # noqa: S608 (path is a quoted literal)
        finally:
            con.close()
        return [(str(r[0]), str(r[1])) for r in rows]

    @staticmethod
    def offline_write_batch(
        config: RepoConfig,
        feature_view: FeatureView,
        table: pa.Table,
        progress: Callable[[int], Any] | None,
    ) -> None:
        """Land pushed rows (``store.push(..., to=PushMode.OFFLINE)``) through the project's
        :class:`~ingestion.store.offline.OfflineWriter`, as every other writer does: part files in
        ``<data_dir>/offline/<dataset>/<YYYY-MM>/``, seen by ``read_dataset``, ``compact`` and this store's reads.
        Never a rewrite of an existing file (feast-notes pitfall 4).

        Every pushed row is written: a push is a deliberate write, so the backfills' watermark does not filter it
        (it does move up, as the rows are now on disk).
        """
        data_dir, dataset = _locate_source(source_path(config, _batch_source(feature_view)))
        with watermarks_for(data_dir) as marks:
            OfflineWriter(data_dir, watermarks=marks).append(dataset, _microsecond_utc(table), use_watermark=False)
        if progress:
            progress(table.num_rows)

    @staticmethod
    def write_logged_features(
        config: RepoConfig,
        data: pa.Table | Path,
        source: LoggingSource,
        logging_config: LoggingConfig,
        registry: BaseRegistry,
    ) -> None:
        """Append a chunk of feature-server logs (a table, or a folder of Parquet files) under the file logging
        destination's folder, as new Parquet files (:mod:`ingestion.store.asof.logs`); Feast's log retrieval reads
        them back through :meth:`pull_all_from_table_or_query`."""
        destination = logging_config.destination
        if not isinstance(destination, FileLoggingDestination):
            raise TypeError(f"the ASOF store logs to files only, not to a {type(destination).__name__}")
        table = pads.dataset(str(data), format="parquet").to_table() if isinstance(data, Path) else data
        write_log_batch(_microsecond_utc(table), Path(_resolve(config, destination.path)), destination.partition_by)


def _microsecond_utc(table: pa.Table) -> pa.Table:
    """Timestamps as ``timestamp[us, UTC]``: pandas' nanoseconds break DuckDB's TIMESTAMPTZ reads (pitfall 2)."""
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type != _TS_UTC:
            table = table.set_column(i, field.name, table.column(i).cast(_TS_UTC, safe=False))
    return table


def _first_file_schema(con: duckdb.DuckDBPyConnection, path: str) -> str:
    """A relation with the columns the source's first file will have: its dataset's schema (a view's first push
    asks Feast for the source's columns before any file exists)."""
    try:
        _, dataset = _locate_source(path)
    except ValueError:
        raise ValueError(f"no Parquet files match {path}") from None
    con.register("__asof_schema", dataset.arrow_schema().empty_table())
    return "__asof_schema"


def _pull_columns(keys: list[str], features: list[str], ts: str, created: str | None) -> list[str]:
    columns = [*keys, *features, ts]
    if created:
        columns.append(created)
    return list(dict.fromkeys(columns))


def _precedence_sql(path: str) -> str | None:
    """The SQL origin rank of the dataset a source's path reads (:mod:`ingestion.store.precedence`); None for a
    path outside the offline store's layout or a dataset whose rows of one key differ by write time alone."""
    try:
        _, dataset = _locate_source(path)
    except ValueError:
        return None
    order = precedence_of(dataset)
    return None if order is None else order.sql(ident, literal)


def _locate_source(path: str) -> tuple[Root, Dataset]:
    """The store root and dataset a source's glob reads (local or ``s3://``); ``ValueError`` for other paths."""
    return object_dataset(path) if is_object_url(path) else locate(_glob_root(path))


def _glob_root(path: str) -> Path:
    """The folder of a glob before its first wildcard part (``<data>/offline/ohlcv_daily`` for ``.../**/*.parquet``)."""
    parts = Path(path).parts
    for i, part in enumerate(parts):
        if any(ch in part for ch in "*?["):
            return Path(*parts[:i])
    return Path(path).parent


__all__ = ["TYPE_PATH", "AsofDuckDBOfflineStore", "AsofDuckDBOfflineStoreConfig", "source_path"]
