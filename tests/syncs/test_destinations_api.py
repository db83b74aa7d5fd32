"""The destinations API: options validated by the type, secrets encrypted and never shown, the workspace wall."""

from __future__ import annotations

from sqlalchemy import select

from connector.models import Destination, Role
from connector.security import MASK, SecretBox
from tests.conftest import make_tenant
from tests.syncs.conftest import SANDBOX_TOKEN, create_sync, hubspot_config


def create(client, tenant, **body):
    document = {"name": "crm", "type": "hubspot", "config": {"access_token": "pat-secret-1"}, **body}
    return client.post(tenant.url("/destinations"), json=document, headers=tenant.headers)


def stored(database, destination_id: int) -> Destination:
    with database.session() as session:
        return session.scalar(select(Destination).where(Destination.id == destination_id))


def test_destination_types_describe_their_options_and_secrets(client, tenant):
    response = client.get(tenant.url("/destination-types"), headers=tenant.headers)
    assert response.status_code == 200
    types = {t["type"]: t for t in response.get_json()["data"]}
    assert {"hubspot", "webhook", "file"} <= set(types)
    assert types["hubspot"]["objects"] == ["contacts", "companies"]
    assert types["hubspot"]["config_schema"]["secretFields"] == ["access_token"]


def test_secrets_are_encrypted_at_rest_and_masked_when_read(client, tenant, database, settings):
    response = create(client, tenant, config={"access_token": "pat-secret-1", "rate_limit_requests": 190})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["config"] == {"access_token": MASK, "rate_limit_requests": 190}
    assert "pat-secret-1" not in response.get_data(as_text=True)

    row = stored(database, body["id"])
    assert "access_token" not in row.config
    assert "pat-secret-1" not in (row.secrets_encrypted or "")
    assert SecretBox(settings.secret_key).decrypt(row.secrets_encrypted) == {"access_token": "pat-secret-1"}

    for response in (
        client.get(tenant.url(f"/destinations/{body['id']}"), headers=tenant.headers),
        client.get(tenant.url("/destinations"), headers=tenant.headers),
    ):
        assert response.status_code == 200
        assert "pat-secret-1" not in response.get_data(as_text=True)
        assert MASK in response.get_data(as_text=True)


def test_an_update_that_sends_the_mask_back_keeps_the_stored_secret(client, tenant, database, settings):
    destination_id = create(client, tenant).get_json()["id"]
    shown = client.get(tenant.url(f"/destinations/{destination_id}"), headers=tenant.headers).get_json()
    response = client.patch(
        tenant.url(f"/destinations/{destination_id}"),
        json={"name": "crm-pro", "config": {**shown["config"], "rate_limit_requests": 190}},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["name"] == "crm-pro"
    row = stored(database, destination_id)
    assert row.config == {"rate_limit_requests": 190}
    assert SecretBox(settings.secret_key).decrypt(row.secrets_encrypted) == {"access_token": "pat-secret-1"}

    # Leaving the secret out keeps it too; sending a new one replaces it; null clears an option.
    client.patch(
        tenant.url(f"/destinations/{destination_id}"),
        json={"config": {"rate_limit_requests": None}},
        headers=tenant.headers,
    )
    assert stored(database, destination_id).config == {}
    client.patch(
        tenant.url(f"/destinations/{destination_id}"),
        json={"config": {"access_token": "pat-secret-2"}},
        headers=tenant.headers,
    )
    row = stored(database, destination_id)
    assert SecretBox(settings.secret_key).decrypt(row.secrets_encrypted) == {"access_token": "pat-secret-2"}


def test_options_are_validated_by_the_destination_type(client, tenant, database):
    response = create(client, tenant, config={"access_token": "x", "rate_limit_requests": 0, "colour": "red"})
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    fields = {e["field"] for e in response.get_json()["errors"]}
    assert fields == {"body.config.rate_limit_requests", "body.config.colour"}

    assert {e["field"] for e in create(client, tenant, config={}).get_json()["errors"]} == {"body.config.access_token"}
    response = create(client, tenant, type="salesforce")
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "body.type"
    response = create(client, tenant, config={"access_token": MASK})
    assert response.get_json()["errors"][0]["field"] == "body.config.access_token"
    response = create(client, tenant, config={"access_token": "x", "property_group": "a\x00b"})
    assert response.get_json()["errors"][0]["field"] == "body.config.property_group"
    assert create(client, tenant, name="nul\x00").get_json()["errors"][0]["field"] == "body.name"
    response = client.post(tenant.url("/destinations"), json={"name": "x"}, headers=tenant.headers)
    assert response.status_code == 422
    assert {e["field"] for e in response.get_json()["errors"]} == {"body.type"}

    destination_id = create(client, tenant).get_json()["id"]
    response = client.patch(
        tenant.url(f"/destinations/{destination_id}"),
        json={"config": {"base_url": "ftp://nope"}},
        headers=tenant.headers,
    )
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "body.config.base_url"
    response = client.patch(
        tenant.url(f"/destinations/{destination_id}"), json={"type": "webhook"}, headers=tenant.headers
    )
    assert response.status_code == 422
    with database.session() as session:
        assert session.scalar(select(Destination.type).where(Destination.id == destination_id)) == "hubspot"
        assert len(session.scalars(select(Destination)).all()) == 1


def test_names_are_unique_within_a_workspace(client, tenant):
    assert create(client, tenant).status_code == 201
    response = create(client, tenant)
    assert response.status_code == 409
    assert response.content_type == "application/problem+json"


def test_a_destination_used_by_a_sync_cannot_be_deleted(client, tenant, sandbox):
    setup = create_sync(client, tenant, sandbox)
    response = client.delete(tenant.url(f"/destinations/{setup.destination_id}"), headers=tenant.headers)
    assert response.status_code == 409
    assert "contacts" in response.get_json()["detail"]

    assert client.delete(tenant.url(f"/syncs/{setup.sync_id}"), headers=tenant.headers).status_code == 204
    assert client.delete(tenant.url(f"/destinations/{setup.destination_id}"), headers=tenant.headers).status_code == 204
    assert client.get(tenant.url(f"/destinations/{setup.destination_id}"), headers=tenant.headers).status_code == 404


def test_check_tells_whether_the_destination_accepts_the_credentials(client, tenant, sandbox):
    good = create(client, tenant, name="good", config=hubspot_config(sandbox)).get_json()["id"]
    bad = create(client, tenant, name="bad", config=hubspot_config(sandbox, access_token="wrong")).get_json()["id"]
    response = client.post(tenant.url(f"/destinations/{good}/check"), headers=tenant.headers)
    assert response.status_code == 200
    assert response.get_json() == {"ok": True}
    response = client.post(tenant.url(f"/destinations/{bad}/check"), headers=tenant.headers)
    assert response.status_code == 200
    assert response.get_json()["ok"] is False
    assert "credentials" in response.get_json()["error"]
    assert SANDBOX_TOKEN not in response.get_data(as_text=True)


def test_a_check_against_nothing_listening_is_an_answer_not_an_error(client, tenant):
    destination_id = create(
        client, tenant, config={"access_token": "x", "base_url": "http://127.0.0.1:9", "timeout_s": 1}
    ).get_json()["id"]
    response = client.post(tenant.url(f"/destinations/{destination_id}/check"), headers=tenant.headers)
    assert response.status_code == 200
    assert response.get_json()["ok"] is False


def test_destinations_stay_behind_the_workspace_wall(client, tenant, other_tenant):
    destination_id = create(client, tenant).get_json()["id"]
    for method, path in [
        ("get", f"/destinations/{destination_id}"),
        ("patch", f"/destinations/{destination_id}"),
        ("delete", f"/destinations/{destination_id}"),
        ("post", f"/destinations/{destination_id}/check"),
    ]:
        response = getattr(client, method)(other_tenant.url(path), json={}, headers=other_tenant.headers)
        assert response.status_code == 404, (method, path)
    assert client.get(other_tenant.url("/destinations"), headers=other_tenant.headers).get_json() == {"data": []}
    # The other tenant's token cannot even name this workspace.
    assert client.get(tenant.url("/destinations"), headers=other_tenant.headers).status_code == 404


def test_viewers_read_but_do_not_change(client, tenant, database):
    create(client, tenant)
    viewer = make_tenant(database, "viewer-co", role=Role.VIEWER)
    assert client.get(viewer.url("/destinations"), headers=viewer.headers).status_code == 200
    assert create(client, viewer).status_code == 403


def test_ids_out_of_range_are_refused_not_crashed(client, tenant):
    response = client.get(tenant.url(f"/destinations/{2**70}"), headers=tenant.headers)
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"].startswith("path.destination_id")
