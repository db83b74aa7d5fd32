"""Segment actions: the day's members are enrolled on their channel (or the fallback), once a day."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime

import pytest

from connector.automation.segment_actions import occurrence_date, put_segment_action, run_segment_action
from connector.errors import InvalidError
from tests.automation.support import PRO, enrolments, ingest, make_action, make_segment, make_sequence, user_id

MORNING = datetime(2026, 6, 1, 7, 30, tzinfo=UTC)  # 09:30 in Berlin (summer time)


@pytest.fixture
def setup(database, tenant):
    ws = tenant.workspace_id
    segment = make_segment(database, ws, "Pro", PRO)
    sequence = make_sequence(database, ws, channels=["email", "sms"])
    action = make_action(
        database, ws, segment, sequence_id=sequence, time="09:00", timezone="Europe/Berlin", fallback_channel="sms"
    )
    return ws, segment, sequence, action


def test_members_are_enrolled_on_their_channel_or_the_fallback(database, setup):
    ws, _, sequence, action = setup
    ingest(
        database,
        ws,
        {"external_id": "ann", "attributes": {"plan": "pro"}, "default_channel": "email"},
        {"external_id": "bob", "attributes": {"plan": "pro"}, "default_channel": "push"},
        {"external_id": "cat", "attributes": {"plan": "pro"}},
        {"external_id": "dan", "attributes": {"plan": "free"}, "default_channel": "email"},
    )
    with database.session() as session:
        run = run_segment_action(session, action, MORNING)
        assert (run.run_date, run.enrolled, run.already_enrolled) == ("2026-06-01", 3, 0)
        run_id = run.id

    channels = {e.user_id: (e.channel, e.source, e.source_id) for e in enrolments(database, sequence)}
    assert channels == {
        user_id(database, ws, "ann"): ("email", "segment_action", run_id),
        user_id(database, ws, "bob"): ("sms", "segment_action", run_id),  # push is not a channel of the sequence
        user_id(database, ws, "cat"): ("sms", "segment_action", run_id),
    }


def test_members_already_enrolled_are_left_alone_the_next_day(database, setup):
    ws, _, sequence, action = setup
    ingest(database, ws, {"external_id": "ann", "attributes": {"plan": "pro"}})
    with database.session() as session:
        run_segment_action(session, action, MORNING)
    ingest(database, ws, {"external_id": "bob", "attributes": {"plan": "pro"}})
    with database.session() as session:
        run = run_segment_action(session, action, MORNING.replace(day=2))
        assert (run.enrolled, run.already_enrolled) == (1, 1)
    assert len(enrolments(database, sequence)) == 2


def test_an_action_runs_once_a_day(database, setup):
    ws, _, sequence, action = setup
    ingest(database, ws, {"external_id": "ann", "attributes": {"plan": "pro"}})
    with database.session() as session:
        assert run_segment_action(session, action, MORNING) is not None
    with database.session() as session:
        assert run_segment_action(session, action, MORNING.replace(hour=20)) is None


def test_two_schedulers_running_the_same_day_enrol_once(database, setup):
    ws, _, sequence, action = setup
    ingest(database, ws, *({"external_id": f"u{i}", "attributes": {"plan": "pro"}} for i in range(20)))
    barrier = threading.Barrier(2)
    outcomes: list = []

    def worker() -> None:
        barrier.wait()
        with database.session() as session:
            run = run_segment_action(session, action, MORNING)
            outcomes.append(None if run is None else run.enrolled)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes, key=str) == [20, None]
    assert len(enrolments(database, sequence)) == 20


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 3, 29, 7, 0, tzinfo=UTC), date(2026, 3, 29)),  # 09:00 CEST, the day clocks went forward
        (datetime(2026, 3, 29, 6, 59, tzinfo=UTC), date(2026, 3, 28)),
        (datetime(2026, 10, 25, 8, 0, tzinfo=UTC), date(2026, 10, 25)),  # 09:00 CET, the day clocks went back
        (datetime(2026, 10, 25, 7, 59, tzinfo=UTC), date(2026, 10, 24)),
    ],
)
def test_the_day_a_run_is_for_is_the_local_day_of_its_time(now, expected):
    assert occurrence_date("09:00", "Europe/Berlin", now) == expected


def test_a_catch_up_before_todays_time_is_yesterdays_run(database, setup):
    ws, _, _, action = setup
    with database.session() as session:  # down since the day before yesterday; back at 08:00 local
        assert run_segment_action(session, action, datetime(2026, 6, 3, 6, 0, tzinfo=UTC)).run_date == "2026-06-02"
    with database.session() as session:  # today's 09:00 still runs
        assert run_segment_action(session, action, datetime(2026, 6, 3, 7, 0, tzinfo=UTC)).run_date == "2026-06-03"


def test_bad_actions_are_refused_naming_the_field(database, setup):
    ws, segment, sequence, _ = setup
    cases = [
        ({"time": "9am"}, "time"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"fallback_channel": "push"}, "fallback_channel"),
        ({"sequence_id": 999}, "sequence_id"),
    ]
    for change, field in cases:
        data = {"sequence_id": sequence, "time": "09:00", "timezone": "Europe/Berlin", "fallback_channel": "sms"}
        with pytest.raises(InvalidError) as excinfo, database.session() as session:
            put_segment_action(session, ws, segment, {**data, **change})
        assert [e["field"] for e in excinfo.value.errors] == [field]
