"""The scheduler against a controlled clock: intervals, cron through daylight saving, restarts and downtime.

The clock is time-machine's (APScheduler reads ``datetime.now``, which it moves); each step processes due jobs
explicitly (``_process_jobs``) in the test's thread (the ``manual_scheduler`` fixture), so nothing depends on real
time passing or on thread timing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from connector.models import RunStatus, SyncRun
from connector.scheduling import next_run_time, next_run_times, reconcile_jobs, trigger_for
from connector.scheduling.jobs import sync_job_id
from connector.scheduling.scheduler import report_overdue_jobs
from tests.scheduling import recorder
from tests.scheduling.recorder import FAIL_REF, RECORD_REF

EVERY_15_MINUTES = {"kind": "interval", "minutes": 15}


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def start(manual_scheduler):
    return manual_scheduler


def add_recording_job(scheduler, label: str, schedule: dict) -> None:
    scheduler.add_job(RECORD_REF, trigger_for(schedule), args=[label], id=f"test:{label}", name=label)


def step(scheduler, traveller, at: datetime) -> None:
    traveller.move_to(at)
    scheduler._process_jobs()


def test_interval_job_runs_every_n_minutes(start):
    t0 = utc(2026, 5, 4, 10, 0)
    with time_machine.travel(t0, tick=False) as traveller:
        scheduler = start()
        add_recording_job(scheduler, "every-15", EVERY_15_MINUTES)
        for minutes in (1, 14, 15, 16, 29, 30, 44, 45):
            step(scheduler, traveller, t0 + timedelta(minutes=minutes))

    assert [run.at for run in recorder.runs("every-15")] == [
        t0 + timedelta(minutes=15),
        t0 + timedelta(minutes=30),
        t0 + timedelta(minutes=45),
    ]


def test_sync_next_run_time_is_read_from_the_job_store(database, start, make_sync):
    every_15 = make_sync(EVERY_15_MINUTES)
    manual = make_sync({"kind": "manual"})
    t0 = utc(2026, 5, 4, 10, 0)
    with time_machine.travel(t0, tick=False):
        reconcile_jobs(start(), database)

    assert next_run_time(database, every_15) == t0 + timedelta(minutes=15)
    assert next_run_time(database, manual) is None
    with database.session() as session:
        assert next_run_times(session, [every_15, manual, 999]) == {
            every_15: t0 + timedelta(minutes=15),
            manual: None,
            999: None,
        }


@pytest.mark.parametrize(
    ("night_start", "expected_run"),
    [
        # 2026-03-29, spring forward: 02:30 does not exist in Paris; the run happens at 03:30 CEST.
        (utc(2026, 3, 28, 22, 0), utc(2026, 3, 29, 1, 30)),
        # 2026-10-25, fall back: 02:30 happens twice in Paris; the run happens once, at the first (CEST).
        (utc(2026, 10, 24, 22, 0), utc(2026, 10, 25, 0, 30)),
    ],
    ids=["spring-forward", "fall-back"],
)
def test_daily_cron_job_in_a_time_zone_runs_once_on_a_daylight_saving_night(start, night_start, expected_run):
    with time_machine.travel(night_start, tick=False) as traveller:
        scheduler = start()
        add_recording_job(
            scheduler, "paris-0230", {"kind": "cron", "expression": "30 2 * * *", "timezone": "Europe/Paris"}
        )
        for step_number in range(1, 6 * 6 + 1):  # six hours in ten-minute steps
            step(scheduler, traveller, night_start + timedelta(minutes=10 * step_number))

    assert [run.at for run in recorder.runs("paris-0230")] == [expected_run]


def test_jobs_persist_across_a_restart_and_keep_their_next_run_time(database, start, make_sync, stoppers):
    sync_id = make_sync({"kind": "cron", "expression": "0 9 * * 1-5", "timezone": "Europe/Paris"})
    t0 = utc(2026, 5, 1, 12, 0)  # a Friday
    with time_machine.travel(t0, tick=False) as traveller:
        first = start()
        reconcile_jobs(first, database)
        add_recording_job(first, "every-15", EVERY_15_MINUTES)
        first.shutdown()

        traveller.move_to(t0 + timedelta(minutes=5))
        second = start()
        jobs = {job.id: job for job in second.get_jobs()}
        assert set(jobs) == {sync_job_id(sync_id), "test:every-15"}
        assert jobs[sync_job_id(sync_id)].next_run_time == utc(2026, 5, 4, 7, 0)  # Monday 09:00 CEST
        assert jobs["test:every-15"].next_run_time == t0 + timedelta(minutes=15)

        again = reconcile_jobs(second, database)
        assert (again.added, again.changed, again.removed) == ([], [], [])
        step(second, traveller, t0 + timedelta(minutes=15))

    assert [run.at for run in recorder.runs("every-15")] == [t0 + timedelta(minutes=15)]


def test_runs_missed_during_downtime_are_coalesced_into_one_and_logged(start, caplog):
    t0 = utc(2026, 5, 4, 10, 0)
    with time_machine.travel(t0, tick=False) as traveller:
        before = start()
        add_recording_job(before, "every-15", EVERY_15_MINUTES)
        before.shutdown()

        # Down from 10:00 to 12:05: the runs of 10:15, 10:30, ... 12:00 (eight) were due meanwhile.
        traveller.move_to(t0 + timedelta(hours=2, minutes=5))
        after = start(paused=True)
        with caplog.at_level(logging.WARNING, logger="connector.scheduling"):
            overdue = report_overdue_jobs(after)
        after.resume()
        after._process_jobs()
        next_time = after.get_job("test:every-15").next_run_time

    assert [(o.job_id, o.missed, o.last, o.runs_now) for o in overdue] == [
        ("test:every-15", 8, t0 + timedelta(hours=2), True)
    ]
    assert "test:every-15: 8 run(s) fell due while no scheduler was running" in caplog.text
    assert "coalesced into one run" in caplog.text
    assert [run.at for run in recorder.runs("every-15")] == [t0 + timedelta(hours=2, minutes=5)]
    assert next_time == t0 + timedelta(hours=2, minutes=15)


def test_run_later_than_the_grace_time_is_a_misfire_logged_and_recorded_as_skipped(database, start, make_sync, caplog):
    sync_id = make_sync({"kind": "cron", "expression": "0 9 * * *", "timezone": "UTC"})
    with time_machine.travel(utc(2026, 5, 4, 8, 0), tick=False) as traveller:
        before = start()
        reconcile_jobs(before, database)
        before.shutdown()

        traveller.move_to(utc(2026, 5, 4, 11, 0))  # two hours after 09:00; the grace time is one hour
        after = start(paused=True)
        with caplog.at_level(logging.WARNING, logger="connector.scheduling"):
            overdue = report_overdue_jobs(after)
            after.resume()
            after._process_jobs()
        next_time = next_run_time(database, sync_id)

    assert [(o.missed, o.runs_now) for o in overdue] == [(1, False)]
    assert f"job sync:{sync_id} missed its run time 2026-05-04T09:00:00+00:00" in caplog.text
    with database.session() as session:
        runs = session.scalars(select(SyncRun).where(SyncRun.sync_id == sync_id)).all()
    assert [(run.status, run.trigger) for run in runs] == [(RunStatus.SKIPPED, "schedule")]
    assert "missed" in runs[0].first_error and "2026-05-04T09:00:00+00:00" in runs[0].first_error
    assert next_time == utc(2026, 5, 5, 9, 0)


def test_job_outcomes_are_logged(start, caplog):
    t0 = utc(2026, 5, 4, 10, 0)
    with time_machine.travel(t0, tick=False) as traveller, caplog.at_level(logging.INFO, "connector.scheduling"):
        scheduler = start()
        add_recording_job(scheduler, "every-15", EVERY_15_MINUTES)
        scheduler.add_job(FAIL_REF, trigger_for(EVERY_15_MINUTES), args=["broken"], id="test:broken")
        step(scheduler, traveller, t0 + timedelta(minutes=15))

    messages = [r.getMessage() for r in caplog.records if r.name == "connector.scheduling"]
    assert "job test:every-15 ran (scheduled for 2026-05-04T10:15:00+00:00)" in messages
    assert (
        "job test:broken failed (scheduled for 2026-05-04T10:15:00+00:00): RuntimeError('broken failed on purpose')"
        in messages
    )
