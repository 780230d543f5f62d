"""Market-data ingestion for Feast: Polygon.io and Unusual Whales into Parquet (offline) and Redis (online).

The public face is re-exported here; everything else is free to change. The clients are loaded on first use, so
``import ingestion`` (and every command's start-up) does not pay for pandas, requests and websockets. Type checkers
read the ``TYPE_CHECKING`` imports instead, so a user's mypy sees the real classes, not ``Any``.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ingestion.errors import (
    AuthError,
    CircuitOpen,
    ClientError,
    ConfigError,
    IngestionError,
    NotEntitled,
    QuotaExhausted,
    RateLimited,
    SchemaError,
    ServerError,
    TransportError,
    VendorError,
)

if TYPE_CHECKING:
    from ingestion.http.breaker import CircuitBreaker, CircuitState
    from ingestion.polygon.client import PolygonClient
    from ingestion.polygon.rest import PolygonRESTClient
    from ingestion.polygon.websocket import PolygonWebSocketClient
    from ingestion.unusual_whales.client import EnhancedUnusualWhalesClient, UnusualWhalesClient

# Must name the same classes and modules as the imports above (tests/unit/test_public_typing.py checks it).
_LAZY = {
    "CircuitBreaker": "ingestion.http.breaker",
    "CircuitState": "ingestion.http.breaker",
    "EnhancedUnusualWhalesClient": "ingestion.unusual_whales.client",
    "PolygonClient": "ingestion.polygon.client",
    "PolygonRESTClient": "ingestion.polygon.rest",
    "PolygonWebSocketClient": "ingestion.polygon.websocket",
    "UnusualWhalesClient": "ingestion.unusual_whales.client",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ingestion' has no attribute {name!r}")


__all__ = [
    "AuthError",
    "CircuitBreaker",
    "CircuitOpen",
    "CircuitState",
    "ClientError",
    "ConfigError",
    "EnhancedUnusualWhalesClient",
    "IngestionError",
    "NotEntitled",
    "PolygonClient",
    "PolygonRESTClient",
    "PolygonWebSocketClient",
    "QuotaExhausted",
    "RateLimited",
    "SchemaError",
    "ServerError",
    "TransportError",
    "UnusualWhalesClient",
    "VendorError",
]
