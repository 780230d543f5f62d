"""The one entity: a ticker, joined on ``symbol`` (upper case, as the vendors send it)."""

from feast import Entity, ValueType

from ingestion.datasets import ENTITY_KEY

ticker = Entity(
    name="ticker",
    join_keys=[ENTITY_KEY],
    value_type=ValueType.STRING,
    description="A listed symbol (stock or ETF), upper case, e.g. AAPL.",
)
