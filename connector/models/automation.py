"""Automation: sequences and enrolments, message events, segment actions, views, playbooks and their firings."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from connector.models.base import Base, BigId, str_enum, utcnow
from connector.models.subjects import SubjectType


class Channel(enum.StrEnum):
    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"
    WHATSAPP = "whatsapp"
    IN_APP = "in_app"


class EnrolmentState(enum.StrEnum):
    ACTIVE = "active"
    FINISHED = "finished"
    EXITED = "exited"


class MessageEventKind(enum.StrEnum):
    SENT = "sent"
    DELIVERED = "delivered"
    OPENED = "opened"
    CLICKED = "clicked"
    BOUNCED = "bounced"
    UNSUBSCRIBED = "unsubscribed"


class FiringStatus(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    SUPPRESSED = "suppressed"


class Sequence(Base):
    """An ordered list of messages with delays; ``steps`` is ``[{"name", "delay_minutes"}]``."""

    __tablename__ = "sequences"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    channels: Mapped[list[Any]] = mapped_column(default=list)
    steps: Mapped[list[Any]] = mapped_column(default=list)
    webhook_url: Mapped[str | None] = mapped_column(Text)
    # ``{"secret": ...}`` encrypted with the service's secret key (``connector.security.SecretBox``).
    secrets_encrypted: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Enrolment(Base):
    """A person in a sequence. At most one active enrolment per person and sequence (a partial unique index)."""

    __tablename__ = "enrolments"
    __table_args__ = (
        Index(
            "uq_enrolments_active",
            "sequence_id",
            "user_id",
            unique=True,
            sqlite_where=text("state = 'active'"),
            postgresql_where=text("state = 'active'"),
        ),
        Index(None, "state", "next_step_at"),
        Index("ix_enrolments_user", "user_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # The sequence's workspace; no foreign key of its own (the sequence's cascades from the workspace, and a bulk
    # enrolment would pay one more check per row: migration 0017).
    workspace_id: Mapped[int] = mapped_column(BigId, index=True)
    # No foreign key: the sequence's delete deletes its enrolments by trigger, and writers lock the sequence once per
    # statement instead of once per row (migration 0019).
    sequence_id: Mapped[int] = mapped_column(BigId)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(20))
    state: Mapped[EnrolmentState] = mapped_column(str_enum(EnrolmentState, 10), default=EnrolmentState.ACTIVE)
    # segment_action, playbook, api or ui, and the id of the action run or playbook firing that enrolled.
    source: Mapped[str] = mapped_column(String(20))
    source_id: Mapped[int | None] = mapped_column(BigId)
    next_step: Mapped[int] = mapped_column(Integer, default=0)
    next_step_at: Mapped[datetime | None]
    enrolled_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]


class MessageEvent(Base):
    """What happened to a message of a sequence step: recorded by the steps, or ingested from a messaging tool."""

    __tablename__ = "message_events"
    __table_args__ = (
        UniqueConstraint("workspace_id", "message_id"),
        Index("ix_message_events_user_kind_time", "user_id", "kind", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    sequence_id: Mapped[int | None] = mapped_column(ForeignKey("sequences.id", ondelete="SET NULL"), index=True)
    step: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[MessageEventKind] = mapped_column(str_enum(MessageEventKind, 20))
    channel: Mapped[str | None] = mapped_column(String(20))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    message_id: Mapped[str] = mapped_column(String(255))


class SegmentAction(Base):
    """Every day at ``time`` (HH:MM) in ``timezone``, enrol the segment's members in the sequence."""

    __tablename__ = "segment_actions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"), unique=True)
    sequence_id: Mapped[int] = mapped_column(ForeignKey("sequences.id", ondelete="CASCADE"), index=True)
    time: Mapped[str] = mapped_column(String(5))
    timezone: Mapped[str] = mapped_column(String(64))
    fallback_channel: Mapped[str] = mapped_column(String(20))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    last_run_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SegmentActionRun(Base):
    """One day's run of a segment action; the unique local date makes a day's run happen once."""

    __tablename__ = "segment_action_runs"
    __table_args__ = (UniqueConstraint("action_id", "run_date"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    action_id: Mapped[int] = mapped_column(ForeignKey("segment_actions.id", ondelete="CASCADE"))
    run_date: Mapped[str] = mapped_column(String(10))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    enrolled: Mapped[int] = mapped_column(Integer, default=0)
    already_enrolled: Mapped[int] = mapped_column(Integer, default=0)


class View(Base):
    """A saved list of users or accounts: conditions, columns, sort. It keeps no membership."""

    __tablename__ = "views"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    subject_type: Mapped[SubjectType] = mapped_column(str_enum(SubjectType, 10))
    conditions: Mapped[dict[str, Any]] = mapped_column()
    segment_ids: Mapped[list[Any]] = mapped_column(default=list)
    columns: Mapped[list[Any]] = mapped_column(default=list)
    sort: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Pushed from an HQ workspace (``connector.automation.hq``): the HQ workspace and its item (the HQ badge);
    # ``edited_in_child`` once this workspace changed the copy. No foreign keys, as for segments.
    hq_workspace_id: Mapped[int | None] = mapped_column(BigId)
    hq_item_id: Mapped[int | None] = mapped_column(BigId)
    edited_in_child: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Playbook(Base):
    """Trigger + conditions + actions. Enter/exit triggers read the membership history in ``lanes``."""

    __tablename__ = "playbooks"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    subject_type: Mapped[SubjectType] = mapped_column(str_enum(SubjectType, 10))
    # {"kind": "enters"|"exits", "segment_id": N} or {"kind": "schedule", "expression": cron, "timezone": zone}
    trigger: Mapped[dict[str, Any]] = mapped_column()
    trigger_segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"), index=True)
    conditions: Mapped[dict[str, Any] | None] = mapped_column()
    segment_ids: Mapped[list[Any]] = mapped_column(default=list)
    actions: Mapped[list[Any]] = mapped_column(default=list)
    secrets_encrypted: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # History before this instant is never fired (set when created and when resumed from now).
    read_from: Mapped[datetime] = mapped_column(default=utcnow)
    # Pushed from an HQ workspace (``connector.automation.hq``): the HQ workspace and its item (the HQ badge);
    # ``edited_in_child`` once this workspace changed the copy. No foreign keys, as for segments.
    hq_workspace_id: Mapped[int | None] = mapped_column(BigId)
    hq_item_id: Mapped[int | None] = mapped_column(BigId)
    edited_in_child: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    lanes: Mapped[list[PlaybookLane]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, lazy="selectin", order_by="PlaybookLane.lane"
    )

    @property
    def cursor(self) -> int:
        """Every membership-history row up to this id has been read (the slowest lane's cursor)."""
        return min((lane.cursor for lane in self.lanes), default=0)


class PlaybookLane(Base):
    """One lane of a playbook's reading of the membership history: the subjects with ``subject_id % lanes ==
    lane`` (``lanes``: how many lanes the playbook has), read after ``cursor``, the last history id this lane read.

    Lanes are locked and advanced independently, so the lanes of one playbook fire in parallel transactions; a
    subject always falls in the same lane, so its firings stay in order and its loop bound is counted in one place.
    """

    __tablename__ = "playbook_lanes"

    playbook_id: Mapped[int] = mapped_column(ForeignKey("playbooks.id", ondelete="CASCADE"), primary_key=True)
    lane: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    cursor: Mapped[int] = mapped_column(BigId, default=0)


class PlaybookFiring(Base):
    """One firing of a playbook for one subject: what triggered it, its result and error.

    ``trigger_ref`` is the membership-history id (enter/exit) or the scheduled instant (schedule): with the
    subject it is unique per playbook, so nothing fires twice for one cause.
    """

    __tablename__ = "playbook_firings"
    __table_args__ = (
        UniqueConstraint("playbook_id", "trigger_ref", "subject_id"),
        Index(None, "playbook_id", "subject_id", "created_at"),
        Index(
            "ix_playbook_firings_pending",
            "id",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # The playbook's workspace; no foreign key or index of its own (firings are read by playbook, and go with it).
    workspace_id: Mapped[int] = mapped_column(BigId)
    # No foreign key: the playbook's delete deletes its firings by trigger, and firing locks the playbook once per
    # batch instead of once per row (migration 0019).
    playbook_id: Mapped[int] = mapped_column(BigId)
    subject_id: Mapped[int] = mapped_column(BigId)
    trigger: Mapped[str] = mapped_column(String(20))
    trigger_ref: Mapped[str] = mapped_column(String(64))
    triggered_at: Mapped[datetime]
    status: Mapped[FiringStatus] = mapped_column(str_enum(FiringStatus, 20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    results: Mapped[list[Any]] = mapped_column(default=list)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
