"""Feast's Redis online store, configured from ``REDIS_URL`` when Feast loads ``feature_store.yaml``.

``feature_repo/feature_store.yaml`` names it by import path::

    online_store:
      type: ingestion.store.feast_online.EnvRedisOnlineStore

Feast resolves that to :class:`EnvRedisOnlineStoreConfig` (the type name plus ``Config``) and, for reads and writes,
to :class:`EnvRedisOnlineStore`, which is Feast's own ``RedisOnlineStore`` unchanged: only the configuration differs.
Feast expands ``${VAR}`` in the yaml but has no defaults and takes no URLs, so the config class fills Feast's
``redis_type`` / ``connection_string`` / ``sentinel_master`` from a Redis URL at load time, the one way our commands
render it (:func:`ingestion.store.redis_conn.feast_online_store`). Plain ``feast``, ``FeatureStore(repo_path=...)``
and our commands therefore reach the same Redis, and the password lives only in the environment and in memory.
"""

from __future__ import annotations

from typing import Any, Literal

from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig
from pydantic import Field, StrictStr, model_validator

from ingestion.config import DEFAULT_REDIS_URL, settings
from ingestion.store.redis_conn import feast_online_store, parse_redis_url

TYPE_PATH: Literal["ingestion.store.feast_online.EnvRedisOnlineStore"] = (
    "ingestion.store.feast_online.EnvRedisOnlineStore"
)


def feast_redis_fields(redis_url: str) -> dict[str, Any]:
    """Feast's Redis fields (``redis_type``, ``connection_string``, maybe ``sentinel_master``) for a URL."""
    block = feast_online_store(parse_redis_url(redis_url))
    del block["type"]
    return block


class EnvRedisOnlineStoreConfig(RedisOnlineStoreConfig):
    """``online_store:`` block: Feast's Redis options, with the target taken from a URL.

    ``redis_url`` (default: ``$REDIS_URL``, else ``redis://localhost:6379/0``) names the deployment in any form
    ``REDIS_URL`` takes. An explicit ``connection_string`` in the yaml wins over both, as in Feast's own store.
    """

    type: Literal["ingestion.store.feast_online.EnvRedisOnlineStore"] = TYPE_PATH  # type: ignore[assignment]
    redis_url: StrictStr | None = Field(default=None, repr=False)
    # The rendered string may carry the password: kept out of repr like the URL.
    connection_string: StrictStr = Field(default="localhost:6379", repr=False)

    @model_validator(mode="before")
    @classmethod
    def _connection_from_url(cls, values: Any) -> Any:
        if not isinstance(values, dict) or values.get("connection_string"):
            return values
        # Read now, when Feast loads the yaml, never at import: a test or a notebook may change the environment.
        url = values.get("redis_url") or settings().redis_url or DEFAULT_REDIS_URL
        return {**values, **feast_redis_fields(url)}


class EnvRedisOnlineStore(RedisOnlineStore):
    """Feast's ``RedisOnlineStore``; Feast finds it by the config class's name without ``Config``."""


__all__ = ["TYPE_PATH", "EnvRedisOnlineStore", "EnvRedisOnlineStoreConfig", "feast_redis_fields"]
