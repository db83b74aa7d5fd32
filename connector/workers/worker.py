"""``connector worker``: one Celery worker process with the service's settings."""

from __future__ import annotations

import logging
import os
import socket

from prometheus_client import start_http_server

from connector.config import Settings
from connector.db import Database
from connector.destinations import preload_destination_types
from connector.operations.checker import AlertChecker
from connector.operations.logs import configure_logging
from connector.process import settle
from connector.scheduling.jobs import bind_database
from connector.syncs.sharedlimit import use_shared_limits
from connector.workers import jobs, tasks  # noqa: F401  (registers the tasks)
from connector.workers.app import configure_celery, queue_name, worker_queues
from connector.workers.runs import forget_deliveries

log = logging.getLogger("connector.workers")

DEFAULT_CONCURRENCY = 4


def worker_name() -> str:
    return f"connector-{socket.gethostname()}-{os.getpid()}"


def run_worker(
    db: Database,
    settings: Settings,
    *,
    queues: list[str] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    metrics_port: int | None = None,
    alerts: bool = True,
) -> None:
    """Consume ``queues`` (short names; default: every queue of the deployment) until SIGTERM / SIGINT.

    Tasks run on threads of this process (``concurrency`` at a time): a run is I/O-bound, and a kill of the process
    closes its broker connection at once, so the broker gives its unacknowledged tasks to another worker.
    """
    configure_logging(settings)
    app = configure_celery(settings)
    name = worker_name()
    bind_database(db, settings.secret_key)
    tasks.bind_worker(db, settings, name)
    use_shared_limits(True)
    if metrics_port:
        start_http_server(metrics_port, addr="127.0.0.1")
    checker = None
    if alerts:
        checker = AlertChecker(db, settings, on_tick=lambda: forget_deliveries(db))
        checker.start()
    names = [queue_name(settings, q) for q in (queues or worker_queues(settings))]
    log.info("%s: consuming %s with %d thread(s)", name, ", ".join(names), concurrency)
    preload_destination_types()
    settle()
    try:
        app.worker_main(
            [
                "worker",
                "--pool=threads",
                f"--concurrency={concurrency}",
                f"--queues={','.join(names)}",
                f"--hostname={name}@%h",
                "--without-gossip",
                "--without-mingle",
                "--loglevel=INFO",
            ]
        )
    finally:
        if checker is not None:
            checker.stop()
