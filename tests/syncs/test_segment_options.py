"""HubSpot's multiple-checkbox options follow the segments: an option of a deleted or renamed segment is removed
once no synced record holds it, and a mapping may send only chosen segments (or those of the sync's filter)."""

from __future__ import annotations

import pytest

from connector.models import RunStatus
from connector.syncs import run_sync
from tests.syncs.conftest import (
    CONTACT_MAPPINGS,
    FAST_RETRY,
    create_sync,
    make_segment,
    rename_segment,
    seed_users,
    set_members,
)


@pytest.fixture
def run(database, settings):
    def run_(sync_id: int):
        outcome = run_sync(database, sync_id, secret_key=settings.secret_key, retry=FAST_RETRY)
        assert outcome.status == RunStatus.SUCCEEDED, outcome.first_error
        return outcome

    return run_


def options(sandbox) -> set[str]:
    return {o["value"] for o in sandbox.property("contacts", "segments")["options"]}


def segments_of(sandbox) -> dict[str, str]:
    return {r["properties"]["email"]: r["properties"]["segments"] for r in sandbox.records("contacts")}


def mappings(**segments_mapping) -> list[dict]:
    return [*CONTACT_MAPPINGS[:3], {**CONTACT_MAPPINGS[3], **segments_mapping}]


def test_a_renamed_segment_option_is_replaced_once_every_record_moved(client, tenant, database, sandbox, run):
    ids = seed_users(database, tenant.workspace_id, [{"email": f"r{i}@example.com"} for i in range(3)])
    vip = make_segment(database, tenant.workspace_id, "VIP")
    set_members(database, tenant.workspace_id, vip, ids[:2])
    setup = create_sync(client, tenant, sandbox)
    run(setup.sync_id)
    assert options(sandbox) == {"VIP"}

    rename_segment(database, tenant.workspace_id, vip, "Very Important")
    outcome = run(setup.sync_id)

    assert outcome.counts.changed == 2
    assert options(sandbox) == {"Very Important"}
    assert segments_of(sandbox) == {
        "r0@example.com": "Very Important",
        "r1@example.com": "Very Important",
        "r2@example.com": "",
    }
    before = sandbox.stats()["requests"]
    assert run(setup.sync_id).counts.unchanged == 3
    assert sandbox.stats()["requests"] == before  # nothing left to retire: no request


def test_a_deleted_segment_option_stays_while_a_record_of_another_sync_holds_it(client, tenant, database, sandbox, run):
    ids = seed_users(database, tenant.workspace_id, [{"email": f"d{i}@example.com"} for i in range(2)])
    trial = make_segment(database, tenant.workspace_id, "Trial")
    vip = make_segment(database, tenant.workspace_id, "VIP")
    set_members(database, tenant.workspace_id, trial, ids)
    set_members(database, tenant.workspace_id, vip, ids[:1])
    first = create_sync(client, tenant, sandbox, name="first")
    second = client.post(
        tenant.url("/syncs"),
        json={
            "name": "second",
            "destination_id": first.destination_id,
            "subject_type": "users",
            "destination_object": "contacts",
            "mappings": CONTACT_MAPPINGS,
            "identity": {"destination": "email"},
        },
        headers=tenant.headers,
    ).get_json()["id"]
    run(first.sync_id)
    run(second)
    assert options(sandbox) == {"Trial", "VIP"}

    response = client.delete(tenant.url(f"/segments/{trial}"), headers=tenant.headers)
    assert response.status_code == 204, response.get_json()
    run(first.sync_id)
    assert options(sandbox) == {"Trial", "VIP"}  # the second sync's records still hold Trial

    run(second)
    assert options(sandbox) == {"VIP"}
    assert segments_of(sandbox) == {"d0@example.com": "VIP", "d1@example.com": ""}


def test_a_mapping_limited_to_chosen_segments_sends_only_those(client, tenant, database, sandbox, run):
    ids = seed_users(database, tenant.workspace_id, [{"email": "c@example.com"}])
    for name in ("VIP", "internal: churn risk", "Trial"):
        set_members(database, tenant.workspace_id, make_segment(database, tenant.workspace_id, name), ids)
    setup = create_sync(client, tenant, sandbox, mappings=mappings(segments=["VIP", "Trial"]))
    run(setup.sync_id)
    assert options(sandbox) == {"Trial", "VIP"}
    assert segments_of(sandbox) == {"c@example.com": "Trial;VIP"}


def test_a_mapping_limited_to_the_filter_sends_only_the_filter_segments(client, tenant, database, sandbox, run):
    ids = seed_users(database, tenant.workspace_id, [{"email": "f@example.com"}, {"email": "g@example.com"}])
    customers = make_segment(database, tenant.workspace_id, "Customers")
    internal = make_segment(database, tenant.workspace_id, "internal")
    set_members(database, tenant.workspace_id, customers, ids[:1])
    set_members(database, tenant.workspace_id, internal, ids)
    setup = create_sync(client, tenant, sandbox, mappings=mappings(segments="filter"), segment_ids=[customers])
    run(setup.sync_id)
    assert options(sandbox) == {"Customers"}
    assert segments_of(sandbox) == {"f@example.com": "Customers"}


def test_segments_limits_apply_only_to_the_segments_source(client, tenant, sandbox):
    body = mappings()
    body[1] = {**body[1], "segments": ["VIP"]}
    response = client.post(
        tenant.url("/destinations"),
        json={"name": "hs", "type": "hubspot", "config": {"access_token": "x", "base_url": sandbox.url}},
        headers=tenant.headers,
    )
    response = client.post(
        tenant.url("/syncs"),
        json={
            "name": "bad",
            "destination_id": response.get_json()["id"],
            "subject_type": "users",
            "destination_object": "contacts",
            "mappings": body,
            "identity": {"destination": "email"},
        },
        headers=tenant.headers,
    )
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"].startswith("body.mappings[1]")
