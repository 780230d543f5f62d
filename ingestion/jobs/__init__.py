"""Jobs that move vendor data into Feast: backfills, derived features, data-quality checks, materialization."""
