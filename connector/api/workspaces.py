"""Workspaces and members, as the token's member may see them."""

from __future__ import annotations

from flask import g
from flask_openapi3 import APIBlueprint, Tag

from connector.api.common import BEARER, WorkspacePath, workspace_blueprint
from connector.api.context import authenticate, require_role, unit_of_work
from connector.models import Member, Role, Workspace
from connector.tenancy import visible_workspaces_of, workspace_members

root = APIBlueprint(
    "workspaces", __name__, url_prefix="/api/v1", abp_tags=[Tag(name="workspaces")], abp_security=BEARER
)
root.before_request(authenticate)
scoped = workspace_blueprint("workspace", "workspaces")


def blueprints() -> list[APIBlueprint]:
    return [root, scoped]


def workspace_json(workspace: Workspace, role: Role | None = None) -> dict:
    body = {
        "id": workspace.id,
        "slug": workspace.slug,
        "name": workspace.name,
        "time_zone": workspace.time_zone,
        "parent_id": workspace.parent_id,
        "created_at": workspace.created_at,
    }
    if role is not None:
        body["role"] = role.value
    return body


@root.get("/me")
def me():
    """The member the token belongs to."""
    member: Member = g.member
    return {"id": member.id, "email": member.email, "name": member.name, "company_admin": member.is_company_admin}


@root.get("/workspaces")
def list_workspaces():
    """The workspaces this token's member may see, with the member's role in each."""
    with unit_of_work() as session:
        return {"data": [workspace_json(w, r) for w, r in visible_workspaces_of(session, g.member.id)]}


@scoped.get("")
def get_workspace(path: WorkspacePath):
    """One workspace."""
    return workspace_json(g.workspace, g.access.role)


@scoped.get("/members")
def list_members(path: WorkspacePath):
    """The members of a workspace and their roles (workspace admins only)."""
    require_role(Role.WORKSPACE_ADMIN)
    with unit_of_work() as session:
        rows = workspace_members(session, g.access.workspace_id)
        return {"data": [{"id": m.id, "email": m.email, "name": m.name, "role": role.value} for m, role in rows]}
