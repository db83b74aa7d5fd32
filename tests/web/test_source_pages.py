"""Sources, list syncs and alerts pages through the test client: refusals beside their field, the source URL never
shown, and what a viewer, a missing CSRF token or another workspace is refused."""

from __future__ import annotations

import re
import sqlite3

import pytest
from sqlalchemy import func, select

from connector.models import Alert, AlertKind, Role, Source, SourceModel
from connector.sources.reader import FILE_DIRS_ENV
from tests.web.conftest import add_hubspot_sync, add_member, csrf_token, sign_in


@pytest.fixture
def warehouse(tmp_path, monkeypatch) -> str:
    """An SQLite file warehouse with a ``people`` table, under the allowed file directories; its URL."""
    monkeypatch.setenv(FILE_DIRS_ENV, str(tmp_path))
    path = tmp_path / "warehouse.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE people (id TEXT, email TEXT, plan TEXT, updated_at TEXT)")
        connection.execute("INSERT INTO people VALUES ('w1', 'wan@acme.example', 'pro', '2026-01-01 00:00:00')")
    return f"sqlite:///{path}"


def _token(client, path: str) -> str:
    return csrf_token(client.get(path).get_data(as_text=True))


def _count(database, model) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(model))


def _add_source(client, editor, url: str) -> int:
    response = client.post(
        editor.url("/sources"), json={"name": "Warehouse", "url": url}, headers=editor.headers
    ).get_json()
    return response["id"]


def _add_sync(client, editor, sandbox) -> int:
    return add_hubspot_sync(client, editor, sandbox)["id"]


def test_a_source_url_is_write_only_and_a_refused_one_is_explained_beside_the_field(client, editor, database):
    sign_in(client)
    token = _token(client, "/w/acme/sources/new")
    refused = client.post("/w/acme/sources/new", data={"csrf_token": token, "name": "Bad", "url": "nonsense://x"})
    assert refused.status_code == 422
    assert re.search(r'id="url-error">[^<]+<', refused.get_data(as_text=True))
    assert _count(database, Source) == 0

    url = "postgresql://reader:s3cret-pw@127.0.0.1:1/warehouse"
    saved = client.post("/w/acme/sources/new", data={"csrf_token": token, "name": "Warehouse", "url": url})
    assert saved.status_code == 302
    page = client.get(saved.location).get_data(as_text=True)
    assert "s3cret-pw" not in page and "reader:***" in page.replace("%2A", "*")
    checked = client.get(saved.location.split("?")[0] + "?check=1").get_data(as_text=True)
    assert 'id="check-result"' in checked and "failed" in checked
    assert re.search(r'id="url-error">cannot connect', checked)
    assert "s3cret-pw" not in checked

    # Saving with the URL left empty keeps the stored one.
    renamed = client.post(saved.location.split("?")[0], data={"csrf_token": token, "name": "Renamed", "url": ""})
    assert renamed.status_code == 200
    source = client.get(editor.url("/sources"), headers=editor.headers).get_json()["data"][0]
    assert source["name"] == "Renamed" and "reader" in source["url"] and "s3cret-pw" not in source["url"]


def test_a_model_column_check_names_the_missing_column_beside_its_field(client, editor, warehouse):
    source_id = _add_source(client, editor, warehouse)
    sign_in(client)
    new = f"/w/acme/sources/{source_id}/models/new"
    token = _token(client, new)
    form = {"csrf_token": token, "name": "users", "kind": "users", "query": "SELECT * FROM people"}
    missing_identity = client.post(new, data=form)
    assert missing_identity.status_code == 422
    assert re.search(r'id="mapping.external_id-error">is required', missing_identity.get_data(as_text=True))

    created = client.post(new, data={**form, "mapping.external_id": "id", "mapping.email": "mail_address"})
    assert created.status_code == 302
    page = client.get(created.location).get_data(as_text=True)
    assert 'id="check-result"' in page
    assert re.search(r"id=\"mapping.email-error\">column &#39;mail_address&#39; is not among", page)


def test_a_viewer_can_look_but_not_add_run_or_turn_lists_on(client, editor, database, warehouse, sandbox):
    source_id = _add_source(client, editor, warehouse)
    body = {"name": "users", "kind": "users", "query": "SELECT * FROM people", "mapping": {"external_id": "id"}}
    model = client.post(editor.url(f"/sources/{source_id}/models"), json=body, headers=editor.headers).get_json()
    sync_id = _add_sync(client, editor, sandbox)
    add_member(database, editor, "viewer@acme.example", Role.VIEWER)
    sign_in(client, "viewer@acme.example")

    sources = client.get("/w/acme/sources").get_data(as_text=True)
    assert "Warehouse" in sources and "Add a source" not in sources
    model_page = client.get(f"/w/acme/sources/{source_id}/models/{model['id']}").get_data(as_text=True)
    assert "Run now" not in model_page
    assert client.get("/w/acme/sources/new").status_code == 403
    token = _token(client, "/w/acme/sources")
    refused = [
        client.post("/w/acme/sources/new", data={"csrf_token": token, "name": "x", "url": warehouse}),
        client.post(f"/w/acme/sources/{source_id}", data={"csrf_token": token, "name": "x"}),
        client.post(f"/w/acme/sources/{source_id}/models/{model['id']}/run", data={"csrf_token": token}),
        client.post(f"/w/acme/sources/{source_id}/delete", data={"csrf_token": token}),
        client.post(f"/w/acme/syncs/{sync_id}/lists", data={"csrf_token": token, "enabled": "on"}),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert _count(database, Source) == 1 and _count(database, SourceModel) == 1
    runs = client.get(editor.url(f"/sources/{source_id}/models/{model['id']}/runs"), headers=editor.headers)
    assert runs.get_json()["data"] == []
    assert client.get(editor.url(f"/syncs/{sync_id}/lists"), headers=editor.headers).get_json()["enabled"] is False


def test_posts_without_a_csrf_token_are_refused_and_nothing_is_written(client, editor, database, warehouse):
    sign_in(client)
    response = client.post("/w/acme/sources/new", data={"name": "Warehouse", "url": warehouse})
    assert response.status_code == 400
    assert _count(database, Source) == 0


def test_another_workspace_s_source_and_lists_are_not_found(client, editor, warehouse, sandbox):
    source_id = _add_source(client, editor, warehouse)
    sync_id = _add_sync(client, editor, sandbox)
    sign_in(client)
    assert client.get(f"/w/acme/sources/{source_id + 1000}").status_code == 404
    assert client.get(f"/w/acme/syncs/{sync_id + 1000}/lists").status_code == 404
    assert client.get(f"/w/elsewhere/sources/{source_id}").status_code == 404


def test_a_sync_without_segments_cannot_keep_lists_and_is_told_why(client, editor, sandbox):
    sync_id = _add_sync(client, editor, sandbox)
    sign_in(client)
    token = _token(client, f"/w/acme/syncs/{sync_id}/lists")
    response = client.post(f"/w/acme/syncs/{sync_id}/lists", data={"csrf_token": token, "enabled": "on"})
    assert response.status_code == 422
    assert re.search(r'id="enabled-error">[^<]*segment', response.get_data(as_text=True))
    assert client.get(editor.url(f"/syncs/{sync_id}/lists"), headers=editor.headers).get_json()["enabled"] is False


def test_open_alerts_show_a_badge_in_the_navigation_and_link_to_their_sync(client, editor, database, sandbox):
    sync_id = _add_sync(client, editor, sandbox)
    sign_in(client)
    page = client.get("/w/acme/alerts").get_data(as_text=True)
    assert 'id="alerts-badge"' not in page and 'id="no-open-alerts"' in page
    with database.session() as session:
        session.add(
            Alert(workspace_id=editor.workspace_id, sync_id=sync_id, kind=AlertKind.FAILING, message="3 failed")
        )
    page = client.get("/w/acme/segments").get_data(as_text=True)
    assert re.search(r'id="alerts-badge">1<', page)
    alerts = client.get("/w/acme/alerts").get_data(as_text=True)
    assert f'href="/w/acme/syncs/{sync_id}">everyone</a>' in alerts and "3 failed" in alerts
