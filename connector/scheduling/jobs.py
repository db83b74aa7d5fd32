"""The scheduled jobs: module-level functions with plain arguments, so the job store can persist them.

A persisted job names its function by reference (``connector.scheduling.jobs:run_scheduled_sync``) and holds
only ids as arguments; the database a job works on is the one of the scheduler running in this process, bound
when that scheduler starts (``bind_database``), so no URL or secret is ever written into the job store.
Each job is an entry point: it opens its own session.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from connector.db import Database
from connector.errors import NotFoundError
from connector.models import Sync
from connector.scheduling.dispatch import SOURCE_JOB, current_dispatcher
from connector.security import SecretBox
from connector.segments.edges import covered_segments
from connector.segments.sliding import refresh_time_relative_segments as refresh
from connector.segments.sliding import time_relative_workspaces
from connector.sources.runs import run_source
from connector.syncs import run_sync
from connector.syncs.locks import LEASE_SECONDS, expire_abandoned, skip_run

log = logging.getLogger("connector.scheduling")

SYNC_JOB_PREFIX = "sync:"
SEGMENTS_REFRESH_JOB_ID = "segments:refresh-time-relative"
RUN_SYNC_REF = "connector.scheduling.jobs:run_scheduled_sync"
REFRESH_SEGMENTS_REF = "connector.scheduling.jobs:refresh_time_relative_segments"
SOURCE_JOB_PREFIX = "source:"
RUN_SOURCE_REF = "connector.scheduling.jobs:run_scheduled_source"

_bound: tuple[Database, str] | None = None
_bound_lock = threading.Lock()


def sync_job_id(sync_id: int) -> str:
    return f"{SYNC_JOB_PREFIX}{sync_id}"


def sync_id_of(job_id: str) -> int | None:
    """The sync a job id belongs to, or None for other jobs."""
    if job_id.startswith(SYNC_JOB_PREFIX) and job_id[len(SYNC_JOB_PREFIX) :].isdigit():
        return int(job_id[len(SYNC_JOB_PREFIX) :])
    return None


def source_job_id(source_id: int) -> str:
    return f"{SOURCE_JOB_PREFIX}{source_id}"


def bind_database(db: Database, secret_key: str) -> None:
    """Make ``db`` the database the jobs of this process work on (done when a scheduler starts); ``secret_key``
    decrypts destination secrets."""
    global _bound
    with _bound_lock:
        _bound = (db, secret_key)


def unbind_database(db: Database) -> None:
    """Forget ``db`` if it is the bound one (done when its scheduler stops)."""
    global _bound
    with _bound_lock:
        if _bound is not None and _bound[0] is db:
            _bound = None


def bound_database() -> Database:
    return _bound_context()[0]


def _bound_context() -> tuple[Database, str]:
    with _bound_lock:
        if _bound is None:
            raise RuntimeError("no scheduler is running in this process: scheduled jobs have no database")
        return _bound


def run_scheduled_sync(sync_id: int) -> str | None:
    """Run a sync on its schedule and return the run's status.

    The sync engine's lease makes a run exclusive: a tick that finds the previous run still going is recorded
    there as a ``skipped`` run. A sync deleted since the last reconcile is left alone (its job goes at the next).
    """
    dispatcher = current_dispatcher()
    if dispatcher is not None:  # a broker is configured: a worker runs it
        dispatcher.run_sync(sync_id, "schedule")
        return "queued"
    db, secret_key = _bound_context()
    try:
        outcome = run_sync(db, sync_id, trigger="schedule", secret_key=secret_key)
    except LookupError:
        log.info("sync %s no longer exists; its job is removed at the next reconcile", sync_id)
        return None
    log.info("scheduled run %s of sync %s: %s", outcome.run_id, sync_id, outcome.status.value)
    return outcome.status.value


def run_scheduled_source(source_id: int) -> list[str]:
    """Run the enabled models of a source on its schedule; a model whose previous run is still going is skipped.
    A source deleted since the last reconcile is left alone (its job goes at the next)."""
    dispatcher = current_dispatcher()
    if dispatcher is not None:  # a broker is configured: a worker runs it
        dispatcher.enqueue(SOURCE_JOB, source_id=source_id)
        return ["queued"]
    db, secret_key = _bound_context()
    box = SecretBox(secret_key)
    try:
        outcomes = run_source(db, source_id, box, trigger="schedule")
    except NotFoundError:
        log.info("source %s no longer exists; its job is removed at the next reconcile", source_id)
        return []
    log.info("scheduled run of source %s: %s", source_id, [(o.model_id, o.status) for o in outcomes])
    return [o.status for o in outcomes]


def refresh_time_relative_segments() -> None:
    """Re-evaluate the segments whose conditions slide with time (``in the last 7 days``) in every workspace, one
    transaction per workspace: a workspace's segments stay locked only while it is refreshed, and one that fails
    does not hold the others back."""
    dispatcher = current_dispatcher()
    if dispatcher is not None:  # a broker is configured: a worker refreshes
        dispatcher.refresh_time_relative_segments()
        return
    db = bound_database()
    with db.session() as session:
        workspaces = time_relative_workspaces(session)
        followed = set(covered_segments(session))  # the window edges job keeps those current
    totals = {"workspaces": 0, "segments": 0, "entered": 0, "exited": 0}
    for workspace_id in workspaces:
        try:
            with db.session() as session:
                result = refresh(session, workspace_id=workspace_id, exclude=followed)
        except Exception:
            log.exception("time-relative segments of workspace %s could not be refreshed", workspace_id)
            continue
        for key in totals:
            totals[key] += result[key]
    log.info(
        "time-relative segments refreshed: %s segment(s) in %s workspace(s), %s entered, %s exited",
        totals["segments"],
        totals["workspaces"],
        totals["entered"],
        totals["exited"],
    )


def expire_abandoned_runs(db: Database, lease_seconds: float = LEASE_SECONDS) -> int:
    """The sweep: mark every run whose lease expired (its process died) as failed, whatever sync it belongs to, so
    a manual run of a crashed process does not show ``running`` forever. Returns how many were marked."""
    with db.session() as session:
        expired = expire_abandoned(session, None, lease_seconds)
    if expired:
        log.warning("%d run(s) abandoned by a stopped process marked failed", expired)
    return expired


def record_missed_run(db: Database, sync_id: int, scheduled_at: datetime, reason: str) -> None:
    """Write a ``skipped`` run in the sync's history for a scheduled run that did not happen (a misfire), so
    operators see it where they look for runs."""
    with db.session() as session:
        if session.get(Sync, sync_id) is None:
            return
        skip_run(session, sync_id, "schedule", f"{reason} (scheduled for {scheduled_at.isoformat()})")
