"""Exactly one scheduler is active per database; the others stand by and take over when it goes away."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.executors.debug import DebugExecutor
from sqlalchemy import text

from connector.db import Database
from connector.scheduling import create_scheduler, start_scheduler
from connector.scheduling.leadership import LeaseLock
from connector.scheduling.store import DatabaseJobStore
from tests.scheduling import recorder
from tests.scheduling.recorder import RECORD_REF

FAST = {"retry_seconds": 0.1, "heartbeat_seconds": 0.1, "reconcile_seconds": 3600}


def wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def process_database(database_url, stoppers):
    """A database of its own for each simulated process (its own engine and pool), like separate processes."""

    def make() -> Database:
        db = Database(database_url)
        stoppers.append(db)
        return db

    return make


@pytest.fixture
def two_schedulers(database, process_database, stoppers):
    """Two schedulers competing for one database; returns (active, standby) once one of them is active."""
    first = start_scheduler(process_database(), **FAST)
    stoppers.append(first)
    second = start_scheduler(process_database(), **FAST)
    stoppers.append(second)
    assert wait_for(lambda: first.active or second.active)
    time.sleep(0.5)  # several retries of the standby
    assert first.active != second.active, "exactly one scheduler must be active"
    return (first, second) if first.active else (second, first)


def runs_by(handle) -> list:
    return [run for run in recorder.runs("tick") if run.thread.startswith(f"scheduler-{handle.holder}")]


def test_two_schedulers_on_one_database_run_a_job_exactly_once_per_tick(two_schedulers):
    active, standby = two_schedulers
    active.scheduler.add_job(RECORD_REF, "interval", seconds=1, args=["tick"], id="test:tick")

    time.sleep(3.5)

    ticks = recorder.runs("tick")
    assert 1 <= len(ticks) <= 4, ticks  # one scheduler: about three; two would make about six
    assert ticks == runs_by(active)
    assert not standby.active


def test_standby_takes_over_when_the_active_scheduler_stops(two_schedulers):
    active, standby = two_schedulers
    active.scheduler.add_job(RECORD_REF, "interval", seconds=1, args=["tick"], id="test:tick")
    assert wait_for(lambda: len(runs_by(active)) >= 1)

    active.shutdown()

    assert standby.wait_until_active(10)
    # The job was persisted by the first scheduler and is now run by the second.
    assert wait_for(lambda: len(runs_by(standby)) >= 1)


def test_standby_takes_over_when_the_postgresql_lock_holder_dies(database, two_schedulers):
    if database.dialect != "postgresql":
        pytest.skip("the advisory lock is PostgreSQL's; other databases use the lease (tested below)")
    active, standby = two_schedulers
    active.scheduler.add_job(RECORD_REF, "interval", seconds=1, args=["tick"], id="test:tick")

    # The server ends the holder's session, as when its process dies or its network goes.
    with database.engine.connect() as connection:
        killed = connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        ).all()
    assert killed == [(True,)]

    assert standby.wait_until_active(10)
    assert wait_for(lambda: not active.active)
    assert wait_for(lambda: len(runs_by(standby)) >= 1)
    settled = len(runs_by(active))
    time.sleep(1.5)
    assert len(runs_by(active)) == settled, "the scheduler that lost its lock must start nothing more"


def test_lease_is_exclusive_and_passes_to_another_holder_when_it_expires(database):
    first = LeaseLock(database, "first", lease_seconds=0.6)
    second = LeaseLock(database, "second", lease_seconds=0.6)

    assert first.acquire()
    assert not second.acquire()
    assert first.check() and first.holds()

    time.sleep(0.8)  # the first holder stops renewing, as if its process had died
    assert not first.holds()
    assert second.acquire()
    assert not first.check(), "a holder whose lease was taken over must learn it lost it"
    assert not first.acquire()

    second.release()
    assert first.acquire()


def test_scheduler_that_does_not_hold_the_lock_starts_no_job(database, stoppers):
    holds = {"lock": False}
    scheduler = create_scheduler(database, holds_lock=lambda: holds["lock"], executor=DebugExecutor())
    scheduler.start()
    stoppers.append(scheduler)
    due = datetime.now(UTC) - timedelta(seconds=1)
    scheduler.add_job(RECORD_REF, "date", run_date=due, args=["tick"], id="test:tick", misfire_grace_time=None)

    scheduler._process_jobs()
    assert recorder.runs("tick") == []

    holds["lock"] = True
    scheduler._process_jobs()
    assert len(recorder.runs("tick")) == 1


def test_a_look_for_due_jobs_that_began_before_shutdown_hands_nothing_to_the_closed_executor(database, caplog):
    scheduler = create_scheduler(database, secret_key="test-secret-key")
    scheduler.start(paused=True)
    due = datetime.now(UTC) - timedelta(seconds=1)
    scheduler.add_job(RECORD_REF, "date", run_date=due, args=["late"], id="test:late", misfire_grace_time=None)
    scheduler.shutdown()
    # The scheduler's thread, already past its wait when shutdown() began, now looks for due jobs.
    with caplog.at_level(logging.ERROR, logger="apscheduler"):
        scheduler._process_jobs()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    # Not handed over, so not used up: the job is still in the database, due for the next scheduler.
    store = DatabaseJobStore(database.engine)
    store.start(scheduler, "default")
    assert store.lookup_job("test:late") is not None
    assert recorder.runs("late") == []
