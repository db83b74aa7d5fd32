"""Queries built once and run again: the incremental evaluation's per-level query (its subject ids and the instants
that move with time are parameters), PostgreSQL's statement applying a few membership changes, and the bulk write
of computed values."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import insert, select

from connector.changes import ChangeSet
from connector.computed import SEGMENTS, refresh_computed
from connector.models import ComputedValue, SubjectType
from connector.segments import few
from connector.segments.incremental import apply_changes
from tests.conftest import make_tenant
from tests.segments.factories import NOW, Data
from tests.segments.support import history, members, segments_of

LAST_HOUR = {"type": "event", "name": "purchase", "window": {"within_last": {"amount": 1, "unit": "hours"}}}
SIGNED_UP_TODAY = {
    "type": "attribute",
    "field": "created_at",
    "operator": "within_last",
    "value": {"amount": 1, "unit": "days"},
}


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def create(database, workspace_id: int, name: str, conditions: dict) -> int:
    from connector.segments import service

    with database.session() as session:
        return service.create_segment(session, workspace_id, name=name, subject_type="user", conditions=conditions).id


def test_the_level_query_is_reused_with_other_subjects_and_a_later_instant(database, clock):
    data = Data(database)
    ann, bob = data.user(), data.user()
    data.event(ann, "purchase", at=NOW - timedelta(minutes=30))
    data.event(bob, "purchase", at=NOW - timedelta(minutes=70))
    buyers = create(database, data.workspace_id, "Bought in the last hour", LAST_HOUR)
    change = "event:purchase"

    with database.session() as session:  # bob's purchase is over an hour old: he never entered
        apply_changes(session, data.workspace_id, ChangeSet({bob}, set(), {change}))
    built = len(few._few_queries)
    assert any(key[0] == data.workspace_id and key[1][0] == buyers for key in few._few_queries)
    with database.session() as session:
        apply_changes(session, data.workspace_id, ChangeSet({ann}, set(), {change}))
    assert members(database, buyers) == {ann}

    clock.shift(timedelta(minutes=20))  # ann's purchase is 50 minutes old now
    with database.session() as session:
        apply_changes(session, data.workspace_id, ChangeSet({bob}, set(), {change}))
        apply_changes(session, data.workspace_id, ChangeSet({ann}, set(), {change}))
    assert members(database, buyers) == {ann}

    clock.shift(timedelta(minutes=15))
    with database.session() as session:
        apply_changes(session, data.workspace_id, ChangeSet({ann, bob}, set(), {change}))

    assert members(database, buyers) == set()
    assert history(database, buyers) == [(ann, "entered"), (ann, "exited")]
    assert segments_of(database, ann) == []
    assert len(few._few_queries) == built  # one query, run five times


def test_relative_attribute_dates_move_with_the_reused_query(database, clock):
    data = Data(database)
    ann = data.user(created_at=NOW - timedelta(hours=20))
    fresh = create(database, data.workspace_id, "Signed up today", SIGNED_UP_TODAY)
    with database.session() as session:
        apply_changes(session, data.workspace_id, ChangeSet({ann}, set(), {"attribute"}))
    assert members(database, fresh) == {ann}

    clock.shift(timedelta(hours=5))
    with database.session() as session:
        apply_changes(session, data.workspace_id, ChangeSet({ann}, set(), {"attribute"}))
    assert members(database, fresh) == set()


def test_a_changed_definition_gets_a_query_of_its_own(database, clock):
    from connector.segments import service

    data = Data(database)
    ann = data.user()
    data.event(ann, "purchase", at=NOW - timedelta(hours=2))
    segment_id = create(database, data.workspace_id, "Bought in the last hour", LAST_HOUR)
    with database.session() as session:
        apply_changes(session, data.workspace_id, ChangeSet({ann}, set(), {"event:purchase"}))
    assert members(database, segment_id) == set()

    wider = {**LAST_HOUR, "window": {"within_last": {"amount": 3, "unit": "hours"}}}
    with database.session() as session:
        service.update_segment(session, session.get(service.Segment, segment_id), conditions=wider)
    with database.session() as session:
        apply_changes(session, data.workspace_id, ChangeSet({ann}, set(), {"event:purchase"}))
    assert members(database, segment_id) == {ann}


def test_a_first_bulk_write_that_meets_a_row_written_meanwhile_falls_back_to_an_upsert(database):
    """The first computation of a property writes with a plain INSERT; a row that appeared meanwhile (here: one a
    test puts under another workspace, which the existence check does not see) makes it fail, and the write is
    done again as an upsert instead of failing the evaluation."""
    data = Data(database)
    ann = data.user()
    create(database, data.workspace_id, "Everyone", {"type": "all", "children": []})
    other = make_tenant(database, "other")
    with database.session() as session:
        session.execute(delete_segments_values(data.workspace_id))
        session.execute(
            insert(ComputedValue.__table__).values(
                subject_type="user", subject_id=ann, name=SEGMENTS, workspace_id=other.workspace_id, value=["stale"]
            )
        )
    with database.session() as session:
        refresh_computed(session, data.workspace_id, SubjectType.USER, select_all_users(data.workspace_id))

    assert segments_of(database, ann) == ["Everyone"]


def delete_segments_values(workspace_id: int):
    from sqlalchemy import delete

    cv = ComputedValue.__table__
    return delete(cv).where(cv.c.workspace_id == workspace_id)


def select_all_users(workspace_id: int):
    from connector.models import User

    return select(User.id).where(User.workspace_id == workspace_id)
