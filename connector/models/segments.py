"""Segments, their stored membership and its history."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false, text
from sqlalchemy.orm import Mapped, mapped_column

from connector.models.base import Base, BigId, str_enum, utcnow
from connector.models.subjects import SubjectType


class SegmentKind(enum.StrEnum):
    DYNAMIC = "dynamic"
    MANUAL = "manual"
    # A segment shared from another workspace of the company: its members are this workspace's users matching a
    # member of the source segment by device id (``connector.segments.sharing``).
    SHARED = "shared"


class MembershipChange(enum.StrEnum):
    ENTERED = "entered"
    EXITED = "exited"


class SegmentGroup(Base):
    """A folder of segments; with single segments, the unit an HQ workspace syncs to its children."""

    __tablename__ = "segment_groups"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Synced from an HQ workspace (``connector.segments.hq``): the HQ workspace and its group; ``edited_in_child``
    # once this workspace's admins changed the copy.
    hq_workspace_id: Mapped[int | None] = mapped_column(BigId)
    hq_item_id: Mapped[int | None] = mapped_column(BigId)
    edited_in_child: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Segment(Base):
    __tablename__ = "segments"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    subject_type: Mapped[SubjectType] = mapped_column(str_enum(SubjectType, 10))
    kind: Mapped[SegmentKind] = mapped_column(str_enum(SegmentKind, 10))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("segment_groups.id", ondelete="SET NULL"), index=True)
    # The validated condition tree (dynamic segments); null for manual ones.
    conditions: Mapped[dict[str, Any] | None] = mapped_column()
    # Derived from the conditions when saved, so the engine picks the segments a change concerns without parsing:
    # the change kinds they read (``connector.segments.trees.dependencies``), whether time alone moves them,
    # and their smallest relative time unit in seconds (the sliding-window refresh cadence).
    dependencies: Mapped[list[Any]] = mapped_column(default=list, server_default=text("'[]'"))
    is_time_relative: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    time_unit_seconds: Mapped[int | None] = mapped_column(Integer)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    last_evaluated_at: Mapped[datetime | None]
    # Synced from an HQ workspace: the HQ workspace and its segment (the HQ badge); ``edited_in_child`` once this
    # workspace's admins changed the copy ("only where missing" then keeps it). No foreign keys: the origin lives
    # in another workspace, and a badge outlives its HQ item.
    hq_workspace_id: Mapped[int | None] = mapped_column(BigId)
    hq_item_id: Mapped[int | None] = mapped_column(BigId)
    edited_in_child: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # "pending" | "running" | "done" | "failed" (with the reason): ``connector.segments.evaluation``.
    evaluation: Mapped[str] = mapped_column(String(10), default="done", server_default=text("'done'"))
    evaluation_error: Mapped[str | None] = mapped_column(Text)
    # Up to when its window edges were followed (``connector.segments.edges``).
    edges_checked_at: Mapped[datetime | None]


class SegmentMembership(Base):
    """A subject's current presence in a segment. ``subject_id`` is a user or account id per the segment."""

    __tablename__ = "segment_memberships"
    __table_args__ = (Index(None, "subject_id"),)

    # No foreign key to segments, on purpose: the engine writes memberships in bulk (millions of rows on a full
    # refresh) and the per-row FK check was most of the cost (PostgreSQL 15: 3.3 s of 5.6 s for 800,000 rows).
    # A segment's delete still removes its rows: trigger ``trg_segments_delete_derived`` (migration 0005).
    # The engine is the only writer; nothing refuses an unknown segment id.
    segment_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subject_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    entered_at: Mapped[datetime] = mapped_column(default=utcnow)


class SegmentMembershipEvent(Base):
    """Every enter and exit, kept as history."""

    __tablename__ = "segment_membership_history"
    __table_args__ = (Index(None, "segment_id", "at"), Index(None, "subject_id", "at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # No foreign key, as for ``SegmentMembership.segment_id`` (PostgreSQL 15: the per-row FK check was 3.2 s of
    # 6.7 s for 800,000 rows); the delete cascade is trigger ``trg_segments_delete_derived`` (migration 0005).
    segment_id: Mapped[int] = mapped_column(BigId)
    subject_id: Mapped[int] = mapped_column(BigId)
    change: Mapped[MembershipChange] = mapped_column(str_enum(MembershipChange, 10))
    at: Mapped[datetime] = mapped_column(default=utcnow)
