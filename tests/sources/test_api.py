"""The sources API over HTTP: secrets masked, bad input refused by field, runs and their history, tenant walls."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from connector.models import Source, User
from connector.security import MASK
from connector.sources.reader import FILE_DIRS_ENV
from tests.conftest import make_tenant

PROBLEM = "application/problem+json"


def post(client, tenant, path, body):
    return client.post(tenant.url(path), headers=tenant.headers, json=body)


def problem(response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json()
    if field is not None:
        assert field in [e["field"] for e in body.get("errors", [])], body
    return body


@pytest.fixture
def people(warehouse):
    warehouse.run("CREATE TABLE people (id INTEGER, email VARCHAR(200), plan VARCHAR(20))")
    warehouse.insert("people", [{"id": 1, "email": "ann@example.com", "plan": "pro"}])
    return warehouse


def make(client, tenant, url):
    source = post(client, tenant, "/sources", {"name": "Warehouse", "url": url})
    assert source.status_code == 201, source.get_json()
    model = post(
        client,
        tenant,
        f"/sources/{source.get_json()['id']}/models",
        {
            "name": "people",
            "kind": "users",
            "query": "SELECT id, email, plan FROM people",
            "mapping": {"external_id": "id", "email": "email"},
        },
    )
    assert model.status_code == 201, model.get_json()
    return source.get_json(), model.get_json()


def test_the_url_password_is_stored_encrypted_and_answered_masked(client, database, tenant):
    url = "postgresql://reader:s3cret-pw@db.internal:5432/warehouse?sslmode=require&sslpassword=key-pw"
    response = post(client, tenant, "/sources", {"name": "Warehouse", "url": url})

    assert response.status_code == 201, response.get_json()
    shown = response.get_json()["url"]
    assert "s3cret-pw" not in shown and "key-pw" not in shown
    assert shown.startswith(f"postgresql://reader:{MASK}@db.internal:5432/warehouse")
    with database.session() as session:
        stored = session.scalar(select(Source))
        assert "s3cret-pw" not in stored.url_encrypted and "s3cret-pw" not in stored.display_url

    # Sending the masked URL back (with a new host) keeps the password.
    patched = client.patch(
        tenant.url(f"/sources/{response.get_json()['id']}"),
        headers=tenant.headers,
        json={"url": shown.replace("db.internal", "db2.internal")},
    )
    assert patched.status_code == 200
    from connector.security import SecretBox

    with database.session() as session:
        plain = SecretBox("test-secret-key").decrypt(session.scalar(select(Source)).url_encrypted)["url"]
    assert "reader:s3cret-pw@db2.internal" in plain and "sslpassword=key-pw" in plain


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "W", "url": "not a url"}, "body.url"),
        ({"name": "W", "url": "nosuchdialect://x/y"}, "body.url"),
        ({"name": " ", "url": "sqlite://"}, "body.name"),
        ({"name": "W", "url": "sqlite://", "schedule": {"kind": "interval", "minutes": 0}}, None),
        ({"name": "W", "url": "sqlite://", "schedule": {"kind": "weekly"}}, "body.schedule.kind"),
    ],
)
def test_bad_sources_are_refused_by_field_and_nothing_is_written(client, database, tenant, body, field):
    problem(post(client, tenant, "/sources", body), 422, field)
    with database.session() as session:
        assert session.scalar(select(Source)) is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "users", "mapping": {}}, "body.mapping.external_id"),
        ({"kind": "users", "mapping": {"external_id": "id", "occurred_at": "t"}}, "body.mapping.occurred_at"),
        ({"kind": "events", "mapping": {"user_external_id": "id"}}, "body.mapping.message_id"),
        ({"kind": "events", "mapping": {"external_id": "id"}, "deletes": "clear"}, "body.deletes"),
        (
            {"kind": "objects", "mapping": {"object_type": "o", "external_id": "id"}, "deletes": "remove"},
            "body.deletes",
        ),
        ({"kind": "users", "mapping": {"external_id": "id"}, "deletes": "erase"}, "body.deletes"),
        ({"kind": "planets", "mapping": {"external_id": "id"}}, "body.kind"),
        ({"kind": "users", "mapping": {"external_id": "id"}, "query": " ;"}, "body.query"),
        ({"kind": "users", "mapping": {"external_id": "i\x00d"}}, "body.mapping.external_id"),
    ],
)
def test_bad_models_are_refused_by_field(client, tenant, people, body, field):
    source = post(client, tenant, "/sources", {"name": "W", "url": people.url}).get_json()
    body = {"name": "m", "query": "SELECT * FROM people", **body}
    problem(post(client, tenant, f"/sources/{source['id']}/models", body), 422, field)


def test_a_file_database_outside_the_allowed_directories_is_refused(
    client, database, tenant, settings, tmp_path, monkeypatch
):
    # The service's own SQLite file (or any other file of the server) is another tenant's data: never a source.
    monkeypatch.setenv(FILE_DIRS_ENV, str(tmp_path / "warehouses"))
    for url in (settings.database_url, "sqlite:////etc/passwd", "duckdb:////var/lib/other.duckdb"):
        if url.startswith(("sqlite", "duckdb")):
            body = problem(post(client, tenant, "/sources", {"name": "W", "url": url}), 422, "body.url")
            assert "allowed" in body["errors"][0]["reason"]


def test_duplicate_source_name_is_a_conflict(client, tenant):
    post(client, tenant, "/sources", {"name": "W", "url": "sqlite://"})
    problem(post(client, tenant, "/sources", {"name": "W", "url": "sqlite://"}), 409, "body.name")


def test_check_answers_columns_or_what_is_wrong(client, tenant, people):
    source, model = make(client, tenant, people.url)
    base = f"/sources/{source['id']}"

    assert post(client, tenant, f"{base}/check", {}).get_json() == {"ok": True}
    checked = post(client, tenant, f"{base}/models/{model['id']}/check", {}).get_json()
    assert checked == {"ok": True, "columns": ["id", "email", "plan"]}

    client.patch(
        tenant.url(f"{base}/models/{model['id']}"), headers=tenant.headers, json={"query": "SELECT id FROM people"}
    )
    checked = post(client, tenant, f"{base}/models/{model['id']}/check", {}).get_json()
    assert checked["ok"] is False
    assert checked["errors"][0]["field"] == "mapping.email"


def test_check_of_an_unreachable_source_says_so_without_secrets(client, tenant):
    url = "postgresql://reader:s3cret@127.0.0.1:1/warehouse"
    source = post(client, tenant, "/sources", {"name": "W", "url": url}).get_json()
    answer = post(client, tenant, f"/sources/{source['id']}/check", {}).get_json()
    assert answer["ok"] is False
    assert "s3cret" not in answer["error"]


def test_a_run_writes_users_and_is_kept_in_the_history(client, database, tenant, people):
    source, model = make(client, tenant, people.url)
    runs = f"/sources/{source['id']}/models/{model['id']}/runs"

    response = client.post(tenant.url(runs + "?wait=true"), headers=tenant.headers)

    assert response.status_code == 200, response.get_json()
    run = response.get_json()
    assert run["status"] == "succeeded"
    assert run["counts"]["created"] == 1
    with database.session() as session:
        assert session.scalar(select(User.email)) == "ann@example.com"
    listed = client.get(tenant.url(runs), headers=tenant.headers).get_json()["data"]
    assert [r["id"] for r in listed] == [run["id"]]
    one = client.get(tenant.url(f"{runs}/{run['id']}"), headers=tenant.headers).get_json()
    assert one["errors"] == []


def test_another_workspace_sees_nothing(client, database, tenant, people):
    source, model = make(client, tenant, people.url)
    other = make_tenant(database, "globex")

    for path in (f"/sources/{source['id']}", f"/sources/{source['id']}/models/{model['id']}"):
        problem(client.get(other.url(path), headers=other.headers), 404)
    problem(client.post(other.url(f"/sources/{source['id']}/models/{model['id']}/runs"), headers=other.headers), 404)
    assert client.get(other.url("/sources"), headers=other.headers).get_json() == {"data": []}


def test_deleting_a_source_deletes_its_models(client, tenant, people):
    source, model = make(client, tenant, people.url)
    assert client.delete(tenant.url(f"/sources/{source['id']}"), headers=tenant.headers).status_code == 204
    problem(client.get(tenant.url(f"/sources/{source['id']}/models/{model['id']}"), headers=tenant.headers), 404)
