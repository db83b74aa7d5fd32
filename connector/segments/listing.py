"""Reading membership: a segment's members (paged, searchable) and a subject's enter/exit history.

Shared by the API and the web UI, so both list the same people the same way.
"""

from __future__ import annotations

from sqlalchemy import Row, or_, select
from sqlalchemy.orm import Session

from connector.models import Account, Segment, SegmentMembership, SegmentMembershipEvent, SubjectType, User


def subject_columns(subject_type: SubjectType):
    """The subject model of a type and its identity columns."""
    if SubjectType(subject_type) == SubjectType.USER:
        return User, [User.external_id, User.email]
    return Account, [Account.external_id, Account.name, Account.domain]


def list_members(
    session: Session, segment: Segment, limit: int, after: int | None = None, search: str | None = None
) -> tuple[list[Row], bool]:
    """Current members in id order after ``after`` (rows: ``subject_id``, ``entered_at`` and the identity columns),
    keeping those whose email or external id starts with ``search``; and whether more follow."""
    subject, columns = subject_columns(segment.subject_type)
    stmt = (
        select(SegmentMembership.subject_id, SegmentMembership.entered_at, *columns)
        .join(subject, subject.id == SegmentMembership.subject_id)
        .where(SegmentMembership.segment_id == segment.id, subject.workspace_id == segment.workspace_id)
        .order_by(SegmentMembership.subject_id)
        .limit(limit + 1)
    )
    if after is not None:
        stmt = stmt.where(SegmentMembership.subject_id > after)
    if search:
        prefixes = [subject.external_id.startswith(search, autoescape=True)]
        if subject is User:
            prefixes.append(User.email.startswith(search.lower(), autoescape=True))
        stmt = stmt.where(or_(*prefixes))
    rows = list(session.execute(stmt).all())
    return rows[:limit], len(rows) > limit


def subject_history(
    session: Session, workspace_id: int, subject_type: SubjectType, subject_id: int, limit: int = 50
) -> list[Row]:
    """The segments a subject entered or left, newest first (rows: ``segment_id``, ``segment``, ``change``, ``at``)."""
    h = SegmentMembershipEvent
    stmt = (
        select(h.id, h.segment_id, Segment.name.label("segment"), h.change, h.at)
        .join(Segment, Segment.id == h.segment_id)
        .where(h.subject_id == subject_id, Segment.workspace_id == workspace_id, Segment.subject_type == subject_type)
        .order_by(h.id.desc())
        .limit(limit)
    )
    return list(session.execute(stmt).all())
