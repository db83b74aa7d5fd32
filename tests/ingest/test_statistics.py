"""Statistics that fell behind the data are taken again by the service (PostgreSQL), whatever autovacuum does."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import insert, text

from connector import statistics
from connector.models import User


def add_users(database, workspace_id: int, count: int, start: int = 0) -> None:
    rows = [
        {"workspace_id": workspace_id, "external_id": f"s{i}", "attributes": {}} for i in range(start, start + count)
    ]
    with database.session() as session:
        session.execute(insert(User), rows)


def analyses(database, table: str) -> int:
    with database.engine.connect() as connection:
        return connection.scalar(
            text("SELECT analyze_count FROM pg_stat_user_tables WHERE relname = :t AND schemaname = current_schema()"),
            {"t": table},
        )


def eventually(condition, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    return condition()


@pytest.fixture(autouse=True)
def fresh_state():
    statistics._state.update(next=0.0, running=False)
    yield
    eventually(lambda: not statistics._state["running"])


def test_a_table_changed_past_the_threshold_is_analysed_once(database, tenant):
    if database.dialect != "postgresql":
        pytest.skip("planner statistics are PostgreSQL's")
    add_users(database, tenant.workspace_id, statistics.MIN_ROWS + 500)
    # PostgreSQL's change counts reach pg_stat within a second of the commit.
    analysed = eventually(lambda: "users" in statistics.refresh_stale(database))
    assert analysed
    assert "users" not in statistics.refresh_stale(database), "nothing changed since: no second analysis"


def test_a_commit_looks_on_a_thread_of_its_own_at_most_every_few_seconds(database, tenant):
    if database.dialect != "postgresql":
        statistics.after_write(database)
        assert not any(t.name == "statistics" for t in threading.enumerate())
        return
    before = analyses(database, "users") or 0
    add_users(database, tenant.workspace_id, statistics.MIN_ROWS + 500)

    def analysed() -> bool:
        statistics._state["next"] = 0.0  # the test does not wait out CHECK_SECONDS between looks
        statistics.after_write(database)
        return (analyses(database, "users") or 0) > before

    assert eventually(analysed)
    assert eventually(lambda: not statistics._state["running"])
    # Within CHECK_SECONDS of a look, another commit starts nothing.
    statistics._state["next"] = time.monotonic() + statistics.CHECK_SECONDS
    statistics.after_write(database)
    assert not statistics._state["running"]


def test_two_processes_never_analyse_at_once(database, database_url, tenant):
    if database.dialect != "postgresql":
        pytest.skip("the advisory lock is PostgreSQL's")
    add_users(database, tenant.workspace_id, statistics.MIN_ROWS + 500)
    with database.engine.begin() as holder:  # another process is analysing
        holder.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": statistics.LOCK_KEY})
        time.sleep(1.2)
        assert statistics.refresh_stale(database) == []
    assert eventually(lambda: "users" in statistics.refresh_stale(database))
