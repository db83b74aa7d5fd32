"""Reconciling keeps one job per scheduled, enabled sync, in step with the syncs table."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import delete, update

from connector.models import Sync
from connector.scheduling import next_run_time, notify_sync_changed, reconcile_jobs, start_scheduler
from connector.scheduling.jobs import RUN_SYNC_REF, sync_job_id

T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


@pytest.fixture
def scheduler(manual_scheduler):
    return manual_scheduler(paused=True)


def sync_jobs(scheduler) -> dict[str, object]:
    return {job.id: job for job in scheduler.get_jobs(jobstore="default") if job.id.startswith("sync:")}


def set_sync(database, sync_id: int, **values) -> None:
    with database.session() as session:
        session.execute(update(Sync).where(Sync.id == sync_id).values(**values))


def test_reconcile_adds_a_job_per_scheduled_enabled_sync(database, scheduler, make_sync):
    interval = make_sync({"kind": "interval", "minutes": 30})
    cron = make_sync({"kind": "cron", "expression": "0 9 * * 1-5", "timezone": "Europe/Paris"})
    make_sync({"kind": "manual"})
    make_sync({"kind": "interval", "minutes": 5}, enabled=False)

    result = reconcile_jobs(scheduler, database)

    assert sorted(result.added) == sorted([sync_job_id(interval), sync_job_id(cron)])
    jobs = sync_jobs(scheduler)
    assert set(jobs) == {sync_job_id(interval), sync_job_id(cron)}
    job = jobs[sync_job_id(interval)]
    assert (job.func_ref, job.args, job.coalesce, job.misfire_grace_time) == (RUN_SYNC_REF, (interval,), True, 3600)
    # Ticks must reach the sync engine's lock (which records a skip), not stop at APScheduler's instance count.
    assert job.max_instances > 1


def test_reconcile_follows_changed_disabled_and_deleted_syncs(database, scheduler, make_sync):
    changed = make_sync({"kind": "interval", "minutes": 30})
    disabled = make_sync({"kind": "interval", "minutes": 30})
    made_manual = make_sync({"kind": "interval", "minutes": 30})
    deleted = make_sync({"kind": "interval", "minutes": 30})
    untouched = make_sync({"kind": "interval", "minutes": 30})
    with time_machine.travel(T0, tick=False):
        reconcile_jobs(scheduler, database)

    set_sync(database, changed, schedule={"kind": "interval", "minutes": 10})
    set_sync(database, disabled, enabled=False)
    set_sync(database, made_manual, schedule={"kind": "manual"})
    with database.session() as session:
        session.execute(delete(Sync).where(Sync.id == deleted))
    with time_machine.travel(T0 + timedelta(minutes=2), tick=False):
        result = reconcile_jobs(scheduler, database)

    assert result.added == []
    assert result.changed == [sync_job_id(changed)]
    assert sorted(result.removed) == sorted(sync_job_id(i) for i in (disabled, made_manual, deleted))
    assert set(sync_jobs(scheduler)) == {sync_job_id(changed), sync_job_id(untouched)}
    # The changed schedule counts from the change; the untouched one keeps its time.
    assert next_run_time(database, changed) == T0 + timedelta(minutes=12)
    assert next_run_time(database, untouched) == T0 + timedelta(minutes=30)


def test_sync_with_an_invalid_schedule_gets_no_job_and_the_others_still_do(database, scheduler, make_sync, caplog):
    broken = make_sync({"kind": "interval", "minutes": 30})
    # The API refuses such a schedule; one written to the table by other means must not stop the others.
    set_sync(database, broken, schedule={"kind": "cron", "expression": "every morning", "timezone": "Europe/Paris"})
    fine = make_sync({"kind": "interval", "minutes": 30})

    result = reconcile_jobs(scheduler, database)

    assert set(sync_jobs(scheduler)) == {sync_job_id(fine)}
    assert list(result.invalid) == [sync_job_id(broken)]
    assert f"no job for sync:{broken}" in caplog.text


def test_reconcile_leaves_jobs_it_does_not_manage(database, scheduler, make_sync):
    scheduler.add_job("tests.scheduling.recorder:record", "interval", minutes=5, args=["x"], id="other:job")
    reconcile_jobs(scheduler, database)
    assert scheduler.get_job("other:job") is not None


def test_notify_sync_changed_does_nothing_without_a_scheduler_in_this_process(database, make_sync):
    make_sync({"kind": "interval", "minutes": 30})
    assert notify_sync_changed(1) is False


def test_notify_sync_changed_makes_the_active_scheduler_reconcile_at_once(database, make_sync, stoppers):
    handle = start_scheduler(database, retry_seconds=0.1, heartbeat_seconds=0.2, reconcile_seconds=3600)
    stoppers.append(handle)
    assert handle.wait_until_active(10)
    sync_id = make_sync({"kind": "interval", "minutes": 30})
    assert next_run_time(database, sync_id) is None  # the periodic reconcile is an hour away

    assert notify_sync_changed(sync_id) is True

    deadline = time.monotonic() + 10
    while next_run_time(database, sync_id) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert next_run_time(database, sync_id) is not None
