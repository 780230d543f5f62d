"""Real time: Polygon WebSocket ticks -> per-symbol aggregates -> Feast online store and Parquet offline store.

``aggregator`` keeps per-symbol state and builds ``realtime_quotes`` rows and closed minute bars; ``refill`` fetches
the minutes a gap left incomplete from REST; ``bridge`` wires the client, the aggregator and both writers together.
"""
