"""Automation through the real scheduler: daily segment actions at local time across daylight saving, one catch-up
after downtime, once with two schedulers; playbooks fired by the process job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from connector.automation.segment_actions import delete_segment_action, get_segment_action
from connector.models import PlaybookFiring, SegmentAction, SegmentActionRun
from connector.scheduling import reconcile_jobs
from connector.scheduling.automation import PROCESS_JOB_ID, next_segment_action_run
from tests.automation.support import PRO, ingest, make_action, make_playbook, make_segment, make_sequence


def runs(database) -> list[tuple[str, datetime]]:
    with database.session() as session:
        rows = session.execute(select(SegmentActionRun.run_date, SegmentActionRun.started_at).order_by("id")).all()
    return [(d, at) for d, at in rows]


@pytest.fixture
def action(database, tenant):
    def make(time: str = "09:00", timezone: str = "Europe/Berlin") -> int:
        ws = tenant.workspace_id
        segment = make_segment(database, ws, f"Pro {time}", PRO)
        sequence = make_sequence(database, ws, name=f"Welcome {time}")
        ingest(database, ws, {"external_id": "ann", "attributes": {"plan": "pro"}})
        return make_action(
            database, ws, segment, sequence_id=sequence, time=time, timezone=timezone, fallback_channel="email"
        )

    return make


def run_at(scheduler, traveller, *instants: datetime) -> None:
    for instant in instants:
        traveller.move_to(instant)
        scheduler._process_jobs()


@pytest.mark.parametrize(
    ("start", "fire_times"),
    [
        # Spring forward on 2026-03-29: 09:00 Berlin is 08:00 UTC before, 07:00 UTC after.
        (
            datetime(2026, 3, 27, 12, 0, tzinfo=UTC),
            [datetime(2026, 3, 28, 8, 0, tzinfo=UTC), datetime(2026, 3, 29, 7, 0, tzinfo=UTC)],
        ),
        # Fall back on 2026-10-25: 07:00 UTC before, 08:00 UTC after.
        (
            datetime(2026, 10, 23, 12, 0, tzinfo=UTC),
            [datetime(2026, 10, 24, 7, 0, tzinfo=UTC), datetime(2026, 10, 25, 8, 0, tzinfo=UTC)],
        ),
    ],
)
def test_a_daily_action_runs_at_local_time_on_both_sides_of_a_clock_change(
    database, manual_scheduler, action, start, fire_times
):
    action_id = action("09:00", "Europe/Berlin")
    with time_machine.travel(start, tick=False) as traveller:
        scheduler = manual_scheduler()
        reconcile_jobs(scheduler, database)
        for fire_time in fire_times:
            with database.session() as session:
                assert next_segment_action_run(session.get(SegmentAction, action_id)) == fire_time
            # A minute early nothing runs; on the minute it runs, once.
            run_at(scheduler, traveller, fire_time - timedelta(minutes=1), fire_time, fire_time + timedelta(minutes=5))
    assert [at for _, at in runs(database)] == fire_times
    assert [d for d, _ in runs(database)] == [t.astimezone(UTC).date().isoformat() for t in fire_times]


def test_days_missed_while_down_are_one_catch_up_run(database, manual_scheduler, action):
    action("09:00", "Europe/Berlin")
    with time_machine.travel(datetime(2026, 6, 1, 6, 0, tzinfo=UTC), tick=False) as traveller:
        scheduler = manual_scheduler()
        reconcile_jobs(scheduler, database)
        scheduler.shutdown(wait=False)
        # Down for three days; back on 4 June at 08:00 local, before that day's 09:00.
        traveller.move_to(datetime(2026, 6, 4, 6, 0, tzinfo=UTC))
        scheduler = manual_scheduler()
        reconcile_jobs(scheduler, database)
        run_at(scheduler, traveller, datetime(2026, 6, 4, 6, 0, 1, tzinfo=UTC), datetime(2026, 6, 4, 7, 0, tzinfo=UTC))
    assert [d for d, _ in runs(database)] == ["2026-06-03", "2026-06-04"]


def test_a_run_due_during_a_short_downtime_runs_when_the_scheduler_is_back(database, manual_scheduler, action):
    action("03:00", "Europe/Berlin")
    with time_machine.travel(datetime(2026, 6, 1, 0, 50, tzinfo=UTC), tick=False) as traveller:  # 02:50 local
        scheduler = manual_scheduler()
        reconcile_jobs(scheduler, database)
        scheduler.shutdown(wait=False)
        traveller.move_to(datetime(2026, 6, 1, 1, 30, tzinfo=UTC))  # back at 03:30 local
        scheduler = manual_scheduler()
        reconcile_jobs(scheduler, database)
        run_at(scheduler, traveller, datetime(2026, 6, 1, 1, 30, 1, tzinfo=UTC), datetime(2026, 6, 1, 2, 0, tzinfo=UTC))
    assert [d for d, _ in runs(database)] == ["2026-06-01"]


def test_two_schedulers_on_one_database_run_a_days_action_once(database, manual_scheduler, action):
    action("09:00", "Europe/Berlin")
    fire_time = datetime(2026, 6, 1, 7, 0, tzinfo=UTC)
    with time_machine.travel(fire_time - timedelta(hours=1), tick=False) as traveller:
        first, second = manual_scheduler(), manual_scheduler()
        reconcile_jobs(first, database)
        reconcile_jobs(second, database)
        traveller.move_to(fire_time)
        first._process_jobs()
        second._process_jobs()
    assert [d for d, _ in runs(database)] == ["2026-06-01"]


def test_reconcile_adds_and_removes_automation_jobs(database, tenant, manual_scheduler, action):
    action_id = action("09:00", "Europe/Berlin")
    scheduler = manual_scheduler(paused=True)
    result = reconcile_jobs(scheduler, database)
    assert f"segment-action:{action_id}" in result.added
    assert PROCESS_JOB_ID not in result.added  # nothing to process yet

    pro = make_segment(database, tenant.workspace_id, "Pro again", PRO)
    make_playbook(
        database,
        tenant.workspace_id,
        trigger={"kind": "enters", "segment_id": pro},
        actions=[{"type": "add_tag", "tag": "x"}],
    )
    assert reconcile_jobs(scheduler, database).added == [PROCESS_JOB_ID]

    with database.session() as session:
        delete_segment_action(
            session, get_segment_action(session, tenant.workspace_id, _segment_of(database, action_id))
        )
    assert reconcile_jobs(scheduler, database).removed == [f"segment-action:{action_id}"]


def _segment_of(database, action_id: int) -> int:
    with database.session() as session:
        return session.get(SegmentAction, action_id).segment_id


def test_the_process_job_fires_playbooks_from_the_history(database, tenant, manual_scheduler):
    ws = tenant.workspace_id
    pro = make_segment(database, ws, "Pro", PRO)
    with time_machine.travel(datetime(2026, 6, 1, 12, 0, tzinfo=UTC), tick=False) as traveller:
        playbook = make_playbook(
            database, ws, trigger={"kind": "enters", "segment_id": pro}, actions=[{"type": "add_tag", "tag": "hi"}]
        )
        scheduler = manual_scheduler()
        reconcile_jobs(scheduler, database)
        ingest(database, ws, {"external_id": "ann", "attributes": {"plan": "pro"}})
        run_at(
            scheduler,
            traveller,
            datetime(2026, 6, 1, 12, 0, 5, tzinfo=UTC),
            datetime(2026, 6, 1, 12, 0, 10, tzinfo=UTC),
        )
    with database.session() as session:
        fired = session.scalars(select(PlaybookFiring).where(PlaybookFiring.playbook_id == playbook)).all()
    assert [f.status.value for f in fired] == ["succeeded"]
