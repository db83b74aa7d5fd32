from connector.models import Role
from tests.conftest import make_tenant


def test_request_without_token_is_401_problem(client, tenant):
    response = client.get(tenant.url())
    assert response.status_code == 401
    assert response.content_type == "application/problem+json"
    assert response.json["status"] == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_unknown_token_is_401(client, tenant):
    response = client.get(tenant.url(), headers={"Authorization": "Bearer ctk_nope"})
    assert response.status_code == 401


def test_token_reads_its_own_workspace(client, tenant):
    response = client.get(tenant.url(), headers=tenant.headers)
    assert response.status_code == 200
    assert response.json["slug"] == "acme"
    assert response.json["role"] == "workspace_admin"


def test_token_of_another_workspace_gets_404(client, tenant, other_tenant):
    response = client.get(other_tenant.url(), headers=tenant.headers)
    assert response.status_code == 404
    assert response.content_type == "application/problem+json"
    # By id as well as by slug.
    response = client.get(f"/api/v1/workspaces/{other_tenant.workspace_id}", headers=tenant.headers)
    assert response.status_code == 404


def test_workspace_list_shows_only_visible_workspaces(client, tenant, other_tenant):
    response = client.get("/api/v1/workspaces", headers=tenant.headers)
    assert [w["slug"] for w in response.json["data"]] == ["acme"]


def test_viewer_cannot_write(client, database, tenant):
    viewer = make_tenant(database, "initech", role=Role.VIEWER)
    response = client.post(viewer.url("/members"), headers=viewer.headers, json={})
    assert response.status_code in (403, 405)
    members = client.get(viewer.url("/members"), headers=viewer.headers)
    assert members.status_code == 403
    assert members.content_type == "application/problem+json"


def test_openapi_document_is_served(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.json["openapi"].startswith("3.")
