"""A sync maps any registered computed property, not only ``Segments``; one a subject type does not have is
refused naming the mapping."""

from __future__ import annotations

from tests.syncs.conftest import CONTACT_MAPPINGS, create_sync

EVENT_COUNT_MAPPING = {
    "source": {"kind": "computed", "name": "event_count"},
    "destination": "events",
    "format": "number",
}


def _post(client, tenant, path: str, batch: list[dict]) -> None:
    response = client.post(tenant.url(path), json={"batch": batch}, headers=tenant.headers)
    assert response.status_code == 200, response.get_json()


def test_event_count_is_synced_with_the_default_for_users_without_events(client, tenant, sandbox):
    _post(client, tenant, "/identify", [{"email": "busy@example.com"}, {"email": "idle@example.com"}])
    _post(
        client,
        tenant,
        "/track",
        [{"email": "busy@example.com", "name": "Clicked", "message_id": f"m{i}"} for i in range(3)],
    )
    setup = create_sync(client, tenant, sandbox, mappings=[*CONTACT_MAPPINGS, EVENT_COUNT_MAPPING])

    response = client.post(tenant.url(f"/syncs/{setup.sync_id}/runs?wait=true"), headers=tenant.headers)

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "succeeded", response.get_json()
    sent = {r["properties"]["email"]: r["properties"] for r in sandbox.records("contacts")}
    assert sent["busy@example.com"]["events"] == "3"
    assert sent["idle@example.com"]["events"] == "0"


def test_a_computed_property_the_subject_type_lacks_is_refused(client, tenant, sandbox):
    setup = create_sync(client, tenant, sandbox)
    response = client.patch(
        tenant.url(f"/syncs/{setup.sync_id}"),
        json={
            "subject_type": "accounts",
            "destination_object": "companies",
            "mappings": [
                {"source": {"kind": "field", "name": "domain"}, "destination": "domain"},
                {"source": {"kind": "computed", "name": "event_count"}, "destination": "events"},
            ],
            "identity": {"destination": "domain"},
        },
        headers=tenant.headers,
    )
    assert response.status_code == 422, response.get_json()
    fields = {e["field"] for e in response.get_json()["errors"]}
    assert "body.mappings[1].source.name" in fields


def test_an_unknown_computed_property_is_refused_naming_the_known_ones(client, tenant, sandbox):
    setup = create_sync(client, tenant, sandbox)
    mappings = [*CONTACT_MAPPINGS, {"source": {"kind": "computed", "name": "Score"}, "destination": "score"}]
    response = client.patch(tenant.url(f"/syncs/{setup.sync_id}"), json={"mappings": mappings}, headers=tenant.headers)
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert any(e["field"].startswith("body.mappings[4].source") and "event_count" in e["reason"] for e in errors)
