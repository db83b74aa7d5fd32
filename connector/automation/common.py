"""What the automation services share: input checks in the shared error vocabulary, the channel rule, ids."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import ColumnElement, case, literal
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from connector.errors import ConflictError, InvalidError
from connector.models import Channel, Segment, SubjectType
from connector.segments.conditions import ConditionError, Node
from connector.segments.trees import referenced_segment_ids
from connector.segments.validation import parse_conditions
from connector.segments.validation import validate_references as _validate_references

CHANNELS = tuple(c.value for c in Channel)
MAX_NAME = 200


def parsed(model: type[BaseModel], data: Any, location: str = "") -> BaseModel:
    """``data`` validated by ``model``; pydantic's errors become an ``InvalidError`` naming each field."""
    if not isinstance(data, dict):
        raise InvalidError.one(location or "body", "must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = []
        for error in exc.errors(include_url=False):
            path = location
            for part in error["loc"]:
                path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
            errors.append({"field": path, "reason": error["msg"]})
        raise InvalidError(errors) from None


def check_text(value: str, field: str, limit: int = MAX_NAME, *, empty: bool = False) -> str:
    if not empty and not value.strip():
        raise InvalidError.one(field, "must not be empty")
    if len(value) > limit:
        raise InvalidError.one(field, f"must be at most {limit} characters")
    if "\x00" in value:
        raise InvalidError.one(field, "must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidError.one(field, "must be valid Unicode text") from None
    return value


def condition_tree(
    session: Session, workspace_id: int, data: Any, subject_type: SubjectType, location: str = "conditions"
) -> tuple[Node, list[int]]:
    """A condition tree of the segment language, validated with its segment references; returns the tree and the
    ids of the segments it reads (``segment`` in / not in leaves)."""
    try:
        node = parse_conditions(data, subject_type, location=location)
    except ConditionError as exc:
        raise InvalidError(exc.errors) from None

    def lookup(segment_id: int) -> SubjectType | None:
        segment = session.get(Segment, segment_id)
        return segment.subject_type if segment is not None and segment.workspace_id == workspace_id else None

    errors = _validate_references(node, lookup, subject_type=subject_type, location=location)
    if errors:
        raise InvalidError(errors)
    return node, sorted(referenced_segment_ids(node))


def channel_for(default_channel: ColumnElement, channels: list[str], fallback: str) -> ColumnElement:
    """The channel rule: the person's default channel when the sequence can send on it, else the fallback."""
    return case((default_channel.in_(channels), default_channel), else_=literal(fallback))


def insert_for(session: Session) -> Callable:
    """The dialect's INSERT, which knows ``ON CONFLICT DO NOTHING``."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def name_taken(what: str, name: str) -> ConflictError:
    reason = f"another {what} of this workspace is named {name!r}"
    return ConflictError(reason, [{"field": "name", "reason": reason}])


def hq_origin(item: Any) -> dict[str, int] | None:
    """The HQ badge of an item pushed from an HQ workspace (None for a workspace's own item)."""
    if item.hq_item_id is None:
        return None
    return {"workspace_id": item.hq_workspace_id, "item_id": item.hq_item_id}
