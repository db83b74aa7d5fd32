"""List syncs: a sync whose segments each follow a HubSpot static list, the list kept per segment, and which of
its members the destination acknowledged."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from connector.models.base import Base, BigId, utcnow


class ListSync(Base):
    """A sync that also keeps one static list per chosen segment in step with the segment's members."""

    __tablename__ = "list_syncs"

    sync_id: Mapped[int] = mapped_column(ForeignKey("syncs.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SyncList(Base):
    """The remote list of one segment of a list sync, and the name it was last given."""

    __tablename__ = "sync_lists"

    sync_id: Mapped[int] = mapped_column(ForeignKey("syncs.id", ondelete="CASCADE"), primary_key=True)
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True)
    list_id: Mapped[str] = mapped_column(String(50))
    list_name: Mapped[str] = mapped_column(String(300))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SyncListMember(Base):
    """A subject the destination acknowledged as a member of a segment's list, by its remote record id."""

    __tablename__ = "sync_list_members"

    sync_id: Mapped[int] = mapped_column(ForeignKey("syncs.id", ondelete="CASCADE"), primary_key=True)
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True)
    subject_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    record_id: Mapped[str] = mapped_column(String(100))
