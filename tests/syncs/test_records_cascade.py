"""Sync records have no foreign key to their sync (a run writes one per acknowledged record): deleting the sync
deletes them by trigger, and their writer locks the sync's row instead of a check per row."""

from __future__ import annotations

from sqlalchemy import delete, func, select

from connector.models import Sync, SyncRecord
from connector.syncs.records import save_delivered
from tests.syncs.conftest import create_sync, seed_users


def delivered(subject_ids: list[int]) -> list[dict]:
    return [
        {"subject_id": s, "identity": f"{s}@example.com", "payload_hash": "h", "payload": {"email": f"{s}@x"}}
        for s in subject_ids
    ]


def records(database) -> dict[int, int]:
    with database.session() as session:
        return dict(session.execute(select(SyncRecord.sync_id, func.count()).group_by(SyncRecord.sync_id)).all())


def test_deleting_a_sync_deletes_its_records(client, tenant, database, sandbox):
    people = seed_users(database, tenant.workspace_id, [{"email": f"r{i}@example.com"} for i in range(3)])
    kept = create_sync(client, tenant, sandbox, name="kept").sync_id
    dropped = create_sync(client, tenant, sandbox, name="dropped").sync_id
    with database.session() as session:
        save_delivered(session, kept, delivered(people))
        save_delivered(session, dropped, delivered(people))
    assert records(database) == {kept: 3, dropped: 3}

    assert client.delete(tenant.url(f"/syncs/{dropped}"), headers=tenant.headers).status_code == 204
    assert records(database) == {kept: 3}


def test_records_acknowledged_after_their_sync_was_deleted_are_not_written(client, tenant, database, sandbox):
    people = seed_users(database, tenant.workspace_id, [{"email": f"a{i}@example.com"} for i in range(2)])
    sync_id = create_sync(client, tenant, sandbox).sync_id
    with database.session() as session:
        session.execute(delete(Sync).where(Sync.id == sync_id))

    with database.session() as session:
        save_delivered(session, sync_id, delivered(people))

    assert records(database) == {}
