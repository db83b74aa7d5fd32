"""Sending work to the workers: what the scheduler's jobs and the API's "run now" call when a broker is set."""

from __future__ import annotations

import logging

from celery import Celery
from sqlalchemy import select

from connector.config import Settings
from connector.db import Database
from connector.models import Sync
from connector.workers.app import JOB_TASKS, REFRESH_SEGMENTS_TASK, RUN_SYNC_TASK, configure_celery, queue_name

log = logging.getLogger("connector.workers")


class CeleryDispatcher:
    """Enqueues sync runs (on their destination's queue), segment refreshes and the other kinds of work."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db, self.settings = db, settings
        self.app = configure_celery(settings, Celery("connector-sender", set_as_current=False))

    def queue_for_sync(self, sync_id: int) -> str:
        with self.db.session() as session:
            destination_id = session.scalar(select(Sync.destination_id).where(Sync.id == sync_id))
        dedicated = self.settings.operations.destination_queues.get(destination_id)
        return queue_name(self.settings, dedicated) if dedicated else queue_name(self.settings)

    def run_sync(self, sync_id: int, trigger: str, run_id: int | None = None) -> str:
        """Enqueue a run of a sync (``run_id``: a run already claimed, e.g. by the API); returns the task id."""
        queue = self.queue_for_sync(sync_id)
        result = self.app.send_task(
            RUN_SYNC_TASK, kwargs={"sync_id": sync_id, "trigger": trigger, "run_id": run_id}, queue=queue
        )
        log.info("sync %s: run queued on %s (task %s)", sync_id, queue, result.id)
        return result.id

    def refresh_time_relative_segments(self) -> str:
        result = self.app.send_task(REFRESH_SEGMENTS_TASK, queue=queue_name(self.settings))
        log.info("time-relative segment refresh queued (task %s)", result.id)
        return result.id

    def enqueue(self, job: str, **ids: int) -> str:
        """Send one of the other kinds of work (``scheduling.dispatch.JOBS``) to the default queue."""
        task = JOB_TASKS.get(job)
        if task is None:
            raise ValueError(f"no task for work of kind {job!r}")
        result = self.app.send_task(task, kwargs=ids, queue=queue_name(self.settings))
        log.info("%s %s queued (task %s)", job, ids, result.id)
        return result.id
