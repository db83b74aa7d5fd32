"""Why one subject is (or is not) in a segment: every node of its tree, matched or not, with what was seen.

Each node's ``matched`` comes from running that node's own compiled SQL restricted to the subject, so the
explanation can never disagree with the segment; the ``observed`` values of a leaf (the attribute's value, the
number of events in the window, …) come from small queries built from the same compiler clauses.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector.models import SubjectType
from connector.segments.compiler import (
    compile_condition,
    compile_predicate,
    device_clauses,
    event_clauses,
    message_clauses,
    object_clauses,
    object_owner,
    page_view_clauses,
    segment_id_in_workspace,
)
from connector.segments.conditions import (
    AccountSegmentCondition,
    AttributeCondition,
    DeviceCondition,
    EventCondition,
    Group,
    MessageCondition,
    Node,
    ObjectCondition,
    PageViewCondition,
    SegmentCondition,
    TagCondition,
    UsersCondition,
)
from connector.segments.scope import (
    ACCOUNT_TAGS,
    ACCOUNT_USERS,
    ACCOUNTS,
    DEVICES,
    EVENTS,
    MEMBERSHIPS,
    MESSAGE_EVENTS,
    OBJECTS,
    USER_TAGS,
    USERS,
    Scope,
    as_utc,
)
from connector.segments.typecheck import mismatch


def explain(
    session: Session,
    node: Node,
    *,
    subject_type: SubjectType,
    workspace_id: int,
    subject_id: int,
    now: datetime,
) -> dict[str, Any]:
    """The tree for one subject: ``{"path", "type", "matched", "children": [...]}`` for groups and
    ``{"path", "type", "matched", "observed": {...}}`` for leaves; JSON-ready.

    A subject that is not in the workspace matches nothing; its observed values are empty.
    """
    subject_type = SubjectType(subject_type)
    subject = USERS if subject_type == SubjectType.USER else ACCOUNTS
    scope = Scope(subject_type, subject, workspace_id, as_utc(now))
    exists = session.execute(
        select(subject.c.id).where(subject.c.id == subject_id, subject.c.workspace_id == workspace_id)
    ).first()
    return _explain(session, node, scope, subject_id if exists else None, "conditions")


def _explain(session: Session, node: Node, scope: Scope, subject_id: int | None, path: str) -> dict[str, Any]:
    matched = False
    if subject_id is not None:
        query = compile_condition(
            node,
            subject_type=scope.subject_type,
            workspace_id=scope.workspace_id,
            now=scope.now,
            subject_ids=[subject_id],
        )
        matched = session.execute(query).first() is not None
    entry: dict[str, Any] = {"path": path, "type": node.type, "matched": matched}
    if isinstance(node, Group):
        entry["children"] = [
            _explain(session, child, scope, subject_id, f"{path}.children[{i}]")
            for i, child in enumerate(node.children)
        ]
    elif subject_id is None:
        entry["observed"] = {}
    else:
        entry["observed"] = _jsonable(OBSERVERS[type(node)](session, node, scope, subject_id))
    return entry


def _attribute(session: Session, node: AttributeCondition, scope: Scope, subject_id: int) -> dict[str, Any]:
    if node.of == "account":
        links = ACCOUNT_USERS
        rows = session.execute(
            select(ACCOUNTS.c.id, ACCOUNTS.c[node.field] if node.field else ACCOUNTS.c.attributes)
            .join(links, links.c.account_id == ACCOUNTS.c.id)
            .where(links.c.user_id == subject_id, ACCOUNTS.c.workspace_id == scope.workspace_id)
            .order_by(ACCOUNTS.c.id)
        ).all()
        return {"accounts": [{"account_id": account_id, **_value(node, value)} for account_id, value in rows]}
    column = scope.subject.c[node.field] if node.field else scope.subject.c.attributes
    value = session.execute(select(column).where(scope.subject_id == subject_id)).scalar_one()
    return _value(node, value)


def _value(node: AttributeCondition, stored: Any) -> dict[str, Any]:
    if node.field:
        return {"present": stored is not None, "value": stored}
    attributes = stored if isinstance(stored, dict) else {}
    value = attributes.get(node.name)
    observed = {"present": value is not None, "value": value}
    why = mismatch(node, value)
    if why:
        observed["why"] = why  # e.g. a number stored as text: explain says so instead of a bare "false"
    return observed


def _count(session: Session, source, key, clauses: list, subject_id: int) -> int:
    return session.execute(select(func.count()).select_from(source).where(key == subject_id, *clauses)).scalar_one()


def _tag(session: Session, node: TagCondition, scope: Scope, subject_id: int) -> dict[str, Any]:
    tags = USER_TAGS if scope.subject_type == SubjectType.USER else ACCOUNT_TAGS
    key = tags.c.user_id if scope.subject_type == SubjectType.USER else tags.c.account_id
    clauses = [tags.c.tag == node.value, tags.c.workspace_id == scope.workspace_id]
    found = _count(session, tags, key, clauses, subject_id)
    return {"has_tag": bool(found)}


def _event(session: Session, node: EventCondition, scope: Scope, subject_id: int) -> dict[str, Any]:
    return {"count": _count(session, EVENTS, EVENTS.c.user_id, event_clauses(node, EVENTS, scope), subject_id)}


def _page_view(session: Session, node: PageViewCondition, scope: Scope, subject_id: int) -> dict[str, Any]:
    return {"count": _count(session, EVENTS, EVENTS.c.user_id, page_view_clauses(node, EVENTS, scope), subject_id)}


def _device(session: Session, node: DeviceCondition, scope: Scope, subject_id: int) -> dict[str, Any]:
    devices = session.execute(
        select(DEVICES.c.platform, DEVICES.c.last_seen_at)
        .where(DEVICES.c.user_id == subject_id, DEVICES.c.workspace_id == scope.workspace_id)
        .order_by(DEVICES.c.last_seen_at.desc())
    ).all()
    return {
        "count": _count(session, DEVICES, DEVICES.c.user_id, device_clauses(node, DEVICES, scope), subject_id),
        "devices": [{"platform": platform, "last_seen_at": seen} for platform, seen in devices],
    }


def _message(session: Session, node: MessageCondition, scope: Scope, subject_id: int) -> dict[str, Any]:
    clauses = message_clauses(node, MESSAGE_EVENTS, scope)
    return {"count": _count(session, MESSAGE_EVENTS, MESSAGE_EVENTS.c.user_id, clauses, subject_id)}


def _object(session: Session, node: ObjectCondition, scope: Scope, subject_id: int) -> dict[str, Any]:
    key = object_owner(OBJECTS, scope.subject_type)
    return {"count": _count(session, OBJECTS, key, object_clauses(node, OBJECTS, scope), subject_id)}


def _users(session: Session, node: UsersCondition, scope: Scope, subject_id: int) -> dict[str, Any]:
    links = ACCOUNT_USERS
    user_ids = select(links.c.user_id).where(links.c.account_id == subject_id)
    user_scope = Scope(SubjectType.USER, USERS, scope.workspace_id, scope.now)
    in_workspace = [USERS.c.workspace_id == scope.workspace_id, USERS.c.id.in_(user_ids)]
    total = session.execute(select(func.count()).select_from(USERS).where(*in_workspace)).scalar_one()
    matching = session.execute(
        select(func.count()).select_from(USERS).where(*in_workspace, compile_predicate(node.condition, user_scope))
    ).scalar_one()
    return {"users": total, "matching": matching}


def _segment(session: Session, node: SegmentCondition, scope: Scope, subject_id: int) -> dict[str, Any]:
    segment_id = segment_id_in_workspace(node.segment_id, scope.subject_type, scope.workspace_id)
    found = _count(session, MEMBERSHIPS, MEMBERSHIPS.c.subject_id, [MEMBERSHIPS.c.segment_id == segment_id], subject_id)
    return {"member": bool(found)}


def _account_segment(session: Session, node: AccountSegmentCondition, scope: Scope, subject_id: int) -> dict[str, Any]:
    links = ACCOUNT_USERS
    segment_id = segment_id_in_workspace(node.segment_id, SubjectType.ACCOUNT, scope.workspace_id)
    accounts = session.execute(
        select(links.c.account_id)
        .where(links.c.user_id == subject_id, links.c.workspace_id == scope.workspace_id)
        .order_by(links.c.account_id)
    ).scalars()
    members = session.execute(
        select(MEMBERSHIPS.c.subject_id)
        .join(links, links.c.account_id == MEMBERSHIPS.c.subject_id)
        .where(links.c.user_id == subject_id, MEMBERSHIPS.c.segment_id == segment_id)
        .order_by(MEMBERSHIPS.c.subject_id)
    ).scalars()
    return {"accounts": list(accounts), "accounts_in_segment": list(members)}


OBSERVERS = {
    AttributeCondition: _attribute,
    TagCondition: _tag,
    EventCondition: _event,
    PageViewCondition: _page_view,
    DeviceCondition: _device,
    ObjectCondition: _object,
    UsersCondition: _users,
    MessageCondition: _message,
    SegmentCondition: _segment,
    AccountSegmentCondition: _account_segment,
}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value
