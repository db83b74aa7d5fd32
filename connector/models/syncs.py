"""Destinations, syncs, what each sync last delivered per subject, and run history."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from connector.models.base import Base, BigId, str_enum, utcnow
from connector.models.subjects import SubjectType


class SyncMode(enum.StrEnum):
    UPSERT = "upsert"
    UPDATE = "update"
    MIRROR = "mirror"
    # Records that exist remotely already are left alone (and counted as existing); only new ones are created.
    CREATE = "create"


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"
    SKIPPED = "skipped"


class RecordState(enum.StrEnum):
    SYNCED = "synced"
    REJECTED = "rejected"
    REMOVED = "removed"


class Destination(Base):
    """A configured external system. Secret options live only in ``secrets_encrypted`` (Fernet)."""

    __tablename__ = "destinations"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(50))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    secrets_encrypted: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Sync(Base):
    __tablename__ = "syncs"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    destination_id: Mapped[int] = mapped_column(ForeignKey("destinations.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    subject_type: Mapped[SubjectType] = mapped_column(str_enum(SubjectType, 10))
    destination_object: Mapped[str] = mapped_column(String(100))
    # [{"source": {"kind": "attribute"|"field"|"computed"|"constant", ...}, "destination": "firstname", ...}]
    mappings: Mapped[list[Any]] = mapped_column(default=list)
    # {"source": <source>, "destination": "email"}: which mapped value matches the remote record.
    identity: Mapped[dict[str, Any]] = mapped_column(default=dict)
    mode: Mapped[SyncMode] = mapped_column(str_enum(SyncMode, 10), default=SyncMode.UPSERT)
    # Mirror mode only: what happens to a subject that leaves the filter, "clear" (its Segments fields are
    # emptied) or "remove" (the remote record is removed, where the destination supports it).
    mirror_action: Mapped[str | None] = mapped_column(String(10))
    # {"kind": "manual"} | {"kind": "interval", "minutes": N} | {"kind": "cron", "expression": "...", "timezone": "..."}
    schedule: Mapped[dict[str, Any]] = mapped_column(default=lambda: {"kind": "manual"})
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SyncSegment(Base):
    """The segment filter of a sync: members of any of these segments (none = every subject)."""

    __tablename__ = "sync_segments"

    sync_id: Mapped[int] = mapped_column(ForeignKey("syncs.id", ondelete="CASCADE"), primary_key=True)
    segment_id: Mapped[int] = mapped_column(
        ForeignKey("segments.id", ondelete="RESTRICT"), primary_key=True, index=True
    )


class SyncRecord(Base):
    """What the destination last acknowledged for one subject of one sync."""

    __tablename__ = "sync_records"
    __table_args__ = (Index(None, "sync_id", "state"),)

    # No foreign key to syncs, on purpose: a run writes a row per acknowledged record, and the per-row check was a
    # third of that upsert. A sync's delete still removes its records (trigger ``trg_syncs_delete_records``,
    # migration 0020); ``syncs.records`` locks the sync's row once per statement it writes.
    sync_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subject_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    identity: Mapped[str | None] = mapped_column(String(500))
    payload_hash: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict[str, Any] | None] = mapped_column()
    remote_id: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[RecordState] = mapped_column(str_enum(RecordState, 10))
    error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SyncRun(Base):
    """One execution of a sync. A running run is the sync's lease: at most one per sync (a partial unique
    index), kept alive by ``heartbeat_at``; a run whose heartbeat went stale is taken over (``connector.syncs.locks``).
    """

    __tablename__ = "sync_runs"
    __table_args__ = (
        Index(None, "sync_id", "started_at"),
        Index(
            "uq_sync_runs_running",
            "sync_id",
            unique=True,
            sqlite_where=text("status = 'running' AND NOT dry_run"),
            postgresql_where=text("status = 'running' AND NOT dry_run"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sync_id: Mapped[int] = mapped_column(ForeignKey("syncs.id", ondelete="CASCADE"))
    status: Mapped[RunStatus] = mapped_column(str_enum(RunStatus, 10))
    trigger: Mapped[str] = mapped_column(String(20), default="manual")
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    planned: Mapped[int] = mapped_column(Integer, default=0)
    added: Mapped[int] = mapped_column(Integer, default=0)
    changed: Mapped[int] = mapped_column(Integer, default=0)
    removed: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    invalid: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    # Planned but not delivered: retries exhausted, or the run stopped before their batch was answered.
    unsent: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # Create-only syncs: records found remotely already, left alone.
    existing: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    first_error: Mapped[str | None] = mapped_column(Text)
    heartbeat_at: Mapped[datetime | None]


class SyncRunError(Base):
    """A record of a run that was invalid (never sent) or rejected by the destination, with the reason."""

    __tablename__ = "sync_run_errors"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("sync_runs.id", ondelete="CASCADE"), index=True)
    subject_id: Mapped[int | None] = mapped_column(BigId)
    identity: Mapped[str | None] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
