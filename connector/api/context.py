"""Per-request context: the database, the authenticated member and the workspace in the URL.

Authentication and the workspace wall run before the request body is validated, so a stranger learns nothing
(401) and a member of another workspace gets 404 for anything outside their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import current_app, g, request
from sqlalchemy.orm import Session

from connector.api.problems import ProblemError, not_found
from connector.db import Database
from connector.models import Role
from connector.tenancy import Access, access_to, member_for_token

READ_METHODS = {"GET", "HEAD", "OPTIONS"}


def database() -> Database:
    return current_app.extensions["connector.db"]


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """A session in one transaction for the current request."""
    with database().session() as session:
        yield session


def authenticate() -> None:
    """``before_request`` of the API: bearer token -> member; workspace in the URL -> access, or 404."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ProblemError(401, "Unauthorized", "A bearer token is required (Authorization: Bearer <token>).")
    with unit_of_work() as session:
        member = member_for_token(session, token.strip())
        if member is None:
            raise ProblemError(401, "Unauthorized", "The bearer token is not valid.")
        g.member = member
        workspace_ref = (request.view_args or {}).get("workspace")
        if workspace_ref is None:
            return
        found = access_to(session, member, str(workspace_ref))
        if found is None:
            raise not_found("workspace")
        g.workspace, g.access = found
    if request.method not in READ_METHODS and not g.access.allows(Role.EDITOR):
        raise ProblemError(403, "Forbidden", "This token's member may only read this workspace.")


def current_access() -> Access:
    return g.access


def workspace_id() -> int:
    return g.access.workspace_id


def require_role(role: Role) -> None:
    if not g.access.allows(role):
        raise ProblemError(403, "Forbidden", f"This needs the {role.value} role in this workspace.")
