"""Engine and sessions.

Only entry points (API views, CLI commands, scheduler jobs) open sessions, with ``with db.session() as s`` which
commits on success and rolls back on error; services receive the session and never commit.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, **kwargs) -> Engine:
    """Create an engine with the settings each dialect needs to behave under concurrent use."""
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": 30, "check_same_thread": False})
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _configure_sqlite)
        event.listen(engine, "begin", _begin_sqlite)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    # Our statements are never prepared on the server (psycopg would prepare one run five times on a connection,
    # and PostgreSQL may then settle on a generic plan that ignores the values). For the segment engine's queries
    # that is the wrong plan: a segment's query for one person ran in 8 ms instead of 1.5 ms after ingestion, and a
    # 7-day window and a 90-day one want different plans over millions of events. An unprepared statement is
    # planned for the values at hand, every time. The database's own cached plans keep PostgreSQL's default: a
    # foreign-key check or a trigger's query run for every row of a bulk write is planned once, not per row
    # (``plan_cache_mode=force_custom_plan`` for the whole session made an insert of 5,000 enrolments 2.4x slower).
    kwargs.setdefault("connect_args", {"prepare_threshold": None})
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    engine = create_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        event.listen(engine, "checkin", _checked_in)
        event.listen(engine, "checkout", _ping_if_idle)
    return engine


# A pooled connection idle for longer than this is pinged before use (a database restarted meanwhile has closed
# it; the pool then opens a new one). One in steady use is not: a ping on every checkout was a round trip per
# transaction, a tenth of the CPU of a sync run, whose short transactions follow each other by milliseconds.
PING_AFTER_IDLE_S = 1.0


def _checked_in(_dbapi_connection, record) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_connection, record, _proxy) -> None:
    idle_since = record.info.pop("idle_since", None)
    if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
        return
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
        dbapi_connection.rollback()
    except Exception as exc:
        # The pool discards this connection and checks out another (SQLAlchemy's pessimistic disconnect handling).
        raise DisconnectionError(f"a pooled connection was closed while idle: {exc}") from exc


def _configure_sqlite(dbapi_connection, _record) -> None:
    # Let SQLAlchemy own transactions (the driver's implicit BEGIN would defer locking to the first write).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _begin_sqlite(connection) -> None:
    # IMMEDIATE takes the write lock at BEGIN, so two writers queue on busy_timeout instead of one failing
    # with "database is locked" when it upgrades a read lock.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """An engine and the session factory bound to it."""

    def __init__(self, url: str, **engine_kwargs) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed when the block ends, rolled back if it raises."""
        with self.sessionmaker() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
