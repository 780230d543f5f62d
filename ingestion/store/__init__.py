"""Where data lands: the offline Parquet store, the online Redis writer, quarantine, and the Feast and Redis glue."""
