"""What each sync last prepared at its destination (fields, options), so a run with changes spends no request on it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from connector.models.base import Base, utcnow


class SyncPreparation(Base):
    """The write plan a sync's destination was last prepared for (by fingerprint) and under which schema version
    of the destination; ``options`` the multi-select choices that plan made sure of (by field), ``retired`` those a
    later plan no longer writes, kept until no synced record holds them and the destination has dropped them."""

    __tablename__ = "sync_preparations"

    sync_id: Mapped[int] = mapped_column(ForeignKey("syncs.id", ondelete="CASCADE"), primary_key=True)
    destination_id: Mapped[int] = mapped_column(ForeignKey("destinations.id", ondelete="CASCADE"), index=True)
    plan_hash: Mapped[str] = mapped_column(String(64))
    schema_version: Mapped[str] = mapped_column(String(200))
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    retired: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prepared_at: Mapped[datetime] = mapped_column(default=utcnow)
