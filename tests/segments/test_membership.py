"""Evaluation into stored membership: differences only, history, dependency order, sliding windows, cadence."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select

from connector.models import SegmentMembership, SubjectType
from connector.segments import service
from connector.segments.evaluated import Evaluation
from connector.segments.run import refresh_segments
from connector.segments.sliding import refresh_cadence, refresh_time_relative_segments, time_relative_workspaces
from tests.segments.factories import NOW, Data
from tests.segments.support import PRO, history, members, segments_of

RECENT_OFFER_VIEWS = {
    "type": "page_view",
    "url": {"operator": "contains", "value": "/offers/"},
    "window": {"within_last": {"amount": 7, "unit": "days"}},
}


@pytest.fixture
def data(database) -> Data:
    return Data(database)


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def create(database, data, name, conditions, subject_type="user") -> int:
    with database.session() as session:
        return service.create_segment(
            session, data.workspace_id, name=name, subject_type=subject_type, conditions=conditions
        ).id


def refresh(database, data, segment_ids=None) -> Evaluation:
    with database.session() as session:
        return refresh_segments(session, data.workspace_id, segment_ids)


def set_plan(database, user_id, plan):
    from connector.models import User

    with database.session() as session:
        session.get(User, user_id).attributes = {"plan": plan}


def test_enter_exit_and_reenter_are_kept_as_history(database, data, clock):
    ann = data.user(attributes={"plan": "pro"})
    pro = create(database, data, "Pro", PRO)

    set_plan(database, ann, "free")
    left = refresh(database, data)
    set_plan(database, ann, "pro")
    refresh(database, data)

    assert left.counts == {pro: (0, 1)} and left.changed == {SubjectType.USER: {ann}}
    assert history(database, pro) == [(ann, "entered"), (ann, "exited"), (ann, "entered")]
    assert members(database, pro) == {ann}


def test_only_differences_move(database, data, clock):
    ann, bob = data.user(attributes={"plan": "pro"}), data.user(attributes={"plan": "pro"})
    pro = create(database, data, "Pro", PRO)
    with database.session() as session:
        entered_before = session.scalar(select(SegmentMembership.entered_at).where(SegmentMembership.subject_id == ann))

    clock.shift(timedelta(hours=1))
    carl = data.user(attributes={"plan": "pro"})
    set_plan(database, bob, "free")
    evaluation = refresh(database, data)

    assert evaluation.counts == {pro: (1, 1)}
    assert evaluation.changed == {SubjectType.USER: {bob, carl}}
    with database.session() as session:
        entered_after = session.scalar(select(SegmentMembership.entered_at).where(SegmentMembership.subject_id == ann))
    assert entered_after == entered_before
    written = history(database, pro)
    assert written[:2] == [(ann, "entered"), (bob, "entered")]
    assert set(written[2:]) == {(carl, "entered"), (bob, "exited")}


def test_person_leaves_segment_when_views_age_out(database, data, clock):
    ann = data.user()
    data.page_view(ann, "https://shop.example/offers/premium", at=NOW - timedelta(days=6))
    recent = create(database, data, "Recent offer viewers", RECENT_OFFER_VIEWS)
    assert members(database, recent) == {ann}
    assert segments_of(database, ann) == ["Recent offer viewers"]

    clock.shift(timedelta(days=1, hours=1))
    with database.session() as session:
        totals = refresh_time_relative_segments(session)

    assert totals == {"workspaces": 1, "segments": 1, "entered": 0, "exited": 1}
    assert members(database, recent) == set()
    assert history(database, recent) == [(ann, "entered"), (ann, "exited")]
    assert segments_of(database, ann) == []


def test_time_relative_refresh_leaves_other_segments_and_workspaces_alone(database, data, clock):
    other = Data(database)
    ann = data.user(attributes={"plan": "pro"})
    pro = create(database, data, "Pro", PRO)
    create(database, other, "Theirs", RECENT_OFFER_VIEWS)
    set_plan(database, ann, "free")  # behind the engine's back: only a full refresh of Pro would notice

    with database.session() as session:
        totals = refresh_time_relative_segments(session, workspace_id=data.workspace_id)

    assert totals["segments"] == 0
    assert members(database, pro) == {ann}
    with database.session() as session:
        assert time_relative_workspaces(session) == [other.workspace_id]


def test_cadence_follows_the_smallest_time_unit(database, data):
    with database.session() as session:
        assert refresh_cadence(session) is None
    create(database, data, "Pro", PRO)
    with database.session() as session:
        assert refresh_cadence(session) is None

    create(database, data, "Weekly viewers", RECENT_OFFER_VIEWS)
    with database.session() as session:
        assert refresh_cadence(session) == timedelta(minutes=15)

    hourly = {**RECENT_OFFER_VIEWS, "window": {"within_last": {"amount": 3, "unit": "hours"}}}
    create(database, data, "Hourly viewers", hourly)
    with database.session() as session:
        assert refresh_cadence(session) == timedelta(minutes=5)

    signed_up = {
        "type": "attribute",
        "field": "created_at",
        "operator": "within_last",
        "value": {"amount": 30, "unit": "minutes"},
    }
    create(database, data, "Just signed up", signed_up)
    with database.session() as session:
        assert refresh_cadence(session) == timedelta(minutes=1)


def test_referencing_segments_follow_the_referenced_ones(database, data, clock):
    ann = data.user(attributes={"plan": "pro"})
    data.event(ann, "purchase", at=NOW - timedelta(days=1))
    pro = create(database, data, "Pro", PRO)
    buyers = create(database, data, "Buyers", {"type": "event", "name": "purchase"})
    both = create(
        database,
        data,
        "Pro buyers",
        {
            "type": "all",
            "children": [{"type": "segment", "segment_id": pro}, {"type": "segment", "segment_id": buyers}],
        },
    )
    outsiders = create(database, data, "Not pro buyers", {"type": "segment", "operator": "not_in", "segment_id": both})
    assert members(database, both) == {ann} and members(database, outsiders) == set()

    set_plan(database, ann, "free")
    evaluation = refresh(database, data, [pro])  # only Pro is asked for; its dependents follow for Ann

    assert set(evaluation.counts) == {pro, both, outsiders}
    assert members(database, both) == set() and members(database, outsiders) == {ann}
    assert segments_of(database, ann) == ["Buyers", "Not pro buyers"]


def test_user_segments_follow_account_segments_and_back(database, data, clock):
    ann = data.user()
    acme = data.account(attributes={"tier": "gold"}, users=[ann])
    gold = create(
        database,
        data,
        "Gold accounts",
        {"type": "attribute", "name": "tier", "operator": "eq", "value": "gold"},
        "account",
    )
    gold_people = create(database, data, "People at gold accounts", {"type": "account_segment", "segment_id": gold})
    with_gold_people = create(
        database,
        data,
        "Accounts with gold people",
        {"type": "users", "quantifier": "any", "condition": {"type": "segment", "segment_id": gold_people}},
        "account",
    )
    assert members(database, gold_people) == {ann} and members(database, with_gold_people) == {acme}

    from connector.models import Account

    with database.session() as session:
        session.get(Account, acme).attributes = {"tier": "silver"}
    refresh(database, data, [gold])

    assert members(database, gold_people) == set()
    assert members(database, with_gold_people) == set()
    assert segments_of(database, acme, "account") == []


def test_evaluation_order_puts_referenced_segments_first(database, data, clock):
    ann = data.user(attributes={"plan": "pro"})
    # The referencing segment has the smaller id: id order would evaluate it against stale membership.
    first = create(database, data, "Placeholder", {"type": "all"})
    second = create(database, data, "Pro", PRO)
    with database.session() as session:
        segment = service.get_segment(session, data.workspace_id, first)
        service.update_segment(session, segment, conditions={"type": "segment", "segment_id": second})
    set_plan(database, ann, "free")

    evaluation = refresh(database, data)

    assert evaluation.counts == {second: (0, 1), first: (0, 1)}
    assert list(evaluation.counts) == [second, first]
    assert members(database, first) == set()
