"""Planner statistics kept current while a run loads many rows (PostgreSQL).

A first run can grow the subject tables, ``source_rows`` and the derived tables from nothing to millions of rows in
minutes. Until the tables are analysed again, PostgreSQL plans every statement of the following chunks with the
statistics of the empty tables (or none, where autovacuum is off or has not caught up): joins against a table it
believes to be empty become nested loops over millions of rows, and each chunk gets slower than the last. The run
analyses the tables it grows whenever the rows it wrote doubled since it last did, so the statistics are never
off by more than a factor of two, at the cost of a handful of ``ANALYZE`` (sampled, ~0.1 s each) per run.
"""

from __future__ import annotations

from sqlalchemy import text

from connector.db import Database
from connector.models import ModelKind

# Below this many rows written by the run, plans are fine whatever the statistics say.
FIRST_ANALYZE_AT = 20_000
TABLES = {
    ModelKind.USERS: ("users",),
    ModelKind.ACCOUNTS: ("accounts",),
    ModelKind.ACCOUNT_LINKS: ("users", "accounts", "account_users"),
    ModelKind.EVENTS: ("events", "users"),
    ModelKind.OBJECTS: ("objects",),
}
DERIVED = ("source_rows", "segment_memberships", "segment_membership_history", "computed_values")


class Statistics:
    """Tracks the rows a run wrote and analyses its tables each time that number doubles."""

    def __init__(self, db: Database, kind: ModelKind) -> None:
        self.db = db
        self.tables = TABLES[kind] + DERIVED
        self.written = 0
        self.next_at = FIRST_ANALYZE_AT
        self.enabled = db.engine.dialect.name == "postgresql"

    def wrote(self, rows: int) -> None:
        """Count rows written (committed) by the run; analyse when they reached the next threshold."""
        self.written += rows
        if not self.enabled or self.written < self.next_at:
            return
        self.next_at = 2 * self.written
        with self.db.engine.connect() as connection:
            for table in self.tables:
                connection.execute(text(f"ANALYZE {table}"))
            connection.commit()
