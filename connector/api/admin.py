"""Company administration over the API: creating workspaces, and listing, issuing and revoking API tokens.

``POST /api/v1/workspaces`` (company admins), ``GET|POST /api/v1/tokens``, ``DELETE /api/v1/tokens/<id>``. A
member who is not a company admin sees and revokes only their own tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import g
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from connector import administration
from connector.api.common import BEARER, MAX_ID
from connector.api.context import authenticate, unit_of_work
from connector.api.problems import ProblemError
from connector.api.workspaces import workspace_json
from connector.errors import ConflictError, InvalidError, NotFoundError, ServiceError
from connector.models import Member, Role

bp = APIBlueprint("admin", __name__, url_prefix="/api/v1", abp_tags=[Tag(name="administration")], abp_security=BEARER)
bp.before_request(authenticate)


def blueprints() -> list[APIBlueprint]:
    return [bp]


@contextmanager
def service_errors() -> Iterator[None]:
    """The shared service errors as problem documents (fields in the body)."""
    try:
        yield
    except InvalidError as exc:
        errors = exc.prefixed("body").errors
        detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors)
        raise ProblemError(422, "Invalid request", detail, errors) from exc
    except NotFoundError as exc:
        raise ProblemError(404, "Not Found", str(exc)) from exc
    except ConflictError as exc:
        errors = [{**e, "field": f"body.{e['field']}"} for e in exc.errors]
        raise ProblemError(409, "Conflict", str(exc), errors, **exc.extra) from exc
    except ServiceError as exc:
        raise ProblemError(exc.status, "Forbidden" if exc.status == 403 else "Bad Request", str(exc)) from exc


class WorkspaceIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    slug: str | None = Field(None, max_length=100, description="Default: made from the name")
    time_zone: str = Field("UTC", max_length=64, description="IANA time zone")
    parent_id: int | None = Field(None, ge=1, le=MAX_ID, description="The HQ workspace this one belongs to")


class TokenIn(BaseModel):
    name: str = Field("", max_length=200)
    member_id: int | None = Field(None, ge=1, le=MAX_ID, description="Default: the caller (admins: any member)")


class TokenPath(BaseModel):
    token_id: int = Field(ge=1, le=MAX_ID)


def _member(session) -> Member:
    return session.get(Member, g.member.id)


@bp.post("/workspaces")
def create_workspace(body: WorkspaceIn):
    """Create a workspace in the caller's company (company admins only)."""
    with service_errors(), unit_of_work() as session:
        workspace = administration.add_workspace(
            session, _member(session), body.name, body.slug, body.time_zone, body.parent_id
        )
        return workspace_json(workspace, Role.WORKSPACE_ADMIN), 201


@bp.get("/tokens")
def list_tokens():
    """The company's tokens (company admins) or the caller's own; never their secrets."""
    with unit_of_work() as session:
        return {"data": [t.as_dict() for t in administration.list_tokens(session, _member(session))]}


@bp.post("/tokens")
def create_token(body: TokenIn):
    """Issue a token; the answer holds its secret, shown this once."""
    with service_errors(), unit_of_work() as session:
        view, secret = administration.issue_token(session, _member(session), body.name, body.member_id)
        return {**view.as_dict(), "token": secret}, 201


@bp.delete("/tokens/<int:token_id>")
def revoke_token(path: TokenPath):
    """Revoke a token: from now on it authenticates nothing (401)."""
    with service_errors(), unit_of_work() as session:
        return administration.revoke_token(session, _member(session), path.token_id).as_dict()
