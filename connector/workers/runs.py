"""What a worker does with a sync task: start the run (or take over one whose worker died), or put the task back.

``start_sync_task`` decides in one short transaction, with the destination's row locked (PostgreSQL), then runs:

* a task for a run the API claimed runs that run; a task of the scheduler claims a run of its own;
* a sync whose run is in progress: a first delivery records a ``skipped`` run (as the in-process scheduler does);
  a *redelivered* task (its first worker died mid-run: the delivery ledger ``task_deliveries`` has seen it) waits
  until that run's lease expires, then claims the sync, which marks the dead run failed ("abandoned"); the new run
  sends what was not acknowledged;
* a destination already running ``destination_concurrency`` runs (across all workers): the task is put back with a
  short delay, so a slow destination holds at most that many worker slots.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from connector.config import Settings
from connector.db import Database
from connector.models import Destination, RunStatus, Sync, SyncRun, TaskDelivery, utcnow
from connector.syncs.engine import SCHEDULE_TRIGGER, execute_run
from connector.syncs.locks import claim_run, heartbeat, running_run, skip_run

log = logging.getLogger("connector.workers")

# How long a task over its destination's concurrency waits before it is tried again (plus up to half of it).
BUSY_DELAY_S = 0.25
# A redelivered task looks again at least this often while the dead worker's lease runs out.
TAKEOVER_POLL_S = 5.0
ABANDONED = "abandoned"


@dataclass
class Deferred:
    """Put the task back: try again in ``countdown`` seconds; ``takeover``: it waits for a dead run's lease."""

    countdown: float
    takeover: bool
    reason: str


@dataclass
class Finished:
    run_id: int | None
    status: str


def record_delivery(db: Database, delivery: str, worker: str) -> bool:
    """Note that this delivery of a task started; False when it had started before (a redelivery)."""
    try:
        with db.session() as session:
            session.add(TaskDelivery(delivery=delivery[:200], worker=worker[:200]))
    except IntegrityError:
        return False
    return True


def forget_deliveries(db: Database, older_than: timedelta = timedelta(days=1)) -> int:
    with db.session() as session:
        result = session.execute(delete(TaskDelivery).where(TaskDelivery.started_at < utcnow() - older_than))
        return result.rowcount or 0


def destination_runs(session, destination_id: int, lease_seconds: float, exclude_run_id: int | None = None) -> int:
    """Runs (not dry) of the destination's syncs in progress now, by live processes."""
    stmt = (
        select(func.count())
        .select_from(SyncRun)
        .join(Sync, Sync.id == SyncRun.sync_id)
        .where(
            Sync.destination_id == destination_id,
            SyncRun.status == RunStatus.RUNNING,
            SyncRun.dry_run.is_(False),
            SyncRun.heartbeat_at >= utcnow() - timedelta(seconds=lease_seconds),
        )
    )
    if exclude_run_id is not None:
        stmt = stmt.where(SyncRun.id != exclude_run_id)
    return session.scalar(stmt) or 0


def start_sync_task(
    db: Database,
    settings: Settings,
    *,
    sync_id: int,
    trigger: str,
    run_id: int | None,
    takeover: bool,
    delivery: str,
    worker: str,
) -> Deferred | Finished:
    """Run the sync of one task (see the module's docstring), or say when to try again."""
    ops = settings.operations
    lease = ops.run_lease_seconds
    takeover = not record_delivery(db, delivery, worker) or takeover
    with db.session() as session:
        sync = session.get(Sync, sync_id)
        if sync is None:
            return Finished(None, "gone")
        # Takers of one destination queue here (PostgreSQL), so its concurrency is counted exactly.
        session.execute(select(Destination.id).where(Destination.id == sync.destination_id).with_for_update())
        holder = running_run(session, sync_id, lease_seconds=None)
        claimed = None
        if run_id is not None:
            claimed = session.get(SyncRun, run_id)
            if claimed is None or (
                claimed.status != RunStatus.RUNNING and not (claimed.first_error or "").startswith(ABANDONED)
            ):
                return Finished(run_id, claimed.status.value if claimed else "gone")  # done already: a duplicate
        ours = holder is not None and claimed is not None and holder.id == claimed.id
        if holder is not None and (takeover or not ours):
            age = (utcnow() - holder.heartbeat_at).total_seconds() if holder.heartbeat_at else lease
            if age < lease:
                if takeover:
                    wait = min(max(lease - age, 0.5), TAKEOVER_POLL_S)
                    return Deferred(wait, True, f"run {holder.id} may still be going (heartbeat {age:.1f} s ago)")
                run = claim_run(session, sync_id, trigger, lease_seconds=lease)  # records "skipped"
                return Finished(run.id, run.status.value)
        busy = destination_runs(session, sync.destination_id, lease, exclude_run_id=run_id if ours else None)
        if busy >= ops.destination_concurrency:
            if ours:
                heartbeat(session, run_id)  # still wanted: keep the claimed run's lease while it waits
            delay = BUSY_DELAY_S * (1 + random.random() / 2)
            return Deferred(delay, takeover, f"destination {sync.destination_id} runs {busy} run(s) already")
        if ours and not takeover:
            heartbeat(session, run_id)
            execute = run_id
        elif trigger == SCHEDULE_TRIGGER and not sync.enabled:
            run = skip_run(session, sync_id, trigger, "skipped: the sync is disabled")
            return Finished(run.id, run.status.value)
        else:
            run = claim_run(session, sync_id, trigger, lease_seconds=lease)
            if run.status == RunStatus.SKIPPED:
                return Finished(run.id, run.status.value)
            execute = run.id
    if takeover:
        log.info("sync %s: taking over from a worker that stopped; run %s", sync_id, execute)
    outcome = execute_run(
        db,
        execute,
        sync_id,
        trigger,
        secret_key=settings.secret_key,
        heartbeat_seconds=ops.run_heartbeat_seconds,
    )
    return Finished(outcome.run_id, outcome.status.value)
