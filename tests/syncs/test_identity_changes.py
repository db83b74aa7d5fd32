"""A subject whose identity (email) changes is moved in place at HubSpot: the contact it was delivered as gets the
new email and the new values, by its remote id; no second contact appears, in upsert and in mirror mode."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select, update

from connector.models import RecordState, RunStatus, SyncRecord, User
from connector.syncs import run_sync
from tests.syncs.conftest import FAST_RETRY, create_sync, make_segment, seed_users, set_members


@pytest.fixture
def run(database, settings):
    def run_(sync_id: int):
        outcome = run_sync(database, sync_id, secret_key=settings.secret_key, retry=FAST_RETRY)
        assert outcome.status == RunStatus.SUCCEEDED, outcome.first_error
        return outcome

    return run_


def change_email(database, user_id: int, email: str, **attributes) -> None:
    with database.session() as session:
        user = session.get(User, user_id)
        user.email = email
        user.attributes = {**user.attributes, **attributes}


def record(database, sync_id: int, subject_id: int) -> SyncRecord:
    with database.session() as session:
        row = session.scalars(
            select(SyncRecord).where(SyncRecord.sync_id == sync_id, SyncRecord.subject_id == subject_id)
        ).one()
        session.expunge(row)
        return row


@pytest.mark.parametrize("mode", ["upsert", "mirror"])
def test_new_email_updates_the_existing_contact_by_id(client, tenant, database, sandbox, run, mode):
    ids = seed_users(
        database,
        tenant.workspace_id,
        [{"email": "old@example.com", "attributes": {"plan": "free"}}, {"email": "other@example.com"}],
    )
    vip = make_segment(database, tenant.workspace_id, "VIP")
    set_members(database, tenant.workspace_id, vip, ids)
    extra = {"mode": mode, "segment_ids": [vip]} if mode == "mirror" else {}
    setup = create_sync(client, tenant, sandbox, **extra)
    run(setup.sync_id)
    contact_id = sandbox.record("contacts", "old@example.com", "email")["id"]

    change_email(database, ids[0], "new@example.com", plan="pro")
    changed = run(setup.sync_id)

    assert changed.counts.changed == 1
    emails = sorted(r["properties"]["email"] for r in sandbox.records("contacts"))
    assert emails == ["new@example.com", "other@example.com"]
    moved = sandbox.record("contacts", "new@example.com", "email")
    assert moved["id"] == contact_id
    assert moved["properties"]["plan"] == "pro"
    assert moved["properties"]["segments"] == "VIP"
    assert sandbox.record("contacts", "old@example.com", "email") is None
    stored = record(database, setup.sync_id, ids[0])
    assert (stored.identity, stored.remote_id, stored.state) == ("new@example.com", contact_id, RecordState.SYNCED)
    assert run(setup.sync_id).counts.unchanged == 2


def test_without_a_known_remote_id_the_contact_is_found_by_its_old_email(client, tenant, database, sandbox, run):
    ids = seed_users(database, tenant.workspace_id, [{"email": "before@example.com"}])
    setup = create_sync(client, tenant, sandbox)
    run(setup.sync_id)
    contact_id = sandbox.record("contacts", "before@example.com", "email")["id"]
    with database.session() as session:
        session.execute(update(SyncRecord).values(remote_id=None))

    change_email(database, ids[0], "after@example.com")
    run(setup.sync_id)

    assert [r["id"] for r in sandbox.records("contacts")] == [contact_id]
    assert sandbox.record("contacts", contact_id)["properties"]["email"] == "after@example.com"


def test_a_contact_deleted_at_hubspot_meanwhile_is_created_under_the_new_email(client, tenant, database, sandbox, run):
    ids = seed_users(database, tenant.workspace_id, [{"email": "gone@example.com"}])
    setup = create_sync(client, tenant, sandbox)
    run(setup.sync_id)
    contact_id = sandbox.record("contacts", "gone@example.com", "email")["id"]
    sandbox.handle(
        "POST",
        "/crm/v3/objects/contacts/batch/archive",
        {"Authorization": f"Bearer {sandbox.token}"},
        f'{{"inputs": [{{"id": "{contact_id}"}}]}}'.encode(),
    )

    change_email(database, ids[0], "back@example.com")
    outcome = run(setup.sync_id)

    assert outcome.counts.changed == 1
    assert [r["properties"]["email"] for r in sandbox.records("contacts")] == ["back@example.com"]
    assert record(database, setup.sync_id, ids[0]).remote_id != contact_id


@pytest.mark.parametrize(("action", "op"), [("clear", "upsert"), ("remove", "remove")])
def test_mirror_sync_to_a_destination_that_cannot_move_records_clears_or_removes_the_old_one(
    client, tenant, database, run, tmp_path, action, op
):
    ids = seed_users(database, tenant.workspace_id, [{"email": "was@example.com"}])
    vip = make_segment(database, tenant.workspace_id, "VIP")
    set_members(database, tenant.workspace_id, vip, ids)
    destination = client.post(
        tenant.url("/destinations"),
        json={"name": "files", "type": "file", "config": {"directory": str(tmp_path)}},
        headers=tenant.headers,
    ).get_json()["id"]
    response = client.post(
        tenant.url("/syncs"),
        json={
            "name": "mirror",
            "destination_id": destination,
            "subject_type": "users",
            "destination_object": "people",
            "mappings": [
                {"source": {"kind": "field", "name": "email"}, "destination": "email"},
                {"source": {"kind": "computed", "name": "Segments"}, "destination": "segments"},
            ],
            "identity": {"destination": "email"},
            "mode": "mirror",
            "mirror_action": action,
            "segment_ids": [vip],
        },
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.get_json()
    sync_id = response.get_json()["id"]
    run(sync_id)

    change_email(database, ids[0], "is@example.com")
    outcome = run(sync_id)

    lines = [json.loads(line) for line in (tmp_path / "people.jsonl").read_text().splitlines()]
    after = lines[1:]
    old = [line for line in after if line["identity"] == "was@example.com"]
    new = [line for line in after if line["identity"] == "is@example.com"]
    assert [line["op"] for line in old] == [op]
    if action == "clear":
        assert old[0]["properties"] == {"segments": ""}
    assert [line["op"] for line in new] == ["upsert"]
    assert (outcome.counts.changed, outcome.counts.removed) == (1, 1)
    assert record(database, sync_id, ids[0]).identity == "is@example.com"


def test_update_mode_moves_a_contact_hubspot_already_had(client, tenant, database, sandbox, run):
    sandbox.handle(
        "POST",
        "/crm/v3/objects/contacts/batch/create",
        {"Authorization": f"Bearer {sandbox.token}"},
        json.dumps({"inputs": [{"properties": {"email": "crm@example.com"}}]}).encode(),
    )
    contact_id = sandbox.record("contacts", "crm@example.com", "email")["id"]
    ids = seed_users(database, tenant.workspace_id, [{"email": "crm@example.com", "attributes": {"plan": "free"}}])
    setup = create_sync(client, tenant, sandbox, mode="update")
    run(setup.sync_id)

    change_email(database, ids[0], "renamed@example.com", plan="pro")
    run(setup.sync_id)

    (only,) = sandbox.records("contacts")
    assert only["id"] == contact_id
    assert (only["properties"]["email"], only["properties"]["plan"]) == ("renamed@example.com", "pro")
