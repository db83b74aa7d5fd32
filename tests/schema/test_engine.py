"""The engine's pool on PostgreSQL: connections in steady use are not pinged; one closed while idle is replaced."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import event, text

from connector import db as dbmodule
from connector.db import Database


@pytest.fixture
def postgresql(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("the pool's ping is PostgreSQL's (SQLite has no connection to lose)")
    db = Database(database_url, pool_size=1, max_overflow=0)
    yield db
    db.dispose()


def _backend(db: Database) -> int:
    with db.engine.connect() as connection:
        return connection.execute(text("SELECT pg_backend_pid()")).scalar_one()


def test_a_connection_in_steady_use_is_not_pinged(postgresql):
    statements = []
    event.listen(postgresql.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    for _ in range(3):
        with postgresql.session() as session:
            session.execute(text("SELECT 2"))
    assert statements == ["SELECT 2"] * 3  # no ping before each transaction


def test_a_connection_closed_while_idle_is_replaced_before_use(postgresql, database_url, monkeypatch):
    monkeypatch.setattr(dbmodule, "PING_AFTER_IDLE_S", 0.05)
    first = _backend(postgresql)
    other = Database(database_url)
    try:
        with other.engine.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
            connection.commit()
    finally:
        other.dispose()
    time.sleep(0.1)
    # The pooled connection is dead: the ping finds it out and the pool opens another, the caller sees nothing.
    second = _backend(postgresql)
    assert second != first
