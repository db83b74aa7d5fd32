"""The sliding-window re-evaluation of segments is a scheduled job whose cadence follows the time units in use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import delete, select

from connector.models import Event, Segment, SegmentKind, SegmentMembership, SubjectType, User
from connector.scheduling import reconcile_jobs
from connector.scheduling.jobs import REFRESH_SEGMENTS_REF, SEGMENTS_REFRESH_JOB_ID
from connector.scheduling.window_edges import EDGES_JOB_ID
from connector.segments.trees import dependencies, is_time_relative, smallest_time_unit
from connector.segments.validation import parse_conditions

T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


def logged_in_within(amount: int, unit: str) -> dict:
    window = {"within_last": {"amount": amount, "unit": unit}}
    return {"type": "event", "name": "login", "operator": "performed", "window": window}


@pytest.fixture
def make_segment(database, tenant):
    """Save a dynamic user segment with the fields the segment engine derives from its conditions when saved."""

    def make(name: str, conditions: dict) -> int:
        node = parse_conditions(conditions, SubjectType.USER)
        unit = smallest_time_unit(node)
        with database.session() as session:
            segment = Segment(
                workspace_id=tenant.workspace_id,
                name=name,
                subject_type=SubjectType.USER,
                kind=SegmentKind.DYNAMIC,
                conditions=conditions,
                dependencies=sorted(dependencies(node)),
                is_time_relative=is_time_relative(node),
                time_unit_seconds=int(unit.total_seconds()) if unit else None,
            )
            session.add(segment)
            session.flush()
            return segment.id

    return make


@pytest.fixture
def scheduler(manual_scheduler):
    return manual_scheduler()


def refresh_interval(scheduler) -> timedelta | None:
    job = scheduler.get_job(SEGMENTS_REFRESH_JOB_ID)
    return None if job is None else job.trigger.interval


def test_refresh_job_runs_at_the_cadence_of_the_smallest_time_unit_in_use(database, scheduler, make_segment):
    make_segment("pro plan", {"type": "attribute", "name": "plan", "operator": "eq", "value": "pro"})
    reconcile_jobs(scheduler, database)
    assert refresh_interval(scheduler) is None  # nothing moves with time alone: no job

    make_segment("active this week", logged_in_within(7, "days"))
    # With it, the job that follows window edges (every 30 s) whatever the unit.
    assert set(reconcile_jobs(scheduler, database).added) == {SEGMENTS_REFRESH_JOB_ID, EDGES_JOB_ID}
    assert refresh_interval(scheduler) == timedelta(minutes=15)
    assert scheduler.get_job(SEGMENTS_REFRESH_JOB_ID).func_ref == REFRESH_SEGMENTS_REF

    hourly = make_segment("active in the last 3 hours", logged_in_within(3, "hours"))
    assert reconcile_jobs(scheduler, database).changed == [SEGMENTS_REFRESH_JOB_ID]
    assert refresh_interval(scheduler) == timedelta(minutes=5)

    make_segment("active just now", logged_in_within(30, "minutes"))
    reconcile_jobs(scheduler, database)
    assert refresh_interval(scheduler) == timedelta(minutes=1)

    with database.session() as session:
        session.execute(delete(Segment).where(Segment.name != "pro plan", Segment.id != hourly))
    reconcile_jobs(scheduler, database)
    assert refresh_interval(scheduler) == timedelta(minutes=5)

    with database.session() as session:
        session.execute(delete(Segment).where(Segment.id == hourly))
    assert set(reconcile_jobs(scheduler, database).removed) == {SEGMENTS_REFRESH_JOB_ID, EDGES_JOB_ID}
    assert refresh_interval(scheduler) is None


def test_refresh_job_moves_people_in_and_out_of_a_sliding_window(database, scheduler, tenant, make_segment):
    with database.session() as session:
        ada = User(workspace_id=tenant.workspace_id, email="ada@example.com", external_id="ada")
        session.add(ada)
        session.flush()
        session.add(
            Event(
                workspace_id=tenant.workspace_id,
                user_id=ada.id,
                name="login",
                occurred_at=T0 - timedelta(minutes=1),
                message_id="m1",
            )
        )
    segment_id = make_segment("active in the last 2 days", logged_in_within(2, "days"))

    def members() -> set[int]:
        with database.session() as session:
            query = select(SegmentMembership.subject_id).where(SegmentMembership.segment_id == segment_id)
            return set(session.scalars(query))

    with time_machine.travel(T0, tick=False) as traveller:
        reconcile_jobs(scheduler, database)
        traveller.move_to(T0 + timedelta(minutes=15))
        scheduler._process_jobs()
        entered = members()
        traveller.move_to(T0 + timedelta(days=2, minutes=15))  # the login is now older than two days
        scheduler._process_jobs()
        left = members()

    assert entered == {ada.id}
    assert left == set()


def test_refresh_job_takes_one_workspace_at_a_time_and_goes_on_past_a_failure(
    database, scheduler, tenant, make_segment, other_tenant
):
    """A workspace whose refresh fails (here: a stored definition that no longer parses) is logged and skipped;
    the others are refreshed, each in its own transaction."""
    with database.session() as session:
        ada = User(workspace_id=tenant.workspace_id, email="ada@example.com", external_id="ada")
        session.add(ada)
        session.flush()
        session.add(
            Event(workspace_id=tenant.workspace_id, user_id=ada.id, name="login", occurred_at=T0, message_id="m1")
        )
        broken = Segment(
            workspace_id=other_tenant.workspace_id,
            name="broken",
            subject_type=SubjectType.USER,
            kind=SegmentKind.DYNAMIC,
            conditions={"type": "no such leaf"},
            dependencies=[],
            is_time_relative=True,
            time_unit_seconds=86_400,
        )
        session.add(broken)
    segment_id = make_segment("active in the last 2 days", logged_in_within(2, "days"))

    with time_machine.travel(T0, tick=False) as traveller:
        reconcile_jobs(scheduler, database)
        traveller.move_to(T0 + timedelta(minutes=15))
        scheduler._process_jobs()

    with database.session() as session:
        query = select(SegmentMembership.subject_id).where(SegmentMembership.segment_id == segment_id)
        assert set(session.scalars(query)) == {ada.id}
