"""What the sync services share when they read a client's document: id bounds, NUL refusal, pydantic errors as
field paths, and the per-workspace name check."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.errors import InvalidError
from connector.models import SubjectType

MAX_ID = 2**63 - 1
SUBJECT_TYPES = {
    "user": SubjectType.USER,
    "users": SubjectType.USER,
    "account": SubjectType.ACCOUNT,
    "accounts": SubjectType.ACCOUNT,
}


def reject_nul(document: Any, path: str) -> None:
    """NUL characters cannot be stored (PostgreSQL text and JSONB refuse them): refuse them where they are."""
    if isinstance(document, str):
        if "\x00" in document:
            raise InvalidError.one(path, "must not contain NUL characters")
    elif isinstance(document, dict):
        for key, value in document.items():
            reject_nul(key, path)
            reject_nul(value, f"{path}.{key}")
    elif isinstance(document, list | tuple):
        for i, value in enumerate(document):
            reject_nul(value, f"{path}[{i}]")


def validation_errors(exc: ValidationError, prefix: str) -> list[dict[str, str]]:
    errors = []
    for error in exc.errors():
        path = prefix
        for part in error["loc"]:
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        errors.append({"field": path, "reason": error["msg"]})
    return errors


def name_taken(session: Session, model, workspace_id: int, name: str, own_id: int | None = None) -> bool:
    stmt = select(model.id).where(model.workspace_id == workspace_id, model.name == name)
    if own_id is not None:
        stmt = stmt.where(model.id != own_id)
    return session.scalar(stmt.limit(1)) is not None
