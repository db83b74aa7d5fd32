"""Companies, workspaces, members and tokens: creating them and deciding who sees what."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from connector.models import ApiToken, Company, Member, Role, Workspace, WorkspaceMembership, utcnow
from connector.security import hash_token, new_api_token

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")


@dataclass(frozen=True)
class Access:
    """A member's access to one workspace."""

    member_id: int
    workspace_id: int
    role: Role

    def allows(self, needed: Role) -> bool:
        return self.role.rank >= needed.rank


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:100]
    return slug or "workspace"


def create_company(session: Session, name: str) -> Company:
    company = Company(name=name)
    session.add(company)
    session.flush()
    return company


def create_workspace(
    session: Session,
    company: Company,
    name: str,
    slug: str | None = None,
    time_zone: str = "UTC",
    parent: Workspace | None = None,
) -> Workspace:
    workspace = Workspace(
        company_id=company.id,
        name=name,
        slug=slug or slugify(name),
        time_zone=time_zone,
        parent_id=parent.id if parent else None,
    )
    session.add(workspace)
    session.flush()
    return workspace


def create_member(
    session: Session,
    company: Company,
    email: str,
    name: str = "",
    *,
    company_admin: bool = False,
    roles: dict[Workspace, Role] | None = None,
) -> Member:
    member = Member(company_id=company.id, email=email, name=name, is_company_admin=company_admin)
    session.add(member)
    session.flush()
    for workspace, role in (roles or {}).items():
        session.add(WorkspaceMembership(workspace_id=workspace.id, member_id=member.id, role=role))
    session.flush()
    return member


def create_token(session: Session, member: Member, name: str = "") -> str:
    """Create an API token for a member and return it; only its hash is stored."""
    token = new_api_token()
    session.add(ApiToken(member_id=member.id, name=name, token_hash=hash_token(token), prefix=token[:10]))
    session.flush()
    return token


def member_for_token(session: Session, token: str) -> Member | None:
    row = session.execute(
        select(ApiToken, Member)
        .join(Member, Member.id == ApiToken.member_id)
        .where(ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None))
    ).first()
    if row is None:
        return None
    api_token, member = row
    now = utcnow()
    # Record use at most once a minute, so authentication is not a write on every request.
    if api_token.last_used_at is None or (now - api_token.last_used_at).total_seconds() > 60:
        api_token.last_used_at = now
    return member


def access_to(session: Session, member: Member, workspace_ref: str) -> tuple[Workspace, Access] | None:
    """The workspace named by slug or id, if this member may see it, with the member's role there."""
    condition = Workspace.slug == workspace_ref
    if workspace_ref.isascii() and workspace_ref.isdigit() and len(workspace_ref) < 19:
        condition = or_(condition, Workspace.id == int(workspace_ref))
    workspace = session.scalars(
        select(Workspace).where(condition, Workspace.company_id == member.company_id).limit(1)
    ).first()
    if workspace is None:
        return None
    if member.is_company_admin:
        return workspace, Access(member.id, workspace.id, Role.WORKSPACE_ADMIN)
    role = session.scalar(
        select(WorkspaceMembership.role).where(
            WorkspaceMembership.workspace_id == workspace.id, WorkspaceMembership.member_id == member.id
        )
    )
    if role is None:
        return None
    return workspace, Access(member.id, workspace.id, role)


def visible_workspaces(session: Session, member: Member) -> list[tuple[Workspace, Role]]:
    if member.is_company_admin:
        rows = session.scalars(
            select(Workspace).where(Workspace.company_id == member.company_id).order_by(Workspace.id)
        )
        return [(w, Role.WORKSPACE_ADMIN) for w in rows]
    rows = session.execute(
        select(Workspace, WorkspaceMembership.role)
        .join(WorkspaceMembership, WorkspaceMembership.workspace_id == Workspace.id)
        .where(WorkspaceMembership.member_id == member.id)
        .order_by(Workspace.id)
    )
    return [(w, r) for w, r in rows]


def workspace_members(session: Session, workspace_id: int) -> list[tuple[Member, Role]]:
    """The members of a workspace with their roles, in id order."""
    rows = session.execute(
        select(Member, WorkspaceMembership.role)
        .join(WorkspaceMembership, WorkspaceMembership.member_id == Member.id)
        .where(WorkspaceMembership.workspace_id == workspace_id)
        .order_by(Member.id)
    )
    return [(m, r) for m, r in rows]


def visible_workspaces_of(session: Session, member_id: int) -> list[tuple[Workspace, Role]]:
    """``visible_workspaces`` of the member with that id (none when the member is gone)."""
    member = session.get(Member, member_id)
    return [] if member is None else visible_workspaces(session, member)
