"""From ingestion to HubSpot: people arrive over the API, dynamic segments take them in, ``Segments`` follows, and
a sync delivers it to the sandbox through the real hubspot-api-client. Then data changes, a segment is renamed,
people leave segments, and exactly what changed reaches the sandbox."""

from __future__ import annotations

from connector.models import RunStatus
from tests.syncs.conftest import hubspot_config

UPSERT = "POST /crm/v3/objects/contacts/batch/upsert"


def identify(client, tenant, *people) -> None:
    response = client.post(tenant.url("/identify"), json={"batch": list(people)}, headers=tenant.headers)
    assert response.status_code == 200, response.get_json()


def segment(client, tenant, name: str, condition: dict) -> int:
    response = client.post(
        tenant.url("/segments?wait=true"),
        json={"name": name, "subject_type": "user", "kind": "dynamic", "conditions": condition},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def run(client, tenant, sync_id: int) -> dict:
    response = client.post(tenant.url(f"/syncs/{sync_id}/runs?wait=true"), headers=tenant.headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def contacts(sandbox) -> dict[str, dict]:
    return {r["properties"]["email"]: r["properties"] for r in sandbox.records("contacts")}


def upserted_since(before: dict, after: dict) -> set[str]:
    old = before.get("upserts", {}).get("contacts", {})
    return {k for k, v in after["upserts"].get("contacts", {}).items() if v > old.get(k, 0)}


def test_people_flow_from_ingestion_through_segments_to_hubspot(client, tenant, sandbox):
    identify(
        client,
        tenant,
        *[
            {
                "email": f"fan{i}@example.com",
                "attributes": {"first_name": f"Fan {i}", "plan": "pro" if i < 6 else "free", "score": 10 * i},
            }
            for i in range(12)
        ],
        {"external_id": "no-email", "attributes": {"plan": "pro"}},
    )
    pro = segment(client, tenant, "Pro", {"type": "attribute", "name": "plan", "operator": "eq", "value": "pro"})
    fans = segment(client, tenant, "Champions", {"type": "attribute", "name": "score", "operator": "gte", "value": 80})

    destination = client.post(
        tenant.url("/destinations"),
        json={"name": "HubSpot", "type": "hubspot", "config": hubspot_config(sandbox)},
        headers=tenant.headers,
    ).get_json()
    response = client.post(
        tenant.url("/syncs"),
        json={
            "name": "Pro and champions",
            "destination_id": destination["id"],
            "subject_type": "users",
            "destination_object": "contacts",
            "segment_ids": [pro, fans],
            "mappings": [
                {"source": {"kind": "field", "name": "email"}, "destination": "email"},
                {"source": {"kind": "attribute", "name": "first_name"}, "destination": "firstname"},
                {"source": {"kind": "attribute", "name": "score"}, "destination": "score", "format": "number"},
                {"source": {"kind": "computed", "name": "Segments"}, "destination": "segments", "as": "multi_select"},
            ],
            "identity": {"destination": "email"},
            "mode": "mirror",
            "schedule": {"kind": "interval", "minutes": 15},
        },
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.get_json()
    sync_id = response.get_json()["id"]

    # First run: fans 0-5 are Pro, 8-11 Champions; the Pro user without an email cannot be sent.
    first = run(client, tenant, sync_id)
    assert first["status"] == "partial"
    assert first["counts"] == {
        "planned": 10,
        "added": 10,
        "changed": 0,
        "removed": 0,
        "rejected": 0,
        "invalid": 1,
        "unchanged": 0,
        "unsent": 0,
        "existing": 0,
    }
    got = contacts(sandbox)
    assert set(got) == {f"fan{i}@example.com" for i in [*range(6), *range(8, 12)]}
    assert got["fan0@example.com"]["segments"] == "Pro"
    assert got["fan9@example.com"]["segments"] == "Champions"
    assert got["fan9@example.com"]["score"] == "90"
    stats = sandbox.stats()
    assert stats["requests"][UPSERT] == 1
    errors = client.get(tenant.url(f"/syncs/{sync_id}/runs/{first['id']}/errors"), headers=tenant.headers)
    assert [e["reason"] for e in errors.get_json()["data"]] == ["no value for the identity field email"]

    # Changes: fan0 leaves Pro (and so the sync), fan5 becomes a champion too (in both), fan7 enters Champions,
    # Champions is renamed.
    identify(
        client,
        tenant,
        {"email": "fan0@example.com", "attributes": {"plan": "free"}},
        {"email": "fan5@example.com", "attributes": {"score": 85}},
        {"email": "fan7@example.com", "attributes": {"score": 99}},
    )
    response = client.patch(tenant.url(f"/segments/{fans}"), json={"name": "Top fans"}, headers=tenant.headers)
    assert response.status_code == 200, response.get_json()

    second = run(client, tenant, sync_id)
    assert second["status"] == "partial"  # still the user without an email
    assert {k: second["counts"][k] for k in ("added", "changed", "removed", "unchanged", "invalid")} == {
        "added": 1,  # fan7
        "changed": 5,  # fan5 (both segments, new score) and the renamed segment's members 8-11
        "removed": 1,  # fan0: its Segments cleared
        "unchanged": 4,  # fans 1-4: still just Pro
        "invalid": 1,
    }
    after = sandbox.stats()
    assert upserted_since(stats, after) == {f"fan{i}@example.com" for i in (0, 5, 7, 8, 9, 10, 11)}
    assert after["requests"][UPSERT] == stats["requests"][UPSERT] + 2  # one batch of writes, one of clears
    got = contacts(sandbox)
    assert got["fan0@example.com"]["segments"] == ""
    assert got["fan0@example.com"]["firstname"] == "Fan 0"
    assert got["fan5@example.com"]["segments"] == "Pro;Top fans"
    assert got["fan7@example.com"]["segments"] == "Top fans"
    assert got["fan11@example.com"]["segments"] == "Top fans"
    options = {o["label"] for o in sandbox.property("contacts", "segments")["options"]}
    assert {"Pro", "Top fans"} <= options

    # Nothing changed: nothing is sent.
    third = run(client, tenant, sync_id)
    assert third["counts"]["planned"] == 0 and third["counts"]["unchanged"] == 10
    assert sandbox.stats()["requests"] == after["requests"]

    # The sync shows its last run; the history holds all three, newest first.
    sync = client.get(tenant.url(f"/syncs/{sync_id}"), headers=tenant.headers).get_json()
    assert sync["last_run"]["id"] == third["id"] and sync["status"] == RunStatus.PARTIAL.value
    history = client.get(tenant.url(f"/syncs/{sync_id}/runs"), headers=tenant.headers).get_json()["data"]
    assert [r["id"] for r in history] == [third["id"], second["id"], first["id"]]

    # The segments a sync uses cannot be deleted from under it.
    assert client.delete(tenant.url(f"/segments/{pro}"), headers=tenant.headers).status_code == 409
