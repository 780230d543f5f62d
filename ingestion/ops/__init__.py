"""Operations: structured logs, alerts, health checks and the metrics endpoint."""
