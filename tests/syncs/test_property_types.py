"""A destination property of the wrong type for the mapped value stops the run at prepare, before any record; a dry
run reports it too, having changed nothing at the destination."""

from __future__ import annotations

from hubspot import HubSpot
from hubspot.crm.properties import PropertyCreate

from connector.syncs.engine import run_sync
from tests.syncs.conftest import FAST_RETRY, SANDBOX_TOKEN, create_sync, seed_users


def test_segments_into_a_number_property_is_refused_before_any_record_is_sent(
    client, tenant, database, settings, sandbox
):
    HubSpot(access_token=SANDBOX_TOKEN, host=sandbox.url, retry=False).crm.properties.core_api.create(
        "contacts",
        PropertyCreate(
            name="segments", label="Segments", type="number", field_type="number", group_name="contactinformation"
        ),
    )
    seed_users(database, tenant.workspace_id, [{"email": "ann@example.com"}])
    made = create_sync(client, tenant, sandbox)

    outcome = run_sync(database, made.sync_id, secret_key=settings.secret_key, retry=FAST_RETRY)

    assert outcome.status.value == "failed"
    assert "contacts.segments is of type number" in outcome.first_error
    assert "a list of names" in outcome.first_error
    assert sandbox.records("contacts") == []


def test_a_dry_run_reports_the_wrong_type_and_creates_nothing(client, tenant, database, settings, sandbox):
    hubspot = HubSpot(access_token=SANDBOX_TOKEN, host=sandbox.url, retry=False).crm.properties.core_api
    hubspot.create(
        "contacts",
        PropertyCreate(
            name="segments", label="Segments", type="number", field_type="number", group_name="contactinformation"
        ),
    )
    seed_users(database, tenant.workspace_id, [{"email": "ann@example.com", "attributes": {"plan": "pro"}}])
    made = create_sync(client, tenant, sandbox)
    before = sandbox.stats()

    outcome = run_sync(database, made.sync_id, secret_key=settings.secret_key, retry=FAST_RETRY, dry_run=True)

    assert outcome.dry_run and outcome.status.value == "failed"
    assert "contacts.segments is of type number" in outcome.first_error
    # Read only: the property the real run would create (plan) is not there, and nothing was written.
    names = {p.name for p in hubspot.get_all("contacts").results}
    assert "plan" not in names
    assert sandbox.records("contacts") == []
    assert sandbox.stats()["rate_limited"] == before["rate_limited"]

    # The property fixed by hand: the dry run plans the record.
    hubspot.archive("contacts", "segments")
    planned = run_sync(database, made.sync_id, secret_key=settings.secret_key, retry=FAST_RETRY, dry_run=True)
    assert planned.status.value == "succeeded", planned.first_error
    assert planned.counts.added == 1
    assert sandbox.records("contacts") == []


def test_a_number_into_a_text_property_is_fine(client, tenant, database, settings, sandbox):
    HubSpot(access_token=SANDBOX_TOKEN, host=sandbox.url, retry=False).crm.properties.core_api.create(
        "contacts",
        PropertyCreate(name="plan", label="Plan", type="string", field_type="text", group_name="contactinformation"),
    )
    seed_users(database, tenant.workspace_id, [{"email": "ann@example.com", "attributes": {"plan": "pro"}}])
    made = create_sync(client, tenant, sandbox)

    outcome = run_sync(database, made.sync_id, secret_key=settings.secret_key, retry=FAST_RETRY)

    assert outcome.status.value == "succeeded", outcome.first_error
