"""Helpers shared by the segment engine's tests: reading membership, history and ``Segments`` back."""

from __future__ import annotations

from sqlalchemy import func, select

from connector.computed import SEGMENTS, get_computed
from connector.db import Database
from connector.models import ComputedValue, SegmentMembership, SegmentMembershipEvent

PRO = {"type": "attribute", "name": "plan", "operator": "eq", "value": "pro"}


def members(database: Database, segment_id: int) -> set[int]:
    with database.session() as session:
        return set(
            session.scalars(select(SegmentMembership.subject_id).where(SegmentMembership.segment_id == segment_id))
        )


def history(database: Database, segment_id: int) -> list[tuple[int, str]]:
    """``(subject_id, change)`` in the order written."""
    with database.session() as session:
        rows = session.execute(
            select(SegmentMembershipEvent.subject_id, SegmentMembershipEvent.change)
            .where(SegmentMembershipEvent.segment_id == segment_id)
            .order_by(SegmentMembershipEvent.id)
        )
        return [(subject_id, change.value) for subject_id, change in rows]


def segments_of(database: Database, subject_id: int, subject_type: str = "user") -> list[str]:
    with database.session() as session:
        return get_computed(session, subject_type, [subject_id], [SEGMENTS])[subject_id][SEGMENTS]


def computed_rows(database: Database, name: str = SEGMENTS) -> dict[int, object]:
    with database.session() as session:
        rows = session.execute(select(ComputedValue.subject_id, ComputedValue.value).where(ComputedValue.name == name))
        return dict(rows.all())


def count_rows(database: Database, model) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(model))
