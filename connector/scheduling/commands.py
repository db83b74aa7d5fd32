"""``connector`` commands of this package (collected by ``connector.cli``)."""

from __future__ import annotations

import logging

import click


@click.command("scheduler")
@click.option(
    "--retry-seconds",
    default=5.0,
    show_default=True,
    type=float,
    help="How often a standby process tries to become the active scheduler.",
)
@click.pass_obj
def scheduler(obj, retry_seconds: float) -> None:
    """Run the scheduler as its own process until SIGTERM or SIGINT.

    Several processes may run it: one is active (it holds the database's scheduler lock), the others stand by and
    take over when it stops. Run `connector db upgrade` first.
    """
    from connector.operations.logs import configure_logging
    from connector.scheduling import run_scheduler
    from connector.scheduling.dispatch import use_dispatcher
    from connector.workers.dispatch import CeleryDispatcher

    configure_logging(obj.settings)
    if obj.settings.operations.distributed:  # jobs only enqueue; `connector worker` processes execute
        use_dispatcher(CeleryDispatcher(obj.db, obj.settings))
    # connector.scheduling logs every job's outcome; APScheduler's executor would say the same twice.
    logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)
    try:
        run_scheduler(obj.db, obj.settings, retry_seconds=retry_seconds)
    finally:
        obj.db.dispose()


commands: list[click.Command] = [scheduler]
