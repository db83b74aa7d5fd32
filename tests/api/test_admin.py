"""Company administration over the API and the CLI: workspaces and tokens for company admins, token revocation
for everyone's own tokens."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from connector.cli import main
from connector.models import ApiToken, Company, Workspace
from connector.tenancy import create_member, create_token
from tests.conftest import make_tenant


@pytest.fixture
def admin(database, tenant) -> dict:
    """A company admin of acme's company, and a plain member (editor of acme) with a token each."""
    with database.session() as session:
        company = session.get(Company, tenant.company_id)
        workspace = session.get(Workspace, tenant.workspace_id)
        boss = create_member(session, company, "boss@acme.example", "Boss", company_admin=True)
        editor = create_member(session, company, "ed@acme.example", "Ed", roles={workspace: "editor"})
        return {
            "headers": {"Authorization": f"Bearer {create_token(session, boss, 'boss')}"},
            "editor_id": editor.id,
            "editor_headers": {"Authorization": f"Bearer {create_token(session, editor, 'ed')}"},
        }


def test_company_admin_creates_a_workspace_that_is_then_listed(client, admin):
    response = client.post(
        "/api/v1/workspaces", json={"name": "Europe", "time_zone": "Europe/Paris"}, headers=admin["headers"]
    )
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert (created["slug"], created["time_zone"], created["role"]) == ("europe", "Europe/Paris", "workspace_admin")
    listed = client.get("/api/v1/workspaces", headers=admin["headers"]).get_json()["data"]
    assert "europe" in {w["slug"] for w in listed}


def test_workspace_creation_is_refused_to_others_and_for_bad_input(client, admin, tenant):
    forbidden = client.post("/api/v1/workspaces", json={"name": "Mine"}, headers=tenant.headers)
    assert forbidden.status_code == 403 and forbidden.content_type == "application/problem+json"
    bad = client.post(
        "/api/v1/workspaces",
        json={"name": "X", "slug": "Not A Slug", "time_zone": "Mars/Base"},
        headers=admin["headers"],
    )
    assert bad.status_code == 422
    assert {e["field"] for e in bad.get_json()["errors"]} == {"body.slug", "body.time_zone"}
    taken = client.post("/api/v1/workspaces", json={"name": "Acme", "slug": "acme"}, headers=admin["headers"])
    assert taken.status_code == 409 and taken.get_json()["errors"][0]["field"] == "body.slug"


def test_admin_issues_a_token_for_a_member_and_revokes_it(client, admin):
    issued = client.post(
        "/api/v1/tokens", json={"name": "ci", "member_id": admin["editor_id"]}, headers=admin["headers"]
    )
    assert issued.status_code == 201, issued.get_json()
    token = issued.get_json()
    secret = token.pop("token")
    assert token["member_email"] == "ed@acme.example" and secret.startswith(token["prefix"])
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).get_json()
    assert me["email"] == "ed@acme.example"

    listed = client.get("/api/v1/tokens", headers=admin["headers"]).get_json()["data"]
    assert token["id"] in {t["id"] for t in listed}
    assert all("token" not in t and "token_hash" not in t for t in listed)

    revoked = client.delete(f"/api/v1/tokens/{token['id']}", headers=admin["headers"])
    assert revoked.status_code == 200 and revoked.get_json()["revoked_at"] is not None
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_a_member_sees_and_revokes_only_their_own_tokens(client, admin, database):
    own = client.get("/api/v1/tokens", headers=admin["editor_headers"]).get_json()["data"]
    assert {t["member_email"] for t in own} == {"ed@acme.example"}
    boss_token = client.get("/api/v1/tokens", headers=admin["headers"]).get_json()["data"]
    boss_id = next(t["id"] for t in boss_token if t["member_email"] == "boss@acme.example")
    assert client.delete(f"/api/v1/tokens/{boss_id}", headers=admin["editor_headers"]).status_code == 403
    for_other = client.post("/api/v1/tokens", json={"member_id": 1}, headers=admin["editor_headers"])
    assert for_other.status_code == 403

    assert client.delete(f"/api/v1/tokens/{own[0]['id']}", headers=admin["editor_headers"]).status_code == 200
    assert client.get("/api/v1/tokens", headers=admin["editor_headers"]).status_code == 401


def test_another_company_s_tokens_are_not_found(client, admin, database):
    other = make_tenant(database, "globex")
    with database.session() as session:
        theirs = session.scalar(select(ApiToken.id).where(ApiToken.name == "tests").order_by(ApiToken.id.desc()))
    assert client.delete(f"/api/v1/tokens/{theirs}", headers=admin["headers"]).status_code == 404
    assert client.get("/api/v1/me", headers=other.headers).status_code == 200


def test_cli_lists_and_revokes_a_token_by_prefix(client, tenant, database_url, settings):
    def cli(*args):
        return CliRunner().invoke(
            main, ["--database-url", database_url, *args], env={"CONNECTOR_SECRET_KEY": settings.secret_key}
        )

    prefix = tenant.token[:10]
    listed = cli("token", "list")
    assert listed.exit_code == 0 and f"{prefix}…" in listed.output and "active" in listed.output
    assert tenant.token not in listed.output

    revoked = cli("token", "revoke", prefix)
    assert revoked.exit_code == 0, revoked.output
    assert client.get("/api/v1/me", headers=tenant.headers).status_code == 401
    assert "revoked" in cli("token", "list").output
    assert cli("token", "revoke", "ctk_nothing").exit_code == 2


def test_text_the_database_cannot_store_is_refused_not_a_server_error(client, admin, tenant):
    bad = client.post("/api/v1/workspaces", json={"name": "nul\u0000name"}, headers=admin["headers"])
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "body.name"
    token = client.post("/api/v1/tokens", json={"name": "a\u0000b"}, headers=admin["headers"])
    assert token.status_code == 422
    erase = client.delete(tenant.url("/users/1?reason=%00"), headers=tenant.headers)
    assert erase.status_code == 422
