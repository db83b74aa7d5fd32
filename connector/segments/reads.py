"""Reading a segment's members and the membership history, a page at a time (what the API lists and exports).

Every function stays inside the workspace of the segment (or the one given) and returns plain rows; shaping them is
the caller's business.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from connector.models import Account, Segment, SegmentMembership, SegmentMembershipEvent, SubjectType, User

EXPORT_CHUNK = 1_000


def identity_columns(subject_type: SubjectType) -> tuple[type, list[Any]]:
    """The subject model of a type and the columns that identify its subjects to people."""
    if SubjectType(subject_type) == SubjectType.USER:
        return User, [User.external_id, User.email]
    return Account, [Account.external_id, Account.name, Account.domain]


def member_page(
    session: Session, segment: Segment, limit: int, after: int | None, search: str | None = None
) -> Sequence[Any]:
    """Up to ``limit`` members after subject id ``after``, in id order, with ``entered_at`` and identity columns;
    ``search`` keeps those whose external id (or a user's email) starts with it."""
    subject, columns = identity_columns(segment.subject_type)
    stmt = (
        select(SegmentMembership.subject_id, SegmentMembership.entered_at, *columns)
        .join(subject, subject.id == SegmentMembership.subject_id)
        .where(SegmentMembership.segment_id == segment.id, subject.workspace_id == segment.workspace_id)
        .order_by(SegmentMembership.subject_id)
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(SegmentMembership.subject_id > after)
    if search:
        prefixes = [subject.external_id.startswith(search, autoescape=True)]
        if subject is User:
            prefixes.append(User.email.startswith(search.lower(), autoescape=True))
        stmt = stmt.where(or_(*prefixes))
    return session.execute(stmt).all()


def member_chunks(session: Session, segment_id: int, subject_type: SubjectType) -> Iterator[Sequence[Any]]:
    """Every member with ``entered_at``, ``attributes`` and identity columns, in id order, ``EXPORT_CHUNK`` rows at
    a time (streamed from the database, constant memory)."""
    subject, columns = identity_columns(subject_type)
    stmt = (
        select(SegmentMembership.subject_id, SegmentMembership.entered_at, subject.attributes, *columns)
        .join(subject, subject.id == SegmentMembership.subject_id)
        .where(SegmentMembership.segment_id == segment_id)
        .order_by(SegmentMembership.subject_id)
        .execution_options(yield_per=EXPORT_CHUNK)
    )
    yield from session.execute(stmt).partitions()


def segment_history_page(
    session: Session, segment: Segment, limit: int, since: datetime | None, before: int | None
) -> Sequence[Any]:
    """Up to ``limit`` enters and exits of the segment, newest first."""
    h = SegmentMembershipEvent
    stmt = select(h.id, h.subject_id, h.change, h.at).where(h.segment_id == segment.id)
    return _history_page(session, stmt, limit, since, before)


def subject_history_page(
    session: Session,
    workspace_id: int,
    subject_type: SubjectType,
    subject_id: int,
    limit: int,
    since: datetime | None,
    before: int | None,
) -> Sequence[Any]:
    """Up to ``limit`` segments of the workspace a subject entered or left, newest first."""
    h = SegmentMembershipEvent
    stmt = (
        select(h.id, h.segment_id, Segment.name, h.change, h.at)
        .join(Segment, Segment.id == h.segment_id)
        .where(
            h.subject_id == subject_id,
            Segment.workspace_id == workspace_id,
            Segment.subject_type == subject_type,
        )
    )
    return _history_page(session, stmt, limit, since, before)


def _history_page(session: Session, stmt: Select, limit: int, since: datetime | None, before: int | None):
    h = SegmentMembershipEvent
    if since is not None:
        stmt = stmt.where(h.at >= since)
    if before is not None:
        stmt = stmt.where(h.id < before)
    return session.execute(stmt.order_by(h.id.desc()).limit(limit)).all()
