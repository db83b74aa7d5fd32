"""Across workspaces: segments shared with other workspaces, HQ segment mappings and HQ sync reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from connector.models.base import Base, BigId, JSONType, utcnow


class SegmentShare(Base):
    """A segment of one workspace shared with another workspace of the same company.

    ``proxy_segment_id`` is the segment that stands for it in the target (kind ``shared``): its membership is the
    target's users matching a source member by device id, so the target uses it like any of its segments.
    """

    __tablename__ = "segment_shares"
    __table_args__ = (UniqueConstraint("source_segment_id", "target_workspace_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source_segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"))
    source_workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    target_workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    proxy_segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"), unique=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SegmentMapping(Base):
    """In a child workspace: which of its segments stands for an HQ segment (the "mapped values" of segments).

    Written by HQ syncs, editable by the child's admins; pushed conditions naming an HQ segment are rewritten
    through it, never by name."""

    __tablename__ = "segment_mappings"
    __table_args__ = (UniqueConstraint("workspace_id", "hq_segment_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    hq_workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    # No foreign key: the HQ segment lives in another workspace and the mapping outlives it (it says where it went).
    hq_segment_id: Mapped[int] = mapped_column(BigId)
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"), index=True)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class HqSyncReport(Base):
    """One HQ sync (or dry run) and its per-child report."""

    __tablename__ = "hq_sync_reports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    hq_workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    mode: Mapped[str] = mapped_column(String(20))
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    request: Mapped[dict[str, Any]] = mapped_column(JSONType)
    report: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
