"""Entity keys built in bulk (:func:`ingestion.store.online.encoding.entity_keys`) equal Feast's serializer byte for
byte, and fall back to it when its format is not the one the template assumes (pure, no Redis)."""

from __future__ import annotations

import pytest
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value

from ingestion.store.online import encoding
from ingestion.store.online.encoding import entity_keys

VALUES = ["AAPL", "BRK.B", "M000042", "", "ÄÖÜ", "東京", "🙂", "X" * 70_000, "a b\tc", "META"]


def feast_key(join_key: str, value: str, project: str) -> bytes:
    proto = EntityKey(join_keys=[join_key], entity_values=[Value(string_val=value)])
    return serialize_entity_key(proto, entity_key_serialization_version=3) + project.encode()


@pytest.mark.parametrize(("join_key", "project"), [("symbol", "market_data"), ("ticker_id", "p"), ("ü", "")])
def test_bulk_keys_equal_feast_serializer(join_key: str, project: str) -> None:
    assert encoding._key_template(join_key, project, 3) is not None  # the fast path, not the fallback, is compared
    assert entity_keys(join_key, VALUES, project=project, version=3) == [
        feast_key(join_key, v, project) for v in VALUES
    ]


def test_a_changed_format_falls_back_to_feast(monkeypatch: pytest.MonkeyPatch) -> None:
    """If Feast's keys stop having the template's shape (here: a value's length as 8 bytes), the template is refused
    and every key comes from the serializer, so a Feast upgrade can slow the write but never misplace a value."""

    def other_format(join_key: str, value: str, *, project: str, version: int) -> bytes:
        raw = value.encode()
        return b"K" + join_key.encode() + len(raw).to_bytes(8, "little") + raw + project.encode()

    monkeypatch.setattr(encoding, "entity_key", other_format)
    encoding._key_template.cache_clear()
    try:
        got = entity_keys("symbol", VALUES, project="market_data", version=3)
        assert encoding._key_template("symbol", "market_data", 3) is None
        assert got == [other_format("symbol", v, project="market_data", version=3) for v in VALUES]
    finally:
        encoding._key_template.cache_clear()
