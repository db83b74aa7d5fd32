"""Materialised computed properties (``connector.computed`` defines and writes them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from connector.models.base import Base, BigId, JSONType, str_enum, utcnow
from connector.models.changes import change_seq_column
from connector.models.subjects import SubjectType


class ComputedValue(Base):
    """A materialised computed property of a user or account (``Segments`` is the first)."""

    __tablename__ = "computed_values"
    # Ends with the subject, so reading a few subjects' values within a workspace is precise by either index
    # (migration 0006).
    __table_args__ = (
        Index(None, "workspace_id", "subject_type", "name", "subject_id"),
        Index("ix_computed_values_change_seq", "workspace_id", "subject_type", "name", "change_seq"),
    )

    subject_type: Mapped[SubjectType] = mapped_column(str_enum(SubjectType, 10), primary_key=True)
    subject_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    # No foreign key to workspaces: values are written in bulk and the per-row FK check would dominate, as it did for
    # memberships (see ``SegmentMembership.segment_id``). A workspace's delete still removes its values: trigger
    # ``trg_workspaces_delete_computed`` (migration 0005). The engine is the only writer.
    workspace_id: Mapped[int] = mapped_column(BigId)
    value: Mapped[Any] = mapped_column(JSONType)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    change_seq: Mapped[int] = change_seq_column()
