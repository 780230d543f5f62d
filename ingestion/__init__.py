"""Market-data ingestion for Feast: Polygon.io and Unusual Whales into Parquet (offline) and Redis (online).

The public face is re-exported here; everything else is free to change.
"""

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

__all__ = [
    "AuthError",
    "CircuitOpen",
    "ClientError",
    "ConfigError",
    "IngestionError",
    "NotEntitled",
    "QuotaExhausted",
    "RateLimited",
    "SchemaError",
    "ServerError",
    "TransportError",
    "VendorError",
]
