""" "Run now" is carried out by the executor scheduled runs use when the active scheduler runs in this process, and
by the process's pool of run threads otherwise; either way the claimed run finishes and is recorded."""

from __future__ import annotations

import time

from connector.models import RunStatus, SyncRun
from connector.scheduling import start_scheduler
from connector.scheduling.runs import start_claimed_run
from connector.syncs.locks import claim_run


def _claim(database, sync_id: int) -> int:
    with database.session() as session:
        return claim_run(session, sync_id, "api").id


def _finished(database, run_id: int, timeout: float = 20) -> SyncRun:
    deadline = time.monotonic() + timeout
    while True:
        with database.session() as session:
            run = session.get(SyncRun, run_id)
            session.expunge(run)
        if run.status != RunStatus.RUNNING or time.monotonic() > deadline:
            return run
        time.sleep(0.05)


def test_run_now_without_a_scheduler_here_runs_in_the_pool(database, make_sync, settings):
    sync_id = make_sync({"kind": "manual"})
    run_id = _claim(database, sync_id)

    assert start_claimed_run(database, run_id, sync_id, "api", secret_key=settings.secret_key) == "pool"

    assert _finished(database, run_id).status == RunStatus.SUCCEEDED


def test_run_now_goes_through_the_active_schedulers_executor(database, make_sync, settings, stoppers):
    handle = start_scheduler(database, settings, retry_seconds=0.1, heartbeat_seconds=0.2, reconcile_seconds=3600)
    stoppers.append(handle)
    assert handle.wait_until_active(10)
    sync_id = make_sync({"kind": "manual"})
    run_id = _claim(database, sync_id)

    assert start_claimed_run(database, run_id, sync_id, "api", secret_key=settings.secret_key) == "scheduler"

    assert _finished(database, run_id).status == RunStatus.SUCCEEDED
