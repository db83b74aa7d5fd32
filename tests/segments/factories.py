"""Test data for segment tests, written straight into the tables with SQLAlchemy Core.

``Data(database)`` makes a fresh company and workspace (or takes ``workspace_id=``) and offers one method per kind
of row; each returns the new row's id. Every call commits on its own, so the rows are visible to any session the
code under test opens::

    data = Data(database, now=NOW)
    ann = data.user(email="ann@acme.com", attributes={"plan": "pro"}, tags=["vip"])
    data.events(ann, "purchase", [NOW - timedelta(days=1)] * 3)
    data.page_view(ann, "https://shop.example/offers/premium", at=NOW - timedelta(hours=2))
    acme = data.account(domain="acme.com", users=[ann])

``matching(database, tree, subject_type, workspace_id, now)`` parses, compiles and runs a tree and returns the
matching ids as a set.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert

from connector.db import Database
from connector.models import (
    Account,
    AccountTag,
    AccountUser,
    Company,
    Device,
    Event,
    EventKind,
    ObjectRecord,
    ObjectType,
    Segment,
    SegmentKind,
    SegmentMembership,
    SubjectType,
    User,
    UserTag,
    Workspace,
)
from connector.segments.compiler import compile_condition
from connector.segments.validation import parse_conditions

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
_serial = itertools.count(1)


def _next() -> int:
    return next(_serial)


def make_workspace(database: Database, slug: str | None = None) -> int:
    """A company with one workspace; returns the workspace id."""
    n = _next()
    with database.engine.begin() as conn:
        company_id = conn.execute(insert(Company.__table__).values(name=f"Company {n}")).inserted_primary_key[0]
        return conn.execute(
            insert(Workspace.__table__).values(company_id=company_id, name=f"Workspace {n}", slug=slug or f"ws-{n}")
        ).inserted_primary_key[0]


class Data:
    """Rows of one workspace."""

    def __init__(self, database: Database, workspace_id: int | None = None, now: datetime = NOW) -> None:
        self.database = database
        self.workspace_id = workspace_id if workspace_id is not None else make_workspace(database)
        self.now = now

    def _insert(self, table, **values) -> int:
        with self.database.engine.begin() as conn:
            return conn.execute(insert(table).values(workspace_id=self.workspace_id, **values)).inserted_primary_key[0]

    def insert_many(self, model, rows: Iterable[dict[str, Any]]) -> None:
        """Many rows of one table at once (``workspace_id`` is filled in)."""
        rows = [{"workspace_id": self.workspace_id, **row} for row in rows]
        if rows:
            with self.database.engine.begin() as conn:
                conn.execute(insert(model.__table__), rows)

    # -- subjects ------------------------------------------------------------------------------------------------

    def user(
        self,
        *,
        email: str | None = None,
        external_id: str | None = None,
        attributes: dict[str, Any] | None = None,
        tags: Iterable[str] = (),
        accounts: Iterable[int] = (),
        created_at: datetime | None = None,
    ) -> int:
        user_id = self._insert(
            User.__table__,
            email=email,
            external_id=external_id or f"u{_next()}",
            attributes=attributes or {},
            created_at=created_at or self.now,
        )
        self.insert_many(UserTag, ({"user_id": user_id, "tag": tag} for tag in tags))
        self.insert_many(AccountUser, ({"account_id": a, "user_id": user_id} for a in accounts))
        return user_id

    def account(
        self,
        *,
        external_id: str | None = None,
        domain: str | None = None,
        name: str | None = None,
        attributes: dict[str, Any] | None = None,
        tags: Iterable[str] = (),
        users: Iterable[int] = (),
        created_at: datetime | None = None,
    ) -> int:
        account_id = self._insert(
            Account.__table__,
            external_id=external_id or f"a{_next()}",
            domain=domain,
            name=name,
            attributes=attributes or {},
            created_at=created_at or self.now,
        )
        self.insert_many(AccountTag, ({"account_id": account_id, "tag": tag} for tag in tags))
        self.insert_many(AccountUser, ({"account_id": account_id, "user_id": u} for u in users))
        return account_id

    def link(self, account_id: int, user_id: int) -> None:
        self.insert_many(AccountUser, [{"account_id": account_id, "user_id": user_id}])

    def tag(self, user_id: int, *tags: str) -> None:
        self.insert_many(UserTag, ({"user_id": user_id, "tag": tag} for tag in tags))

    # -- activity ------------------------------------------------------------------------------------------------

    def event(
        self, user_id: int, name: str, *, at: datetime | None = None, properties: dict[str, Any] | None = None
    ) -> int:
        return self._insert(
            Event.__table__,
            user_id=user_id,
            kind=EventKind.TRACK,
            name=name,
            properties=properties or {},
            occurred_at=at or self.now,
            message_id=f"m{_next()}",
        )

    def events(
        self, user_id: int, name: str, times: Iterable[datetime], properties: dict[str, Any] | None = None
    ) -> None:
        """One track event per time."""
        self.insert_many(
            Event,
            (
                {
                    "user_id": user_id,
                    "kind": EventKind.TRACK,
                    "name": name,
                    "properties": properties or {},
                    "occurred_at": at,
                    "message_id": f"m{_next()}",
                }
                for at in times
            ),
        )

    def page_view(self, user_id: int, url: str | None, *, at: datetime | None = None, name: str = "page") -> int:
        return self._insert(
            Event.__table__,
            user_id=user_id,
            kind=EventKind.PAGE,
            name=name,
            url=url,
            properties={},
            occurred_at=at or self.now,
            message_id=f"m{_next()}",
        )

    def page_views(self, user_id: int, url: str, times: Iterable[datetime]) -> None:
        self.insert_many(
            Event,
            (
                {
                    "user_id": user_id,
                    "kind": EventKind.PAGE,
                    "name": "page",
                    "url": url,
                    "properties": {},
                    "occurred_at": at,
                    "message_id": f"m{_next()}",
                }
                for at in times
            ),
        )

    def device(self, user_id: int, platform: str, *, last_seen_at: datetime | None = None) -> int:
        return self._insert(
            Device.__table__,
            user_id=user_id,
            platform=platform,
            vendor_device_id=f"d{_next()}",
            last_seen_at=last_seen_at or self.now,
        )

    def object_type(self, name: str) -> int:
        return self._insert(ObjectType.__table__, name=name)

    def object(
        self,
        object_type_id: int,
        *,
        fields: dict[str, Any] | None = None,
        user_id: int | None = None,
        account_id: int | None = None,
    ) -> int:
        return self._insert(
            ObjectRecord.__table__,
            object_type_id=object_type_id,
            external_id=f"o{_next()}",
            fields=fields or {},
            user_id=user_id,
            account_id=account_id,
        )

    # -- segments ------------------------------------------------------------------------------------------------

    def segment(
        self,
        subject_type: SubjectType | str = SubjectType.USER,
        *,
        members: Iterable[int] = (),
        name: str | None = None,
        conditions: dict[str, Any] | None = None,
    ) -> int:
        """A segment with the given stored members (dynamic when ``conditions`` are given, else manual)."""
        segment_id = self._insert(
            Segment.__table__,
            name=name or f"Segment {_next()}",
            subject_type=SubjectType(subject_type),
            kind=SegmentKind.DYNAMIC if conditions else SegmentKind.MANUAL,
            conditions=conditions,
        )
        self.members(segment_id, members)
        return segment_id

    def members(self, segment_id: int, subject_ids: Iterable[int]) -> None:
        rows = [{"segment_id": segment_id, "subject_id": s} for s in subject_ids]
        if rows:
            with self.database.engine.begin() as conn:
                conn.execute(insert(SegmentMembership.__table__), rows)

    # -- evaluation ----------------------------------------------------------------------------------------------

    def matching(
        self,
        tree: dict[str, Any],
        subject_type: SubjectType | str = SubjectType.USER,
        *,
        now: datetime | None = None,
        subject_ids=None,
    ) -> set[int]:
        return matching(
            self.database, tree, subject_type, self.workspace_id, now=now or self.now, subject_ids=subject_ids
        )


def matching(
    database: Database,
    tree: dict[str, Any],
    subject_type: SubjectType | str,
    workspace_id: int,
    *,
    now: datetime = NOW,
    subject_ids=None,
) -> set[int]:
    """Parse, compile and run a condition tree; the ids that match."""
    subject_type = SubjectType(subject_type)
    node = parse_conditions(tree, subject_type)
    query = compile_condition(
        node, subject_type=subject_type, workspace_id=workspace_id, now=now, subject_ids=subject_ids
    )
    with database.session() as session:
        return set(session.execute(query).scalars())
