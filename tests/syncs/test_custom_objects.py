"""Custom objects as a destination object, by object type id, against the sandbox's schemas over real HTTP."""

from __future__ import annotations

from hubspot import HubSpot
from hubspot.crm.schemas import ObjectSchemaEgg, ObjectTypeDefinitionLabels, ObjectTypePropertyCreate

from connector.syncs.engine import run_sync
from tests.syncs.conftest import FAST_RETRY, SANDBOX_TOKEN, create_sync, seed_users

MAPPINGS = [
    {"source": {"kind": "field", "name": "email"}, "destination": "member_email"},
    {"source": {"kind": "attribute", "name": "first_name"}, "destination": "name"},
    {"source": {"kind": "attribute", "name": "plan"}, "destination": "plan"},
]


def define_memberships(sandbox) -> str:
    schema = HubSpot(access_token=SANDBOX_TOKEN, host=sandbox.url, retry=False).crm.schemas.core_api.create(
        ObjectSchemaEgg(
            name="memberships",
            labels=ObjectTypeDefinitionLabels(singular="Membership", plural="Memberships"),
            primary_display_property="name",
            required_properties=["name"],
            properties=[ObjectTypePropertyCreate(name="name", label="Name", type="string", field_type="text")],
            associated_objects=["CONTACT"],
        )
    )
    return schema.object_type_id


def test_users_are_written_to_a_custom_object_by_its_type_id(client, tenant, database, settings, sandbox):
    object_type_id = define_memberships(sandbox)
    seed_users(
        database,
        tenant.workspace_id,
        [{"email": f"m{i}@example.com", "attributes": {"first_name": f"M{i}", "plan": "pro"}} for i in range(3)],
    )
    made = create_sync(
        client,
        tenant,
        sandbox,
        destination_object=object_type_id,
        mappings=MAPPINGS,
        identity={"destination": "member_email"},
    )

    outcome = run_sync(database, made.sync_id, secret_key=settings.secret_key, retry=FAST_RETRY)

    assert outcome.status.value == "succeeded", outcome.first_error
    stored = {r["properties"]["member_email"]: r["properties"] for r in sandbox.records(object_type_id)}
    assert set(stored) == {"m0@example.com", "m1@example.com", "m2@example.com"}
    assert stored["m1@example.com"]["name"] == "M1" and stored["m1@example.com"]["plan"] == "pro"
    # The identity property was created with unique values, as upserts by it require.
    assert sandbox.property(object_type_id, "member_email")["hasUniqueValue"] is True


def test_an_undefined_custom_object_fails_the_run_with_a_clear_error(client, tenant, database, settings, sandbox):
    seed_users(database, tenant.workspace_id, [{"email": "m@example.com", "attributes": {"first_name": "M"}}])
    made = create_sync(
        client, tenant, sandbox, destination_object="2-999", mappings=MAPPINGS, identity={"destination": "member_email"}
    )

    outcome = run_sync(database, made.sync_id, secret_key=settings.secret_key, retry=FAST_RETRY)

    assert outcome.status.value == "failed"
    assert "no custom object 2-999" in outcome.first_error


def test_other_object_names_are_refused_when_the_sync_is_saved(client, tenant, sandbox):
    response = client.post(
        tenant.url("/destinations"),
        json={"name": "hs", "type": "hubspot", "config": {"access_token": SANDBOX_TOKEN, "base_url": sandbox.url}},
        headers=tenant.headers,
    )
    body = {
        "name": "deals",
        "destination_id": response.get_json()["id"],
        "subject_type": "users",
        "destination_object": "deals",
        "mappings": MAPPINGS,
        "identity": {"destination": "member_email"},
    }
    refused = client.post(tenant.url("/syncs"), json=body, headers=tenant.headers)
    assert refused.status_code == 422
    assert refused.get_json()["errors"][0]["field"] == "body.destination_object"
