"""Previewing a definition against the data without saving anything, and describing subjects for samples."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    exists,
    func,
    select,
)
from sqlalchemy.orm import Session

from connector.models import (
    Account,
    SubjectType,
    User,
    utcnow,
)
from connector.scratch import (
    evaluate_into,
)
from connector.segments.compiler import compile_condition
from connector.segments.conditions import Node
from connector.segments.evaluated import MEMBERS


def preview_membership(
    session: Session,
    workspace_id: int,
    node: Node,
    subject_type: SubjectType,
    *,
    segment_id: int | None = None,
    now: datetime | None = None,
    sample_size: int = 20,
) -> dict[str, Any]:
    """Evaluate a definition without saving anything: how many match, a sample, and — against a saved segment's
    membership — how many would enter and leave."""
    subject_type = SubjectType(subject_type)
    query = compile_condition(node, subject_type=subject_type, workspace_id=workspace_id, now=now or utcnow())
    evaluated_table, count = evaluate_into(session, query)
    evaluated = evaluated_table.c.subject_id
    sample_ids = select(evaluated).order_by(evaluated).limit(sample_size).scalar_subquery()
    result: dict[str, Any] = {"count": count, "sample": describe_subjects(session, subject_type, sample_ids)}
    if segment_id is None:
        result.update(would_add=count, would_remove=0)
        return result
    is_member = exists().where(MEMBERS.c.segment_id == segment_id, MEMBERS.c.subject_id == evaluated)
    result["would_add"] = session.scalar(select(func.count()).select_from(evaluated_table).where(~is_member))
    result["would_remove"] = session.scalar(
        select(func.count())
        .select_from(MEMBERS)
        .where(MEMBERS.c.segment_id == segment_id, ~exists().where(evaluated == MEMBERS.c.subject_id))
    )
    return result


def describe_subjects(session: Session, subject_type: SubjectType, ids) -> list[dict[str, Any]]:
    """Identity fields of subjects (ids: a collection or a one-column select), in id order."""
    if SubjectType(subject_type) == SubjectType.USER:
        rows = session.execute(select(User.id, User.external_id, User.email).where(User.id.in_(ids)).order_by(User.id))
        return [{"id": r.id, "external_id": r.external_id, "email": r.email} for r in rows]
    rows = session.execute(
        select(Account.id, Account.external_id, Account.name, Account.domain)
        .where(Account.id.in_(ids))
        .order_by(Account.id)
    )
    return [{"id": r.id, "external_id": r.external_id, "name": r.name, "domain": r.domain} for r in rows]
