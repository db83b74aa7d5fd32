"""Operations: alerts raised on syncs, the request log of shared rate limits, and the ledger of task deliveries."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from connector.models.base import Base, BigId, str_enum, utcnow


class AlertKind(enum.StrEnum):
    OVERDUE = "overdue"  # a scheduled run has not started within the grace period
    FAILING = "failing"  # N failed runs in a row, or too many rejected records


class AlertStatus(enum.StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class Alert(Base):
    """A problem with a sync, open until the sync's next successful run resolves it. At most one open alert of a
    kind per sync (a partial unique index), so checkers running in several processes raise it once."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index(None, "workspace_id", "opened_at"),
        Index(
            "uq_alerts_open",
            "sync_id",
            "kind",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    sync_id: Mapped[int] = mapped_column(ForeignKey("syncs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[AlertKind] = mapped_column(str_enum(AlertKind, 20))
    status: Mapped[AlertStatus] = mapped_column(str_enum(AlertStatus, 10), default=AlertStatus.OPEN)
    message: Mapped[str] = mapped_column(Text)
    # The sync's latest run when the alert opened: a later successful run resolves it.
    after_run_id: Mapped[int | None] = mapped_column(BigId)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]


class RateLimitKey(Base):
    """One row per shared rate limit (a destination's budget): the row every taker locks first."""

    __tablename__ = "rate_limit_keys"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)


class RateLimitSlot(Base):
    """A request counted against a shared rate limit: taken at ``taken_at`` (epoch seconds) or, while ``open``
    (in flight), counted as now; closed when answered, from the moment of the answer."""

    __tablename__ = "rate_limit_slots"
    __table_args__ = (Index(None, "key", "taken_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(200))
    taken_at: Mapped[float] = mapped_column(Float(precision=53))
    open: Mapped[bool] = mapped_column(Boolean, default=False)


class TaskDelivery(Base):
    """A task message that a worker started: a second start of the same delivery is a redelivery (the first
    worker died or lost its broker connection)."""

    __tablename__ = "task_deliveries"

    delivery: Mapped[str] = mapped_column(String(200), primary_key=True)
    worker: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
