"""The Celery tasks. A worker process binds its database and settings first (``bind_worker``)."""

from __future__ import annotations

import logging
import threading

from connector.config import Settings
from connector.db import Database
from connector.scheduling.jobs import refresh_time_relative_segments
from connector.workers.app import REFRESH_SEGMENTS_TASK, RUN_SYNC_TASK, celery_app
from connector.workers.runs import Deferred, start_sync_task

log = logging.getLogger("connector.workers")

_bound: dict[str, object] = {}
_bound_lock = threading.Lock()


def bind_worker(db: Database, settings: Settings, name: str) -> None:
    with _bound_lock:
        _bound.update(db=db, settings=settings, name=name)


def _context() -> tuple[Database, Settings, str]:
    with _bound_lock:
        if not _bound:
            raise RuntimeError("this process is not a connector worker: no database is bound")
        return _bound["db"], _bound["settings"], _bound["name"]


@celery_app.task(name=RUN_SYNC_TASK, bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def run_sync_task(self, sync_id: int, trigger: str = "schedule", run_id: int | None = None, takeover: bool = False):
    """Run a sync (or the run ``run_id`` already claimed); put back while its destination is busy or while a dead
    worker's run of it still holds the lease."""
    db, settings, name = _context()
    step = start_sync_task(
        db,
        settings,
        sync_id=sync_id,
        trigger=trigger,
        run_id=run_id,
        takeover=takeover,
        delivery=f"{self.request.id}:{self.request.retries}",
        worker=name,
    )
    if isinstance(step, Deferred):
        log.debug("sync %s: task put back for %.1f s (%s)", sync_id, step.countdown, step.reason)
        raise self.retry(
            kwargs={"sync_id": sync_id, "trigger": trigger, "run_id": run_id, "takeover": step.takeover},
            countdown=step.countdown,
        )
    log.info("sync %s: task done, run %s %s", sync_id, step.run_id, step.status)
    return {"run_id": step.run_id, "status": step.status}


@celery_app.task(name=REFRESH_SEGMENTS_TASK, acks_late=True, reject_on_worker_lost=True)
def refresh_segments_task() -> None:
    """Re-evaluate the time-relative segments of every workspace (each workspace in its own transaction)."""
    _context()
    refresh_time_relative_segments()


def worker_context() -> tuple[Database, Settings, str]:
    """The database, settings and name this worker process was bound to."""
    return _context()
