"""Which process runs the scheduler: exactly one per database, the others stand by.

PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) taken on a dedicated connection and held for
as long as the scheduler is active. The server releases it the moment that connection ends, so when the holding
process dies (or its connection is cut) a standby takes over at its next try, a few seconds later.

Other dialects (SQLite, and databases without advisory locks): a lease row in ``scheduler_leases`` that the
holder renews every few seconds and that expires ``lease_seconds`` after the last renewal. When the holder dies,
a standby takes over once the lease has expired. Lease times come from the processes' clocks, which on SQLite
(one machine) are one clock.

Both kinds answer ``holds()`` before every scheduling pass, so a process that has lost the lock stops starting
jobs at once, not only at its next heartbeat.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from datetime import timedelta
from typing import Protocol

from sqlalchemy import delete, insert, or_, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from connector.db import Database
from connector.models import SchedulerLease, utcnow

log = logging.getLogger("connector.scheduling")

LEASE_NAME = "scheduler"
# A fixed 64-bit key for the advisory lock, derived from a name so it cannot collide by accident with small ints.
ADVISORY_LOCK_KEY = int.from_bytes(hashlib.sha256(b"connector.scheduler").digest()[:8], "big", signed=True)


class LeaderLock(Protocol):
    def acquire(self) -> bool:
        """Try to become the holder; never blocks."""

    def check(self) -> bool:
        """Confirm (and for a lease, renew) the hold; False when it is lost."""

    def holds(self) -> bool:
        """Whether this process may start jobs now (cheap; called before every scheduling pass)."""

    def release(self) -> None:
        """Give the hold up (idempotent)."""


def holder_name() -> str:
    """A name for this process in leases and logs: host, pid and a random suffix (a pid can be reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def leader_lock(db: Database, holder: str, *, lease_seconds: float = 30.0) -> LeaderLock:
    """The lock this database supports: an advisory lock on PostgreSQL, a lease row elsewhere."""
    if db.dialect == "postgresql":
        return AdvisoryLock(db)
    return LeaseLock(db, holder, lease_seconds=lease_seconds)


class AdvisoryLock:
    """``pg_try_advisory_lock`` on a dedicated autocommit connection, held until released or the connection ends."""

    def __init__(self, db: Database, key: int = ADVISORY_LOCK_KEY) -> None:
        self.db = db
        self.key = key
        self._connection: Connection | None = None
        # The scheduler thread and the heartbeat both use the connection; a DBAPI connection is not thread-safe.
        self._mutex = threading.Lock()

    def acquire(self) -> bool:
        with self._mutex:
            if self._connection is not None:
                return True
            try:
                connection = self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            except SQLAlchemyError:
                log.warning("could not connect to PostgreSQL for the scheduler lock", exc_info=True)
                return False
            try:
                taken = connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key})
            except SQLAlchemyError:
                log.warning("could not ask PostgreSQL for the scheduler lock", exc_info=True)
                connection.invalidate()
                connection.close()
                return False
            if not taken:
                connection.close()
                return False
            self._connection = connection
            return True

    def check(self) -> bool:
        with self._mutex:
            if self._connection is None:
                return False
            try:
                self._connection.scalar(text("SELECT 1"))
                return True
            except SQLAlchemyError:
                # The session is gone, and with it the lock: another process may hold it already.
                self._drop(invalidate=True)
                return False

    def holds(self) -> bool:
        return self.check()

    def release(self) -> None:
        with self._mutex:
            if self._connection is None:
                return
            try:
                self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            except SQLAlchemyError:
                self._drop(invalidate=True)
                return
            self._drop(invalidate=False)

    def _drop(self, *, invalidate: bool) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            if invalidate:
                connection.invalidate()
            connection.close()
        except (SQLAlchemyError, DBAPIError):
            log.debug("closing the scheduler lock connection failed", exc_info=True)


class LeaseLock:
    """A row in ``scheduler_leases`` owned by one holder until it expires; renewed by ``check()``."""

    def __init__(self, db: Database, holder: str, *, lease_seconds: float = 30.0, name: str = LEASE_NAME) -> None:
        self.db = db
        self.holder = holder
        self.name = name
        self.lease = timedelta(seconds=lease_seconds)
        self._valid_until = 0.0
        self._table = SchedulerLease.__table__

    def acquire(self) -> bool:
        started = time.time()
        now = utcnow()
        table = self._table
        try:
            with self.db.engine.begin() as connection:
                taken = connection.execute(
                    update(table)
                    .where(table.c.name == self.name, or_(table.c.holder == self.holder, table.c.expires_at < now))
                    .values(holder=self.holder, acquired_at=now, expires_at=now + self.lease)
                ).rowcount
                if not taken and connection.scalar(select(table.c.name).where(table.c.name == self.name)) is None:
                    connection.execute(
                        insert(table).values(
                            name=self.name, holder=self.holder, acquired_at=now, expires_at=now + self.lease
                        )
                    )
                    taken = 1
        except IntegrityError:
            return False  # another process inserted the row first
        except SQLAlchemyError:
            log.warning("could not read the scheduler lease", exc_info=True)
            return False
        if taken:
            self._valid_until = started + self._safe_seconds()
        return bool(taken)

    def check(self) -> bool:
        started = time.time()
        now = utcnow()
        table = self._table
        try:
            with self.db.engine.begin() as connection:
                renewed = connection.execute(
                    update(table)
                    .where(table.c.name == self.name, table.c.holder == self.holder)
                    .values(expires_at=now + self.lease)
                ).rowcount
        except SQLAlchemyError:
            # Keep the hold while the last renewal is still good; a database that stays away ends it.
            log.warning("could not renew the scheduler lease", exc_info=True)
            return self.holds()
        if not renewed:
            self._valid_until = 0.0
            return False
        self._valid_until = started + self._safe_seconds()
        return True

    def holds(self) -> bool:
        return time.time() < self._valid_until

    def release(self) -> None:
        self._valid_until = 0.0
        table = self._table
        try:
            with self.db.engine.begin() as connection:
                connection.execute(delete(table).where(table.c.name == self.name, table.c.holder == self.holder))
        except SQLAlchemyError:
            log.warning("could not release the scheduler lease; it expires by itself", exc_info=True)

    def _safe_seconds(self) -> float:
        # Stop starting jobs a third of a lease before others may take over, a margin for clock differences.
        return self.lease.total_seconds() * 2 / 3
