"""The Celery application, configured from the service's settings."""

from __future__ import annotations

from celery import Celery

from connector.config import Settings

RUN_SYNC_TASK = "connector.syncs.run"
REFRESH_SEGMENTS_TASK = "connector.segments.refresh_time_relative"
# The other kinds of work (``scheduling.dispatch.JOBS``), by the name of their task (``workers.jobs``).
JOB_TASKS = {
    "source": "connector.sources.run",
    "source-run": "connector.sources.run_claimed",
    "automation-process": "connector.automation.process",
    "playbook": "connector.automation.fire_playbook",
    "segment-action": "connector.automation.run_segment_action",
    "segment-evaluation": "connector.segments.evaluate",
}
DEFAULT_QUEUE = "default"
# Redis only (RabbitMQ redelivers when the worker's connection closes): how long an unacknowledged task waits
# before it is delivered again. Longer than any run, or a long run would be delivered twice (harmless: the lease
# holds the second delivery back, but it occupies a worker slot).
REDIS_VISIBILITY_TIMEOUT_S = 3 * 3600

celery_app = Celery("connector", set_as_current=False)


def queue_name(settings: Settings, queue: str = DEFAULT_QUEUE) -> str:
    return f"{settings.operations.queue_prefix}{queue}"


def worker_queues(settings: Settings) -> list[str]:
    """Every queue of this deployment, short names: the default one and the dedicated destinations' ones."""
    return [DEFAULT_QUEUE, *sorted(set(settings.operations.destination_queues.values()) - {DEFAULT_QUEUE})]


def configure_celery(settings: Settings, app: Celery | None = None) -> Celery:
    """Point ``app`` (default: the workers' application, which has the tasks) at the broker of ``settings`` and set
    the delivery guarantees the tasks rely on. Senders may use an application of their own (tasks go by name)."""
    ops = settings.operations
    if not ops.broker_url:
        raise RuntimeError("CONNECTOR_BROKER_URL is not set: there is no broker to send work to")
    app = app if app is not None else celery_app
    app.conf.update(
        broker_url=ops.broker_url,
        task_default_queue=queue_name(settings),
        # Acknowledge when done, not when received, and give the message back when the worker dies mid-task.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # One task per free slot: a long run never holds a message another worker could start.
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": REDIS_VISIBILITY_TIMEOUT_S},
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        enable_utc=True,
    )
    return app
