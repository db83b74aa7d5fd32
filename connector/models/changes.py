"""The change order syncs read: which subjects changed since a sync's destination last acknowledged a state.

``users``, ``accounts`` and ``computed_values`` carry ``change_seq``, the position of their last write in one
database-wide order, set by triggers (migration 0012) whatever writes them. Deleted rows leave a
``ChangeTombstone``. ``connector.syncs.changes`` reads them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, FetchedValue, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from connector.models.base import Base, BigId, JSONType, utcnow


def change_seq_column() -> Mapped[int]:
    """The ``change_seq`` column of a tracked table: written by the database only."""
    return mapped_column(BigInteger, server_default=FetchedValue(), server_onupdate=FetchedValue())


class ChangeCounter(Base):
    """SQLite's change order: one row, bumped by the triggers (PostgreSQL uses transaction ids instead)."""

    __tablename__ = "change_counter"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)


class ChangeTombstone(Base):
    """A deleted subject or computed value, at its place in the change order."""

    __tablename__ = "change_tombstones"
    __table_args__ = (Index("ix_change_tombstones_workspace_change_seq", "workspace_id", "subject_type", "change_seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigId)
    subject_type: Mapped[str] = mapped_column(String(10))
    subject_id: Mapped[int] = mapped_column(BigId)
    change_seq: Mapped[int] = change_seq_column()


class SyncWatermark(Base):
    """Where a sync's last complete run started in the change order, and with which configuration.

    The next run reads the subjects written at or after ``since_seq`` or by a transaction then ``in_progress``, plus
    ``pending`` (subject ids it must look at again); a different ``fingerprint`` (mappings, identity, filter,
    mode) means a full run.
    """

    __tablename__ = "sync_watermarks"

    sync_id: Mapped[int] = mapped_column(ForeignKey("syncs.id", ondelete="CASCADE"), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    since_seq: Mapped[int] = mapped_column(BigInteger)
    in_progress: Mapped[list[int]] = mapped_column(JSONType)
    pending: Mapped[list[int]] = mapped_column(JSONType)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
