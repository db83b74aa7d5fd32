"""Operations: alerts on overdue and failing syncs (stored, listed, sent by webhook and email), Prometheus metrics,
health checks and JSON logs. Settings in ``connector.operations.settings``."""
