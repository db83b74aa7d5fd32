"""The active scheduler's sweep marks runs whose process died as failed once their lease expires, without waiting
for the same sync to run again."""

from __future__ import annotations

import time
from datetime import timedelta

from connector.models import RunStatus, SyncRun, utcnow
from connector.scheduling import start_scheduler
from connector.scheduling.jobs import expire_abandoned_runs


def _run(database, sync_id: int, *, heartbeat_age_s: float, dry_run: bool = False) -> int:
    with database.session() as session:
        beat = utcnow() - timedelta(seconds=heartbeat_age_s)
        run = SyncRun(
            sync_id=sync_id,
            status=RunStatus.RUNNING,
            trigger="manual",
            dry_run=dry_run,
            started_at=beat,
            heartbeat_at=beat,
        )
        session.add(run)
        session.flush()
        return run.id


def _status(database, run_id: int) -> tuple[RunStatus, str | None]:
    with database.session() as session:
        run = session.get(SyncRun, run_id)
        return run.status, run.first_error


def test_sweep_marks_every_sync_run_with_an_expired_lease_failed_and_leaves_live_runs(database, make_sync):
    first, second = make_sync({"kind": "manual"}), make_sync({"kind": "manual"})
    dead = _run(database, first, heartbeat_age_s=600)
    dead_dry = _run(database, first, heartbeat_age_s=600, dry_run=True)
    alive = _run(database, second, heartbeat_age_s=1)

    assert expire_abandoned_runs(database, lease_seconds=60) == 2

    status, reason = _status(database, dead)
    assert status == RunStatus.FAILED
    assert reason.startswith("abandoned")
    assert _status(database, dead_dry)[0] == RunStatus.FAILED
    assert _status(database, alive) == (RunStatus.RUNNING, None)
    assert expire_abandoned_runs(database, lease_seconds=60) == 0


def test_active_scheduler_sweeps_a_manual_run_whose_process_died(database, make_sync):
    sync_id = make_sync({"kind": "manual"})  # never scheduled: only the sweep can mark it
    dead = _run(database, sync_id, heartbeat_age_s=3600)
    handle = start_scheduler(database, retry_seconds=0.1, heartbeat_seconds=0.2, sweep_seconds=0.2)
    try:
        deadline = time.monotonic() + 10
        while _status(database, dead)[0] == RunStatus.RUNNING and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        handle.shutdown()
    assert _status(database, dead)[0] == RunStatus.FAILED
