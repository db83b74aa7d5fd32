"""Contact-company associations a destination acknowledged, per pair of syncs writing contacts and companies."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from connector.models.base import Base, BigId, utcnow


class SyncAssociation(Base):
    """A user's contact associated with one of their accounts' company, by the syncs that wrote each."""

    __tablename__ = "sync_associations"

    contact_sync_id: Mapped[int] = mapped_column(ForeignKey("syncs.id", ondelete="CASCADE"), primary_key=True)
    company_sync_id: Mapped[int] = mapped_column(ForeignKey("syncs.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
