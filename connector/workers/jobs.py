"""The Celery tasks of the other kinds of work (``scheduling.dispatch.JOBS``): source runs, automation passes and
firings, background segment evaluations. Each is safe to deliver twice:

* a scheduled source run: each model's run lease refuses a second run while one goes, and its cursor makes a later
  one read only what is new;
* a source run the API claimed: only the first delivery of that run executes it (the delivery ledger);
* a schedule playbook's tick and a segment action carry the time they were due: the firing reference (per minute)
  and the run's local date are those of the tick, so a second delivery finds them taken;
* an automation pass: one at a time across workers (a hold in the delivery ledger); history cursors, unique
  firings and the ``pending`` status of a delivery make a repeated pass find nothing left to do;
* a segment evaluation: a segment no longer ``pending`` is left alone.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete

from connector.automation import install
from connector.automation.firing import fire_on_schedule
from connector.automation.segment_actions import run_segment_action
from connector.db import Database
from connector.models import TaskDelivery, utcnow
from connector.scheduling.automation import process_once
from connector.scheduling.jobs import run_scheduled_source
from connector.security import SecretBox
from connector.segments import evaluation
from connector.sources.runs import claimed_run, execute_run
from connector.workers.app import JOB_TASKS, celery_app
from connector.workers.runs import record_delivery
from connector.workers.tasks import worker_context as _context

log = logging.getLogger("connector.workers")

PROCESS_HOLD = "hold:automation:process"
# A hold older than this belongs to a worker that died mid-pass: the next pass takes it.
PROCESS_HOLD_STALE = timedelta(minutes=5)


def take_hold(db: Database, key: str, worker: str, stale_after: timedelta) -> bool:
    """Hold ``key`` across workers (a row of the delivery ledger); False when another live worker holds it."""
    for _ in range(2):
        if record_delivery(db, key, worker):
            return True
        with db.session() as session:
            cleared = session.execute(
                delete(TaskDelivery).where(
                    TaskDelivery.delivery == key, TaskDelivery.started_at < utcnow() - stale_after
                )
            ).rowcount
        if not cleared:
            return False
    return False


def release_hold(db: Database, key: str, worker: str) -> None:
    with db.session() as session:
        session.execute(delete(TaskDelivery).where(TaskDelivery.delivery == key, TaskDelivery.worker == worker))


def _at(epoch: int | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


@celery_app.task(name=JOB_TASKS["source"], acks_late=True, reject_on_worker_lost=True)
def run_source_task(source_id: int) -> list[str]:
    """A source's scheduled run: every enabled model (one whose run is going is skipped)."""
    _context()
    return run_scheduled_source(source_id)


@celery_app.task(name=JOB_TASKS["source-run"], acks_late=True, reject_on_worker_lost=True)
def run_claimed_source_task(run_id: int) -> str | None:
    """A source model run the API claimed; a second delivery of it does nothing."""
    db, settings, name = _context()
    if not record_delivery(db, f"source-run:{run_id}", name):
        log.info("source run %s: delivered again; it was started before, left alone", run_id)
        return None
    prepared = claimed_run(db, run_id, SecretBox(settings.secret_key))
    if prepared is None:
        log.info("source run %s: no longer running; nothing to do", run_id)
        return None
    return execute_run(db, prepared).status


@celery_app.task(name=JOB_TASKS["automation-process"], acks_late=True, reject_on_worker_lost=True)
def process_automation_task() -> dict[str, int] | None:
    """One automation pass (playbook history, due steps, pending deliveries), one worker at a time."""
    db, settings, name = _context()
    install()
    if not take_hold(db, PROCESS_HOLD, name, PROCESS_HOLD_STALE):
        log.debug("automation pass skipped: another worker is making one")
        return None
    try:
        return process_once(db, settings.secret_key)
    finally:
        release_hold(db, PROCESS_HOLD, name)


@celery_app.task(name=JOB_TASKS["playbook"], acks_late=True, reject_on_worker_lost=True)
def fire_playbook_task(playbook_id: int, at: int | None = None) -> int:
    """A schedule playbook's tick, as of the time it was due."""
    db, _, _ = _context()
    install()
    with db.session() as session:
        return fire_on_schedule(session, playbook_id, now=_at(at))


@celery_app.task(name=JOB_TASKS["segment-action"], acks_late=True, reject_on_worker_lost=True)
def run_segment_action_task(action_id: int, at: int | None = None) -> int | None:
    """A segment action's run for the local date it was due; None when that date's run happened already."""
    db, _, _ = _context()
    install()
    with db.session() as session:
        run = run_segment_action(session, action_id, now=_at(at))
        return None if run is None else run.enrolled


@celery_app.task(name=JOB_TASKS["segment-evaluation"], acks_late=True, reject_on_worker_lost=True)
def evaluate_segment_task(workspace_id: int, segment_id: int) -> str | None:
    """A pending segment's evaluation; a segment evaluated already is left alone."""
    db, _, _ = _context()
    return evaluation.evaluate(db, workspace_id, segment_id)
