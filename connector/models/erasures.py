"""The audit trail of erased people and accounts: that an erasure happened, never who it was."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from connector.models.base import Base, BigId, str_enum, utcnow
from connector.models.subjects import SubjectType


class Erasure(Base):
    """One erased subject: its former id, who asked, when, and how many rows of each kind went. No email, name,
    external id or attribute is kept."""

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    subject_type: Mapped[SubjectType] = mapped_column(str_enum(SubjectType, 10))
    subject_id: Mapped[int] = mapped_column(BigId)
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    reason: Mapped[str | None] = mapped_column(String(200))
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    erased_at: Mapped[datetime] = mapped_column(default=utcnow)
