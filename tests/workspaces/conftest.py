"""A company with an HQ and two child workspaces, and three projects that share segments, with members of every
kind of access; everything through the real API on both databases."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from connector.db import Database
from connector.models import Role
from connector.tenancy import create_company, create_member, create_token, create_workspace


@dataclass
class Org:
    client: Any
    ids: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def url(self, workspace: str, path: str = "") -> str:
        return f"/api/v1/workspaces/{workspace}{path}"

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def get(self, who: str, workspace: str, path: str = ""):
        return self.client.get(self.url(workspace, path), headers=self.headers(who))

    def post(self, who: str, workspace: str, path: str, body: Any):
        return self.client.post(self.url(workspace, path), headers=self.headers(who), json=body)

    def put(self, who: str, workspace: str, path: str, body: Any):
        return self.client.put(self.url(workspace, path), headers=self.headers(who), json=body)

    def patch(self, who: str, workspace: str, path: str, body: Any):
        return self.client.patch(self.url(workspace, path), headers=self.headers(who), json=body)

    def delete(self, who: str, workspace: str, path: str):
        return self.client.delete(self.url(workspace, path), headers=self.headers(who))

    def ingest(self, workspace: str, endpoint: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        response = self.post("boss", workspace, f"/{endpoint}", {"batch": items})
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    def segment(self, workspace: str, name: str, conditions: dict | None = None, **extra) -> dict[str, Any]:
        body = {"name": name, "subject_type": "user", "conditions": conditions or {"type": "all", "children": []}}
        # Evaluated before the answer: these tests read members and compare reads right after creating.
        response = self.post("boss", workspace, "/segments?wait=true", {**body, **extra})
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.get_json()


@pytest.fixture
def org(database: Database, client) -> Org:
    """Workspaces ``hq`` (children ``paris``, ``lyon``), ``project-a``, ``project-b``, ``project-c``.

    Members: ``boss`` (company admin), ``hq_admin`` / ``hq_editor`` (of hq), ``paris_admin`` / ``paris_viewer``,
    ``ab_admin`` (admin of project-a and project-b), ``a_admin`` (admin of project-a), ``b_viewer`` (admin of
    project-a, viewer of project-b)."""
    found = Org(client)
    with database.session() as session:
        company = create_company(session, "Brand")
        hq = create_workspace(session, company, "HQ", slug="hq")
        workspaces = {
            "hq": hq,
            "paris": create_workspace(session, company, "Paris", slug="paris", parent=hq),
            "lyon": create_workspace(session, company, "Lyon", slug="lyon", parent=hq),
            "project-a": create_workspace(session, company, "Project A", slug="project-a"),
            "project-b": create_workspace(session, company, "Project B", slug="project-b"),
            "project-c": create_workspace(session, company, "Project C", slug="project-c"),
        }
        found.ids = {slug: w.id for slug, w in workspaces.items()}
        admin, editor, viewer = Role.WORKSPACE_ADMIN, Role.EDITOR, Role.VIEWER
        members = {
            "boss": create_member(session, company, "boss@brand.example", company_admin=True),
            "hq_admin": create_member(session, company, "hq@brand.example", roles={hq: admin}),
            "hq_editor": create_member(session, company, "ed@brand.example", roles={hq: editor}),
            "paris_admin": create_member(session, company, "paris@brand.example", roles={workspaces["paris"]: admin}),
            "paris_viewer": create_member(session, company, "pv@brand.example", roles={workspaces["paris"]: viewer}),
            "ab_admin": create_member(
                session,
                company,
                "ab@brand.example",
                roles={workspaces["project-a"]: admin, workspaces["project-b"]: admin},
            ),
            "a_admin": create_member(session, company, "a@brand.example", roles={workspaces["project-a"]: admin}),
            "b_viewer": create_member(
                session,
                company,
                "bv@brand.example",
                roles={workspaces["project-a"]: admin, workspaces["project-b"]: viewer},
            ),
        }
        found.tokens = {name: create_token(session, member) for name, member in members.items()}
    return found
