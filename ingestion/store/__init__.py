"""Where data lands: the Feast repo glue, the embedded Redis, and (later) the offline and online writers."""
