"""Create-only syncs: records HubSpot has already are left alone and counted as existing; new ones are created."""

from __future__ import annotations

from hubspot import HubSpot
from hubspot.crm.contacts import SimplePublicObjectInputForCreate

from connector.syncs.engine import run_sync
from tests.syncs.conftest import FAST_RETRY, SANDBOX_TOKEN, create_sync, seed_users


def test_existing_records_are_left_alone_and_new_ones_created(client, tenant, database, settings, sandbox):
    HubSpot(access_token=SANDBOX_TOKEN, host=sandbox.url, retry=False).crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"email": "ann@example.com", "firstname": "Edited in HubSpot"})
    )
    seed_users(
        database,
        tenant.workspace_id,
        [
            {"email": "ann@example.com", "attributes": {"first_name": "Ann"}},
            {"email": "bob@example.com", "attributes": {"first_name": "Bob"}},
            {"email": "cy@example.com", "attributes": {"first_name": "Cy"}},
        ],
    )
    made = create_sync(client, tenant, sandbox, mode="create")

    outcome = run_sync(database, made.sync_id, secret_key=settings.secret_key, retry=FAST_RETRY)

    assert outcome.status.value == "succeeded", outcome.first_error
    assert (outcome.counts.existing, outcome.counts.added) == (1, 2)
    stored = {r["properties"]["email"]: r["properties"] for r in sandbox.records("contacts")}
    assert stored["ann@example.com"]["firstname"] == "Edited in HubSpot"
    assert stored["bob@example.com"]["firstname"] == "Bob"
    run = client.get(tenant.url(f"/syncs/{made.sync_id}/runs/{outcome.run_id}"), headers=tenant.headers).get_json()
    assert run["counts"]["existing"] == 1

    # Nothing changed: nothing is sent again, the existing record included.
    again = run_sync(database, made.sync_id, secret_key=settings.secret_key, retry=FAST_RETRY)
    assert (again.counts.existing, again.counts.added, again.counts.unchanged) == (0, 0, 3)


def test_create_only_is_refused_by_destinations_that_cannot_tell_existing_records(
    client, tenant, database, settings, tmp_path
):
    seed_users(database, tenant.workspace_id, [{"email": "ann@example.com"}])
    destination = client.post(
        tenant.url("/destinations"),
        json={"name": "files", "type": "file", "config": {"directory": str(tmp_path)}},
        headers=tenant.headers,
    ).get_json()
    sync = client.post(
        tenant.url("/syncs"),
        json={
            "name": "to files",
            "destination_id": destination["id"],
            "subject_type": "users",
            "destination_object": "people",
            "mappings": [{"source": {"kind": "field", "name": "email"}, "destination": "email"}],
            "identity": {"destination": "email"},
            "mode": "create",
        },
        headers=tenant.headers,
    )
    assert sync.status_code == 201, sync.get_json()

    outcome = run_sync(database, sync.get_json()["id"], secret_key=settings.secret_key, retry=FAST_RETRY)

    assert outcome.status.value == "failed"
    assert "create-only" in outcome.first_error
    assert list(tmp_path.iterdir()) == []
