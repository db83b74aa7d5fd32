"""Settings of distributed execution, alerts and logs, read from the environment with the rest (``config.py``).

| variable | meaning | default |
| --- | --- | --- |
| ``CONNECTOR_BROKER_URL`` | Celery broker (``amqp://…`` or ``redis://…``); unset: work runs in-process | unset |
| ``CONNECTOR_QUEUE_PREFIX`` | prefix of every queue name (one deployment per prefix) | ``connector.`` |
| ``CONNECTOR_DESTINATION_CONCURRENCY`` | runs at a time per destination, across all workers | ``2`` |
| ``CONNECTOR_DESTINATION_QUEUES`` | destinations with a queue of their own: ``7=slow,9=slow`` | none |
| ``CONNECTOR_RUN_LEASE_SECONDS`` | a run whose heartbeat is older is taken over | ``60`` |
| ``CONNECTOR_RUN_HEARTBEAT_SECONDS`` | how often a run renews its lease | ``10`` |
| ``CONNECTOR_ALERT_GRACE_SECONDS`` | a scheduled run not started this long after it fell due is overdue | ``300`` |
| ``CONNECTOR_ALERT_FAILED_RUNS`` | failed runs in a row that raise "failing" | ``3`` |
| ``CONNECTOR_ALERT_REJECTED_RECORDS`` | rejected records in one run that raise "failing" | ``100`` |
| ``CONNECTOR_ALERT_WEBHOOK_URL`` | alerts are POSTed here as JSON | unset |
| ``CONNECTOR_ALERT_EMAIL_TO`` | comma-separated addresses alerts are mailed to | unset |
| ``CONNECTOR_SMTP_HOST`` / ``_PORT`` | the SMTP server alerts are sent through | ``localhost`` / ``25`` |
| ``CONNECTOR_SMTP_USERNAME`` / ``_PASSWORD`` / ``_FROM`` / ``_STARTTLS`` | its login, sender and TLS | none |
| ``CONNECTOR_LOG_FORMAT`` | ``json``: one JSON object per log line | ``text`` |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


def _parse_queues(value: str) -> dict[int, str]:
    queues: dict[int, str] = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        destination, _, queue = part.partition("=")
        if not destination.strip().isdigit() or not queue.strip():
            raise RuntimeError(f"CONNECTOR_DESTINATION_QUEUES: {part!r} is not DESTINATION_ID=QUEUE")
        queues[int(destination)] = queue.strip()
    return queues


@dataclass(frozen=True)
class OperationsSettings:
    broker_url: str | None = None
    queue_prefix: str = "connector."
    destination_concurrency: int = 2
    destination_queues: dict[int, str] = field(default_factory=dict)
    run_lease_seconds: float = 60.0
    run_heartbeat_seconds: float = 10.0
    alert_grace_seconds: float = 300.0
    alert_failed_runs: int = 3
    alert_rejected_records: int = 100
    alert_webhook_url: str | None = None
    alert_email_to: tuple[str, ...] = ()
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "connector@localhost"
    smtp_starttls: bool = False
    log_format: str = "text"

    @property
    def distributed(self) -> bool:
        """Whether work goes to Celery workers (a broker is configured) rather than running in-process."""
        return bool(self.broker_url)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OperationsSettings:
        def get(name: str, default=None):
            value = env.get(f"CONNECTOR_{name}")
            return default if value is None or value == "" else value

        try:
            return cls(
                broker_url=get("BROKER_URL"),
                queue_prefix=get("QUEUE_PREFIX", cls.queue_prefix),
                destination_concurrency=max(1, int(get("DESTINATION_CONCURRENCY", cls.destination_concurrency))),
                destination_queues=_parse_queues(get("DESTINATION_QUEUES", "")),
                run_lease_seconds=float(get("RUN_LEASE_SECONDS", cls.run_lease_seconds)),
                run_heartbeat_seconds=float(get("RUN_HEARTBEAT_SECONDS", cls.run_heartbeat_seconds)),
                alert_grace_seconds=float(get("ALERT_GRACE_SECONDS", cls.alert_grace_seconds)),
                alert_failed_runs=max(1, int(get("ALERT_FAILED_RUNS", cls.alert_failed_runs))),
                alert_rejected_records=max(1, int(get("ALERT_REJECTED_RECORDS", cls.alert_rejected_records))),
                alert_webhook_url=get("ALERT_WEBHOOK_URL"),
                alert_email_to=tuple(a.strip() for a in get("ALERT_EMAIL_TO", "").split(",") if a.strip()),
                smtp_host=get("SMTP_HOST", cls.smtp_host),
                smtp_port=int(get("SMTP_PORT", cls.smtp_port)),
                smtp_username=get("SMTP_USERNAME"),
                smtp_password=get("SMTP_PASSWORD"),
                smtp_from=get("SMTP_FROM", cls.smtp_from),
                smtp_starttls=get("SMTP_STARTTLS", "0").lower() in ("1", "true", "yes"),
                log_format=get("LOG_FORMAT", cls.log_format).lower(),
            )
        except ValueError as exc:
            raise RuntimeError(f"an operations setting is not a number: {exc}") from exc
