"""``connector worker`` (collected by ``connector.cli``)."""

from __future__ import annotations

import click


@click.command("worker")
@click.option("--queues", default=None, help="Comma-separated queue names (default: every queue of the deployment).")
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 256), help="Tasks at a time.")
@click.option("--metrics-port", default=None, type=int, help="Serve this process's Prometheus metrics on this port.")
@click.option("--no-alerts", is_flag=True, help="Do not check for overdue and failing syncs in this process.")
@click.pass_obj
def worker(obj, queues: str | None, concurrency: int, metrics_port: int | None, no_alerts: bool) -> None:
    """Execute sync runs and segment refreshes sent by the scheduler and the API (needs CONNECTOR_BROKER_URL)."""
    from connector.workers.worker import run_worker

    if not obj.settings.operations.broker_url:
        raise click.UsageError("CONNECTOR_BROKER_URL is not set: a worker needs a broker (amqp://… or redis://…)")
    names = [q.strip() for q in queues.split(",") if q.strip()] if queues else None
    try:
        run_worker(
            obj.db, obj.settings, queues=names, concurrency=concurrency, metrics_port=metrics_port, alerts=not no_alerts
        )
    finally:
        obj.db.dispose()


commands: list[click.Command] = [worker]
