"""``planner.leaving_page`` looks at the sync's records a window at a time, and still pages by leavers."""

from __future__ import annotations

from sqlalchemy import insert

from connector.models import RecordState, SubjectType, SyncRecord, utcnow
from connector.syncs import planner
from connector.syncs.planner import Scope, leaving_page
from tests.syncs.conftest import create_sync, make_segment, seed_users, set_members


def test_leavers_are_found_across_windows_and_paged_by_subject(client, tenant, database, sandbox, monkeypatch):
    people = seed_users(database, tenant.workspace_id, [{"email": f"w{i}@example.com"} for i in range(10)])
    segment = make_segment(database, tenant.workspace_id, "Some")
    leavers = {people[1], people[6], people[8]}
    set_members(database, tenant.workspace_id, segment, [p for p in people if p not in leavers])
    setup = create_sync(client, tenant, sandbox, segment_ids=[segment])
    gone = max(people) + 100  # a subject erased since it was synced
    removed = people[3]  # out of scope too, but removed at the destination already
    with database.session() as session:
        session.execute(
            insert(SyncRecord),
            [
                {
                    "sync_id": setup.sync_id,
                    "subject_id": p,
                    "state": RecordState.REMOVED if p == removed else RecordState.SYNCED,
                    "updated_at": utcnow(),
                }
                for p in [*people, gone]
            ],
        )
    set_members(database, tenant.workspace_id, segment, [p for p in people if p not in leavers | {removed}])
    monkeypatch.setattr(planner, "PAGE_SIZE", 3)  # windows of three records: most hold no leaver
    scope = Scope(tenant.workspace_id, SubjectType.USER, (segment,))

    with database.session() as session:
        first = leaving_page(session, scope, setup.sync_id, 0, limit=2)
        rest = leaving_page(session, scope, setup.sync_id, first[-1].subject_id, limit=2)
        only = leaving_page(session, scope, setup.sync_id, 0, limit=10, subject_ids=[people[0], people[8], gone])

    assert [r.subject_id for r in first] == sorted(leavers)[:2]
    assert [r.subject_id for r in rest] == [sorted(leavers)[2], gone]
    assert [r.subject_id for r in only] == [people[8], gone]
