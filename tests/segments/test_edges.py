"""Membership follows window edges: only the subjects whose edge passed are re-evaluated
(``connector.segments.edges``)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from connector.models import Segment, SegmentMembership, SubjectType, utcnow
from connector.segments import service
from connector.segments.edges import edge_plan, refresh_window_edges
from connector.segments.run import refresh_segments
from connector.segments.validation import parse_conditions
from tests.segments.factories import Data

T = utcnow().replace(microsecond=0)


def within(amount: int, unit: str) -> dict:
    return {"within_last": {"amount": amount, "unit": unit}}


TWO_DAYS = {"amount": 2, "unit": "days"}
LOGGED_IN_THIS_WEEK = {"type": "event", "name": "login", "window": within(7, "days")}


@pytest.fixture
def data(database, tenant) -> Data:
    return Data(database, workspace_id=tenant.workspace_id, now=T)


def saved(database, data: Data, conditions: dict, subject_type: str = "user", at=T) -> int:
    """A segment saved and evaluated at ``at``."""
    with database.session() as session:
        segment = service.create_segment(
            session, data.workspace_id, name=f"s{at.timestamp()}{len(str(conditions))}", subject_type=subject_type,
            conditions=conditions, evaluate=False,
        )  # fmt: skip
        refresh_segments(session, data.workspace_id, [segment.id], now=at)
        segment.evaluation = "done"
        return segment.id


def members(database, segment_id: int) -> set[int]:
    with database.session() as session:
        query = select(SegmentMembership.subject_id).where(SegmentMembership.segment_id == segment_id)
        return set(session.scalars(query))


def follow(database, data: Data, now):
    with database.session() as session:
        return refresh_window_edges(session, data.workspace_id, now=now)


def test_a_person_leaves_a_window_at_the_first_check_after_the_edge_and_no_one_else_is_read(database, data):
    leaving = data.user(email="ann@example.com")
    staying = data.user(email="bob@example.com")
    data.event(leaving, "login", at=T - timedelta(days=7) + timedelta(seconds=20))
    data.event(staying, "login", at=T - timedelta(days=2))
    segment_id = saved(database, data, LOGGED_IN_THIS_WEEK)
    assert members(database, segment_id) == {leaving, staying}

    early = follow(database, data, T + timedelta(seconds=10))
    assert (early.subjects, members(database, segment_id)) == (0, {leaving, staying})

    result = follow(database, data, T + timedelta(seconds=40))
    assert (result.subjects, result.exited) == (1, 1)
    assert members(database, segment_id) == {staying}
    with database.session() as session:
        assert session.get(Segment, segment_id).edges_checked_at == T + timedelta(seconds=40)


def test_the_edges_of_minute_windows_are_followed_too(database, data):
    ann = data.user(email="ann@example.com")
    data.event(ann, "login", at=T - timedelta(minutes=4, seconds=50))
    segment_id = saved(database, data, {"type": "event", "name": "login", "window": within(5, "minutes")})

    follow(database, data, T + timedelta(seconds=30))

    assert members(database, segment_id) == set()


def test_an_event_dated_in_the_future_enters_when_its_instant_comes(database, data):
    now = utcnow().replace(microsecond=0)  # the event's received_at is the real time
    ann = data.user(email="ann@example.com")
    data.event(ann, "login", at=now + timedelta(minutes=2))  # received now, dated two minutes ahead
    segment_id = saved(database, data, LOGGED_IN_THIS_WEEK, at=now)
    assert members(database, segment_id) == set()

    follow(database, data, now + timedelta(minutes=1))
    assert members(database, segment_id) == set()
    follow(database, data, now + timedelta(minutes=2, seconds=30))
    assert members(database, segment_id) == {ann}


def test_signed_up_within_a_day_is_followed_on_created_at(database, data):
    new = data.user(email="new@example.com", created_at=T - timedelta(hours=23, minutes=59, seconds=40))
    data.user(email="old@example.com", created_at=T - timedelta(days=3))
    recent = {
        "type": "attribute",
        "field": "created_at",
        "operator": "within_last",
        "value": {"amount": 1, "unit": "days"},
    }
    segment_id = saved(database, data, recent)
    assert members(database, segment_id) == {new}

    result = follow(database, data, T + timedelta(seconds=30))

    assert result.subjects == 1
    assert members(database, segment_id) == set()


def test_an_account_segment_aggregating_users_follows_their_window_edges(database, data):
    ann = data.user(email="ann@example.com")
    acme = data.account(name="Acme", users=[ann])
    data.account(name="Idle")
    data.event(ann, "login", at=T - timedelta(days=7) + timedelta(seconds=5))
    active = {"type": "users", "quantifier": "any", "condition": LOGGED_IN_THIS_WEEK}
    segment_id = saved(database, data, active, subject_type="account")
    assert members(database, segment_id) == {acme}

    result = follow(database, data, T + timedelta(seconds=30))

    assert result.subjects == 1
    assert members(database, segment_id) == set()


def test_a_segment_that_references_one_following_an_edge_follows_it(database, data):
    ann = data.user(email="ann@example.com")
    data.event(ann, "login", at=T - timedelta(days=7) + timedelta(seconds=5))
    active = saved(database, data, LOGGED_IN_THIS_WEEK)
    inactive = saved(database, data, {"type": "none", "children": [{"type": "segment", "segment_id": active}]})
    assert (members(database, active), members(database, inactive)) == ({ann}, set())

    follow(database, data, T + timedelta(seconds=30))

    assert (members(database, active), members(database, inactive)) == (set(), {ann})


@pytest.mark.parametrize(
    ("conditions", "covered"),
    [
        (LOGGED_IN_THIS_WEEK, True),
        ({"type": "page_view", "window": within(3, "hours")}, True),
        ({"type": "device", "last_seen": within(30, "minutes")}, True),
        ({"type": "attribute", "name": "trial_ends", "operator": "within_last", "value": TWO_DAYS}, False),
        ({"type": "event", "name": "buy", "filters": [
            {"property": "at", "operator": "more_than_ago", "value": TWO_DAYS}]}, False),
    ],
)  # fmt: skip
def test_only_segments_whose_relative_parts_are_all_window_edges_are_followed(conditions, covered):
    assert edge_plan(parse_conditions(conditions, SubjectType.USER), SubjectType.USER).covered is covered
