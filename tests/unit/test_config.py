from pathlib import Path

import pytest

from ingestion.config import DEFAULT_DATA_DIR, feast_connection_string, settings


def test_settings_read_at_call_time_and_hide_secrets() -> None:
    s = settings({"POLYGON_API_KEY": "pk-secret", "UW_API_TOKEN": "uw-secret", "REDIS_URL": "redis://h:1/0"})
    assert s.polygon_api_key == "pk-secret"
    assert s.has_vendor_keys
    text = repr(s)
    assert "pk-secret" not in text and "uw-secret" not in text and "redis://h" not in text


def test_massive_key_is_an_alias_and_defaults_apply() -> None:
    s = settings({"MASSIVE_API_KEY": "m"})
    assert s.polygon_api_key == "m"
    empty = settings({"POLYGON_API_KEY": "  "})
    assert empty.polygon_api_key is None and not empty.has_vendor_keys
    assert empty.data_dir == DEFAULT_DATA_DIR
    assert empty.polygon_base_url == "https://api.polygon.io"


def test_data_dir_from_env(tmp_path: Path) -> None:
    assert settings({"FEAST_DATA_DIR": str(tmp_path)}).registry_path == tmp_path / "registry.db"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://localhost:6379/0", "localhost:6379"),
        ("redis://127.0.0.1:7000", "127.0.0.1:7000"),
        ("rediss://:p%40ss@cache:6380/2", "cache:6380,db=2,password=p@ss,ssl=true"),
        ("redis://alice:pw@h:1/0", "h:1,password=pw,username=alice"),
    ],
)
def test_feast_connection_string(url: str, expected: str) -> None:
    assert feast_connection_string(url) == expected


def test_feast_connection_string_rejects_other_schemes() -> None:
    with pytest.raises(ValueError, match="redis://"):
        feast_connection_string("http://localhost:6379")
