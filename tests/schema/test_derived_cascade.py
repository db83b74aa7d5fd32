"""Derived tables have no foreign keys (migration 0005): their delete cascade is kept by triggers on the parents.

``segment_memberships`` and ``segment_membership_history`` go with their segment, ``computed_values`` with its
workspace, whether the parent is deleted by the service, by raw SQL, or by a workspace's cascade to its segments.
Inserting them checks nothing: the segment engine is the only writer.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import func, insert, inspect, select, text

from connector.models import ComputedValue, SegmentMembership, SegmentMembershipEvent
from connector.segments import service
from tests.segments.factories import NOW, Data
from tests.segments.support import PRO

EVERYONE = {"type": "all"}


@dataclass
class Workspace:
    id: int
    pro: int
    everyone: int


def _workspace(database, data: Data) -> Workspace:
    data.user(attributes={"plan": "pro"})
    data.user(attributes={"plan": "pro"})
    data.user(attributes={"plan": "free"})
    with database.session() as session:
        pro = service.create_segment(session, data.workspace_id, name="Pro", subject_type="user", conditions=PRO)
        everyone = service.create_segment(
            session, data.workspace_id, name="Everyone", subject_type="user", conditions=EVERYONE
        )
        return Workspace(data.workspace_id, pro.id, everyone.id)


@pytest.fixture
def ours(database) -> Workspace:
    return _workspace(database, Data(database))


@pytest.fixture
def theirs(database) -> Workspace:
    return _workspace(database, Data(database))


def _by_segment(database, model) -> dict[int, int]:
    with database.session() as session:
        rows = session.execute(select(model.segment_id, func.count()).group_by(model.segment_id))
        return dict(rows.all())


def _computed_by_workspace(database) -> dict[int, int]:
    with database.session() as session:
        rows = session.execute(select(ComputedValue.workspace_id, func.count()).group_by(ComputedValue.workspace_id))
        return dict(rows.all())


def _snapshot(database) -> tuple[dict[int, int], dict[int, int], dict[int, int]]:
    return (
        _by_segment(database, SegmentMembership),
        _by_segment(database, SegmentMembershipEvent),
        _computed_by_workspace(database),
    )


def test_the_fixtures_fill_every_derived_table(database, ours, theirs):
    members, history, computed = _snapshot(database)
    for ws in (ours, theirs):
        assert members[ws.pro] == 2 and members[ws.everyone] == 3
        assert history[ws.pro] == 2 and history[ws.everyone] == 3
        assert computed[ws.id] >= 3


def _delete_through_the_service(database, workspace_id: int, segment_id: int) -> None:
    with database.session() as session:
        service.delete_segment(session, service.get_segment(session, workspace_id, segment_id))


def _delete_with_raw_sql(database, workspace_id: int, segment_id: int) -> None:
    with database.engine.begin() as conn:
        conn.execute(text("DELETE FROM segments WHERE id = :id"), {"id": segment_id})


@pytest.mark.parametrize("delete_segment", [_delete_through_the_service, _delete_with_raw_sql])
def test_deleting_a_segment_removes_its_membership_and_history_only(database, ours, theirs, delete_segment):
    members, history, computed = _snapshot(database)
    delete_segment(database, ours.id, ours.pro)

    assert _snapshot(database) == (
        {k: v for k, v in members.items() if k != ours.pro},
        {k: v for k, v in history.items() if k != ours.pro},
        computed,
    )


def test_deleting_a_workspace_with_raw_sql_removes_its_derived_rows_only(database, ours, theirs):
    members, history, computed = _snapshot(database)
    with database.engine.begin() as conn:
        conn.execute(text("DELETE FROM workspaces WHERE id = :id"), {"id": ours.id})

    gone = {ours.pro, ours.everyone}
    assert _snapshot(database) == (
        {k: v for k, v in members.items() if k not in gone},
        {k: v for k, v in history.items() if k not in gone},
        {k: v for k, v in computed.items() if k != ours.id},
    )
    assert set(members) - gone == {theirs.pro, theirs.everyone}


def test_derived_rows_are_written_without_any_parent_check(database, ours):
    """A segment (workspace) id that does not exist is accepted: nothing but the engine writes these tables."""
    missing = 10**9
    with database.engine.begin() as conn:
        conn.execute(
            insert(SegmentMembership.__table__),
            [{"segment_id": missing, "subject_id": i, "entered_at": NOW} for i in range(1, 1001)],
        )
        conn.execute(
            insert(SegmentMembershipEvent.__table__),
            [{"segment_id": missing, "subject_id": i, "change": "entered", "at": NOW} for i in range(1, 1001)],
        )
        conn.execute(
            insert(ComputedValue.__table__),
            [{"subject_type": "user", "subject_id": 10**9, "name": "Segments", "workspace_id": missing, "value": []}],
        )

    members, history, computed = _snapshot(database)
    assert members[missing] == 1000 and history[missing] == 1000 and computed[missing] == 1
    assert members[ours.pro] == 2


def test_the_derived_tables_have_no_foreign_keys_and_the_triggers_exist(database):
    with database.engine.connect() as conn:
        inspector = inspect(conn)
        for table in ("segment_memberships", "segment_membership_history", "computed_values"):
            assert inspector.get_foreign_keys(table) == [], table
        if database.dialect == "postgresql":
            query = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
        else:
            query = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        triggers = set(conn.execute(text(query)).scalars())
    assert {"trg_segments_delete_derived", "trg_workspaces_delete_computed"} <= triggers
