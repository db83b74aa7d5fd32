"""Exclusive runs: the running ``sync_runs`` row is the sync's lease.

A partial unique index (``uq_sync_runs_running``: ``sync_id`` where ``status = 'running' AND NOT dry_run``) lets
one run of a sync be ``running`` at a time, on PostgreSQL and SQLite alike, across threads, processes and machines
that share the database. Claiming a run is inserting that row; a second claimant hits the index and records a
``skipped`` run instead.

The owner renews ``heartbeat_at`` every ``HEARTBEAT_SECONDS``. A process that dies (kill -9, a lost machine)
leaves its row ``running``; a claimant that finds its heartbeat older than ``lease_seconds`` (default
``LEASE_SECONDS`` = 60 s) marks it ``failed`` ("abandoned") and takes over, so a crash blocks a sync for at most
a minute. The active scheduler also sweeps every sync's abandoned runs every ``SWEEP_SECONDS``
(``connector.scheduling.jobs.expire_abandoned_runs``), so a run whose process died is ``failed`` ("abandoned") in
the history soon after its lease expires even if the sync never runs again. A run whose heartbeat finds the row no
longer ``running`` has lost its lease and stops.

Dry runs are not exclusive (they write no record state); one left ``running`` by a dead process is marked failed
by the next claim, like any other.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connector.db import Database
from connector.models import RunStatus, SyncRun, utcnow

log = logging.getLogger(__name__)

LEASE_SECONDS = 60.0
HEARTBEAT_SECONDS = 10.0


def _fresh(now: datetime, lease_seconds: float):
    return SyncRun.heartbeat_at >= now - timedelta(seconds=lease_seconds)


def expire_abandoned(session: Session, sync_id: int | None, lease_seconds: float = LEASE_SECONDS) -> int:
    """Mark the runs of a sync (``None``: of every sync, the scheduler's sweep) whose owner stopped sending
    heartbeats as failed; returns how many."""
    now = utcnow()
    of_sync = SyncRun.sync_id == sync_id if sync_id is not None else SyncRun.sync_id.is_not(None)
    result = session.execute(
        update(SyncRun)
        .where(
            of_sync,
            SyncRun.status == RunStatus.RUNNING,
            ~_fresh(now, lease_seconds) | SyncRun.heartbeat_at.is_(None),
        )
        .values(
            status=RunStatus.FAILED,
            finished_at=now,
            first_error=f"abandoned: no heartbeat for {lease_seconds:g} s (the process running it stopped)",
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


def claim_run(
    session: Session,
    sync_id: int,
    trigger: str,
    *,
    dry_run: bool = False,
    lease_seconds: float = LEASE_SECONDS,
) -> SyncRun:
    """Insert the run of a sync: ``running`` when it holds the lease, else ``skipped`` (naming the running one).

    A dry run always gets a ``running`` row. The caller commits at once, so the lease is visible to others.
    """
    now = utcnow()
    if not dry_run:
        expire_abandoned(session, sync_id, lease_seconds)
    run = SyncRun(
        sync_id=sync_id,
        status=RunStatus.RUNNING,
        trigger=trigger,
        dry_run=dry_run,
        started_at=now,
        heartbeat_at=now,
    )
    try:
        with session.begin_nested():
            session.add(run)
    except IntegrityError:
        holder = running_run(session, sync_id, lease_seconds=None)
        return skip_run(
            session, sync_id, trigger, f"skipped: run {holder.id if holder else '?'} of this sync is in progress"
        )
    return run


def skip_run(session: Session, sync_id: int, trigger: str, reason: str) -> SyncRun:
    """Record a run that did not happen, and why."""
    now = utcnow()
    run = SyncRun(
        sync_id=sync_id, status=RunStatus.SKIPPED, trigger=trigger, started_at=now, finished_at=now, first_error=reason
    )
    session.add(run)
    session.flush()
    return run


def heartbeat(session: Session, run_id: int) -> bool:
    """Renew a run's lease; False when the run is no longer running (taken over as abandoned): stop then."""
    result = session.execute(
        update(SyncRun)
        .where(SyncRun.id == run_id, SyncRun.status == RunStatus.RUNNING)
        .values(heartbeat_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)


def running_run(session: Session, sync_id: int, *, lease_seconds: float | None = LEASE_SECONDS) -> SyncRun | None:
    """The run holding the sync's lease (not counting dry runs), or None. With ``lease_seconds``, a run whose
    heartbeat is older does not count (its process is gone; the next claimant takes over)."""
    stmt = select(SyncRun).where(
        SyncRun.sync_id == sync_id, SyncRun.status == RunStatus.RUNNING, SyncRun.dry_run.is_(False)
    )
    if lease_seconds is not None:
        stmt = stmt.where(_fresh(utcnow(), lease_seconds))
    return session.scalars(stmt.limit(1)).first()


def is_running(session: Session, sync_id: int, *, lease_seconds: float = LEASE_SECONDS) -> bool:
    """Whether a (non-dry) run of the sync is in progress, by a process that is still alive."""
    now = utcnow()
    return bool(
        session.scalar(
            select(
                exists().where(
                    SyncRun.sync_id == sync_id,
                    SyncRun.status == RunStatus.RUNNING,
                    SyncRun.dry_run.is_(False),
                    _fresh(now, lease_seconds),
                )
            )
        )
    )


class LeaseHeartbeat(threading.Thread):
    """Renews the run's lease while it runs; sets ``lost`` when another process took the run over."""

    def __init__(self, db: Database, run_id: int, interval: float = HEARTBEAT_SECONDS) -> None:
        super().__init__(name=f"sync-run-{run_id}-heartbeat", daemon=True)
        self.db, self.run_id, self.interval = db, run_id, interval
        self.done = threading.Event()
        self.lost = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            try:
                with self.db.session() as session:
                    alive = heartbeat(session, self.run_id)
            except Exception as exc:  # the database may be back by the next beat; the lease has slack for that
                log.warning("run %s: heartbeat failed: %s", self.run_id, exc)
                continue
            if not alive:
                self.lost.set()
                return
