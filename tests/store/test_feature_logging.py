"""Feast feature logging on our offline store: a logged batch written through Feast's API is read back unchanged,
as Parquet under the destination folder and through Feast's own log retrieval."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from feast import FeatureService, FeatureStore
from feast.feature_logging import LOG_TIMESTAMP_FIELD, FeatureServiceLoggingSource, LoggingConfig
from feast.infra.offline_stores.file_source import FileLoggingDestination

from ingestion.config import Settings
from ingestion.store.feast_repo import open_store

AT = datetime(2024, 5, 2, 20, 0, tzinfo=UTC)


def logged_batch(schema: pa.Schema, rows: int, offset: int) -> pa.Table:
    """``rows`` rows of the service's log schema, every column filled with values that tell rows apart."""
    ids = range(offset, offset + rows)
    columns: list[pa.Array] = []
    for field in schema:
        t = field.type
        if pa.types.is_timestamp(t):
            values: list[object] = [AT + timedelta(minutes=i) for i in ids]
        elif pa.types.is_date(t):
            values = [(AT + timedelta(days=i % 2)).date() for i in ids]
        elif pa.types.is_boolean(t):
            values = [i % 2 == 0 for i in ids]
        elif pa.types.is_integer(t):
            values = [i % 3 for i in ids]
        elif pa.types.is_floating(t):
            values = [i + 0.25 for i in ids]
        else:
            values = [f"{field.name}-{i}" for i in ids]
        columns.append(pa.array(values, t))
    return pa.Table.from_arrays(columns, schema=schema)


def _service(store: FeatureStore, folder: Path, partition_by: list[str] | None) -> FeatureService:
    destination = FileLoggingDestination(path=str(folder), partition_by=partition_by)
    return FeatureService(
        name="etf_logged",
        features=[store.get_feature_view("etf_flow_daily")],
        logging_config=LoggingConfig(destination=destination),
    )


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by([(LOG_TIMESTAMP_FIELD, "ascending")])


@pytest.mark.parametrize("partition_by", [None, ["__log_date"]])
def test_feature_logging_round_trips_a_logged_batch(
    applied_repo: Settings, tmp_path: Path, partition_by: list[str] | None
) -> None:
    assert applied_repo.redis_url
    store = open_store(applied_repo, applied_repo.redis_url)
    service = _service(store, tmp_path / "logs", partition_by)
    schema = FeatureServiceLoggingSource(service, store.project).get_schema(store.registry)
    # Two flushes into one destination, the second appending: one as a folder of Parquet files (what Feast's
    # logger hands over), one as a table.
    batches = [logged_batch(schema, 5, 0), logged_batch(schema, 3, 5)]
    staged = tmp_path / "staged"
    staged.mkdir()
    pq.write_table(batches[0], staged / "chunk.parquet")
    store.write_logged_features(staged, service)
    store.write_logged_features(batches[1], service)
    expected = _sorted(pa.concat_tables(batches))

    files = sorted((tmp_path / "logs").rglob("*.parquet"))
    assert files and not [f for f in (tmp_path / "logs").rglob("*") if f.name.startswith(".")]
    if partition_by:
        assert {f.parent.name for f in files} == {"__log_date=2024-05-02", "__log_date=2024-05-03"}
    # Every column is kept in the files (partition columns included), so a plain read sees the batch as written.
    read = pads.dataset([str(f) for f in files], schema=schema, format="parquet").to_table()
    assert _sorted(read).equals(expected)

    # Feast's own reader of the logs (the input of skew monitoring) gets the same rows back.
    job = store._get_provider().retrieve_feature_service_logs(
        service, AT - timedelta(days=1), AT + timedelta(days=1), store.config, store.registry
    )
    back = _sorted(job.to_arrow())
    assert back.num_rows == expected.num_rows
    for name in expected.column_names:
        assert back.column(name).to_pylist() == expected.column(name).to_pylist(), name
