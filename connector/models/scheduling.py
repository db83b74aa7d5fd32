"""The scheduler's lease: which process runs the scheduler, on databases without advisory locks.

APScheduler's own job table (``apscheduler_jobs``) is created by a migration with the layout the library expects
and is not modelled here: only the library reads and writes it (``connector.scheduling.store`` reads it).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from connector.models.base import Base


class SchedulerLease(Base):
    """One row per lease name, held by one process until ``expires_at`` unless renewed."""

    __tablename__ = "scheduler_leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[datetime]
    expires_at: Mapped[datetime]
