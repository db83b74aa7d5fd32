"""Erasing a person or an account (GDPR): ``DELETE /api/v1/workspaces/<ws>/users/<id>`` and ``.../accounts/<id>``
(workspace admins). The answer is the audit record: what went, never who it was."""

from __future__ import annotations

from flask import g
from flask_openapi3 import APIBlueprint
from pydantic import BaseModel, Field

from connector.api.common import MAX_ID, WorkspacePath, workspace_blueprint
from connector.api.context import require_role, unit_of_work, workspace_id
from connector.api.problems import invalid, not_found
from connector.errors import InvalidError, NotFoundError
from connector.ingest.erasure import erase
from connector.models import Erasure, Role, SubjectType
from connector.segments.incremental import apply_changes

bp = workspace_blueprint("erasure", "erasure")


def blueprints() -> list[APIBlueprint]:
    return [bp]


class ErasePath(WorkspacePath):
    subject_id: int = Field(ge=1, le=MAX_ID)


class EraseQuery(BaseModel):
    reason: str | None = Field(None, max_length=200, description="Kept in the audit record (no personal data)")


def erasure_json(erasure: Erasure) -> dict:
    return {
        "id": erasure.id,
        "subject_type": erasure.subject_type.value,
        "subject_id": erasure.subject_id,
        "requested_by": erasure.requested_by,
        "reason": erasure.reason,
        "erased_at": erasure.erased_at,
        "counts": erasure.counts,
    }


def _erase(subject_type: SubjectType, subject_id: int, reason: str | None):
    require_role(Role.WORKSPACE_ADMIN)
    workspace = workspace_id()
    with unit_of_work() as session:
        try:
            erasure, changes = erase(
                session, workspace, subject_type, subject_id, requested_by=g.member.id, reason=reason
            )
        except NotFoundError as exc:
            raise not_found(subject_type.value) from exc
        except InvalidError as exc:
            raise invalid(f"query.{exc.errors[0]['field']}", exc.errors[0]["reason"]) from exc
        apply_changes(session, workspace, changes)
        return erasure_json(erasure)


@bp.delete("/users/<int:subject_id>")
def erase_user(path: ErasePath, query: EraseQuery):
    """Erase a person: their data, memberships, history and computed values; mirror syncs clear or remove their
    remote record at their next run. An audit record without personal data remains."""
    return _erase(SubjectType.USER, path.subject_id, query.reason)


@bp.delete("/accounts/<int:subject_id>")
def erase_account(path: ErasePath, query: EraseQuery):
    """Erase an account, as for a person; its users stay, unlinked from it."""
    return _erase(SubjectType.ACCOUNT, path.subject_id, query.reason)
