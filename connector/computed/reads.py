"""Reading materialised computed values alongside other rows (what a sync's planner joins to its subject pages)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Text, and_, cast
from sqlalchemy.orm import aliased

from connector.models import ComputedValue, SubjectType


def value_join(
    name: str, workspace_id: int, subject_type: SubjectType, subject_id: Any, after_id: int, last_id: int
) -> tuple[Any, ColumnElement, ColumnElement]:
    """``(table, on, value)`` to outer-join the property ``name`` of the subjects ``after_id < subject_id <=
    last_id`` (bounded on both sides, so the join stays a range read). ``value`` is the raw JSON text, None for a
    subject without a row (it has the property's default)."""
    values = aliased(ComputedValue)
    on = and_(
        values.subject_type == subject_type,
        values.subject_id == subject_id,
        values.subject_id > after_id,
        values.subject_id <= last_id,
        values.name == name,
        values.workspace_id == workspace_id,
    )
    return values, on, cast(values.value, Text)
