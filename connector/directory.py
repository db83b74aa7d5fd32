"""The directory: listing and looking up users and accounts, with everything known about each (the read side of
ingestion; it reads segments' membership and computed values too, so it sits above ``ingest`` and ``segments``).

Every query is scoped to one workspace. Lists page by id (keyset, so a page costs the same wherever it is);
a user's events page by (occurred_at, id), newest first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from connector.ingest.statements import json_text
from connector.models import (
    Account,
    AccountTag,
    AccountUser,
    ComputedValue,
    Device,
    Event,
    EventKind,
    Segment,
    SegmentMembership,
    SubjectType,
    User,
    UserTag,
)

RECENT_EVENTS = 50
ACCOUNT_USERS = 100


class UnknownSegmentError(Exception):
    def __init__(self, ref: str) -> None:
        super().__init__(ref)
        self.ref = ref


@dataclass
class SubjectFilter:
    """What a list is narrowed to; every condition must hold. Segments are segment ids of the subject's type."""

    external_id: str | None = None
    email: str | None = None
    domain: str | None = None
    attributes: list[tuple[str, str]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    segments: list[int] = field(default_factory=list)
    not_segments: list[int] = field(default_factory=list)


def as_id(ref: str) -> int | None:
    """``ref`` as a row id, or None when it is not one (only ASCII digits, within 64 bits)."""
    if ref.isascii() and ref.isdigit() and len(ref) < 19:
        return int(ref)
    return None


def segment_ids(session: Session, workspace_id: int, subject_type: SubjectType, refs: list[str]) -> list[int]:
    """Ids of the segments named (by name, or else by id) among this workspace's segments of ``subject_type``.

    Raises ``UnknownSegmentError`` for the first ref that names none.
    """
    if not refs:
        return []
    numbers = [n for n in map(as_id, refs) if n is not None]
    rows = session.execute(
        select(Segment.id, Segment.name).where(
            Segment.workspace_id == workspace_id,
            Segment.subject_type == subject_type,
            or_(Segment.name.in_(refs), Segment.id.in_(numbers)),
        )
    ).all()
    by_name = {row.name: row.id for row in rows}
    by_id = {row.id for row in rows}
    ids = []
    for ref in refs:
        if ref in by_name:
            ids.append(by_name[ref])
        elif as_id(ref) in by_id:
            ids.append(as_id(ref))
        else:
            raise UnknownSegmentError(ref)
    return ids


def _filtered(model, tag_model, owner, workspace_id: int, filters: SubjectFilter) -> Select:
    query = select(model).where(model.workspace_id == workspace_id)
    if filters.external_id is not None:
        query = query.where(model.external_id == filters.external_id)
    if filters.email is not None:
        query = query.where(model.email == filters.email)
    if filters.domain is not None:
        query = query.where(model.domain == filters.domain)
    for name, value in filters.attributes:
        query = query.where(json_text(model.attributes, name) == value)
    for tag in filters.tags:
        query = query.where(select(tag_model.tag).where(owner == model.id, tag_model.tag == tag).exists())
    for segment_id in filters.segments:
        query = query.where(model.id.in_(_members(segment_id)))
    for segment_id in filters.not_segments:
        query = query.where(model.id.not_in(_members(segment_id)))
    return query


def _members(segment_id: int) -> Select:
    return select(SegmentMembership.subject_id).where(SegmentMembership.segment_id == segment_id)


def list_users(
    session: Session, workspace_id: int, filters: SubjectFilter, limit: int, after_id: int | None = None
) -> tuple[list[User], bool]:
    """Users by id after ``after_id``, and whether more follow."""
    query = _filtered(User, UserTag, UserTag.user_id, workspace_id, filters)
    return _page(session, query, User, limit, after_id)


def list_accounts(
    session: Session, workspace_id: int, filters: SubjectFilter, limit: int, after_id: int | None = None
) -> tuple[list[Account], bool]:
    query = _filtered(Account, AccountTag, AccountTag.account_id, workspace_id, filters)
    return _page(session, query, Account, limit, after_id)


def _page(session: Session, query: Select, model, limit: int, after_id: int | None):
    if after_id is not None:
        query = query.where(model.id > after_id)
    rows = list(session.scalars(query.order_by(model.id).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def find_user(session: Session, workspace_id: int, by: str, ref: str) -> User | None:
    """The user whose ``by`` (``id``, ``external_id`` or ``email``) is ``ref``."""
    if by == "id":
        if as_id(ref) is None:
            return None
        condition = User.id == as_id(ref)
    elif by == "email":
        condition = User.email == ref.strip().lower()
    else:
        condition = User.external_id == ref
    return session.scalars(select(User).where(User.workspace_id == workspace_id, condition)).first()


def find_account(session: Session, workspace_id: int, by: str, ref: str) -> Account | None:
    """The account whose ``by`` (``id`` or ``external_id``) is ``ref``."""
    if by == "id":
        if as_id(ref) is None:
            return None
        condition = Account.id == as_id(ref)
    else:
        condition = Account.external_id == ref
    return session.scalars(select(Account).where(Account.workspace_id == workspace_id, condition)).first()


def tags_of(session: Session, tag_model, owner, ids: list[int]) -> dict[int, list[str]]:
    tags: dict[int, list[str]] = {i: [] for i in ids}
    if ids:
        for owner_id, tag in session.execute(
            select(owner, tag_model.tag).where(owner.in_(ids)).order_by(tag_model.tag)
        ):
            tags[owner_id].append(tag)
    return tags


def user_tags(session: Session, ids: list[int]) -> dict[int, list[str]]:
    return tags_of(session, UserTag, UserTag.user_id, ids)


def account_tags(session: Session, ids: list[int]) -> dict[int, list[str]]:
    return tags_of(session, AccountTag, AccountTag.account_id, ids)


def computed_values(session: Session, workspace_id: int, subject_type: SubjectType, subject_id: int) -> dict[str, Any]:
    rows = session.execute(
        select(ComputedValue.name, ComputedValue.value)
        .where(
            ComputedValue.workspace_id == workspace_id,
            ComputedValue.subject_type == subject_type,
            ComputedValue.subject_id == subject_id,
        )
        .order_by(ComputedValue.name)
    )
    return {name: value for name, value in rows}


def user_accounts(session: Session, user_id: int) -> list[Account]:
    return list(
        session.scalars(
            select(Account)
            .join(AccountUser, AccountUser.account_id == Account.id)
            .where(AccountUser.user_id == user_id)
            .order_by(Account.id)
        )
    )


def user_devices(session: Session, user_id: int) -> list[Device]:
    return list(session.scalars(select(Device).where(Device.user_id == user_id).order_by(Device.id)))


def account_users(session: Session, account_id: int, limit: int = ACCOUNT_USERS) -> tuple[list[User], int]:
    """The first ``limit`` users of an account by id, and how many it has."""
    users = list(
        session.scalars(
            select(User)
            .join(AccountUser, AccountUser.user_id == User.id)
            .where(AccountUser.account_id == account_id)
            .order_by(User.id)
            .limit(limit)
        )
    )
    count = session.scalar(select(func.count()).select_from(AccountUser).where(AccountUser.account_id == account_id))
    return users, count or 0


def user_events(
    session: Session,
    user_id: int,
    limit: int,
    before: tuple[datetime, int] | None = None,
    name: str | None = None,
    kind: EventKind | None = None,
) -> tuple[list[Event], bool]:
    """A user's events newest first (by occurred_at, then id) before the ``before`` key, and whether more follow."""
    query = select(Event).where(Event.user_id == user_id)
    if name is not None:
        query = query.where(Event.name == name)
    if kind is not None:
        query = query.where(Event.kind == kind)
    if before is not None:
        at, event_id = before
        query = query.where(or_(Event.occurred_at < at, and_(Event.occurred_at == at, Event.id < event_id)))
    rows = list(session.scalars(query.order_by(Event.occurred_at.desc(), Event.id.desc()).limit(limit + 1)))
    return rows[:limit], len(rows) > limit
