"""SQL sources: a database to read from, the models (SELECTs) read out of it, what each model last read, runs."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from connector.models.base import Base, BigId, str_enum, utcnow


class ModelKind(enum.StrEnum):
    USERS = "users"
    ACCOUNTS = "accounts"
    ACCOUNT_LINKS = "account_links"
    EVENTS = "events"
    OBJECTS = "objects"


class Source(Base):
    """A database to read from. The SQLAlchemy URL lives only encrypted (``url_encrypted``); ``display_url`` is the
    same URL with its password and secret-looking query values masked."""

    __tablename__ = "sources"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    display_url: Mapped[str] = mapped_column(Text)
    url_encrypted: Mapped[str] = mapped_column(Text)
    # {"kind": "manual"} | {"kind": "interval", "minutes": N} | {"kind": "cron", "expression": "...", "timezone": ...}
    schedule: Mapped[dict[str, Any]] = mapped_column(default=lambda: {"kind": "manual"})
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SourceModel(Base):
    """A SELECT of a source mapped to users, accounts, account links, events or object records.

    ``mapping`` names the columns: the identity/item fields (``{"external_id": "id", "email": "mail"}``) and the
    attribute or field columns (``"attributes": ["plan", ...]``; absent: every column not mapped otherwise).
    ``cursor_column`` set: incremental by cursor (``cursor_state`` is the last committed ``{"value", "key"}``);
    unset: by a hash diff of the rows (``source_rows``).
    """

    __tablename__ = "source_models"
    __table_args__ = (UniqueConstraint("source_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[ModelKind] = mapped_column(str_enum(ModelKind, 20))
    query: Mapped[str] = mapped_column(Text)
    mapping: Mapped[dict[str, Any]] = mapped_column(default=dict)
    cursor_column: Mapped[str | None] = mapped_column(String(200))
    cursor_state: Mapped[dict[str, Any] | None] = mapped_column()
    # "none": rows gone from the source are left alone; "clear": their mapped attributes are cleared (users,
    # accounts); "remove": the subject is erased (users, accounts). Account links are unlinked by either.
    deletes: Mapped[str] = mapped_column(String(10), default="none")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SourceRow(Base):
    """The hash of a row a model last wrote, by the row's key: an unchanged row is never written again."""

    __tablename__ = "source_rows"

    # No foreign key to source_models, on purpose: a first run writes a row here per source row, and the per-row
    # check was more than half of that insert. A model's delete still removes its rows (trigger
    # ``trg_source_models_delete_rows``, migration 0020); a run locks its model's row before each chunk it writes.
    model_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    row_key: Mapped[str] = mapped_column(String(500), primary_key=True)
    row_hash: Mapped[str] = mapped_column(String(32))


class SourceRun(Base):
    """One run of one model. A running run is the model's lease: at most one per model (a partial unique index)."""

    __tablename__ = "source_runs"
    __table_args__ = (
        Index(None, "model_id", "started_at"),
        Index(
            "uq_source_runs_running",
            "model_id",
            unique=True,
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("source_models.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(10))
    trigger: Mapped[str] = mapped_column(String(20), default="manual")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    rows_read: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    changed: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    invalid: Mapped[int] = mapped_column(Integer, default=0)
    deleted: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)


class SourceRunError(Base):
    """A row of a run that could not be taken (invalid), with its key and the reason."""

    __tablename__ = "source_run_errors"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("source_runs.id", ondelete="CASCADE"), index=True)
    row_key: Mapped[str | None] = mapped_column(String(500))
    reason: Mapped[str] = mapped_column(Text)
