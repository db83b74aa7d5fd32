"""Planner statistics kept current while a run loads many rows (PostgreSQL).

A first run can grow the subject tables, ``source_rows`` and the derived tables from nothing to millions of rows in
minutes. Until the tables are analysed again, PostgreSQL plans every statement of the following chunks with the
statistics of the empty tables (or none, where autovacuum is off or has not caught up): joins against a table it
believes to be empty become nested loops over millions of rows, and each chunk gets slower than the last. Each time
the rows the run wrote doubled, it has the tables whose statistics fell behind analysed
(``connector.statistics.refresh_stale``, PostgreSQL's own count of changed rows deciding which), so the statistics
are never off by more than a factor of two, at the cost of a handful of ``ANALYZE`` (sampled, ~0.1 s each) per run.
"""

from __future__ import annotations

from connector.db import Database
from connector.statistics import refresh_stale

# Below this many rows written by the run, plans are fine whatever the statistics say.
FIRST_ANALYZE_AT = 20_000


class Statistics:
    """Tracks the rows a run wrote and refreshes stale statistics each time that number doubles."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.written = 0
        self.next_at = FIRST_ANALYZE_AT
        self.enabled = db.dialect == "postgresql"

    def wrote(self, rows: int) -> None:
        """Count rows written (committed) by the run; refresh stale statistics when they reached the next
        threshold."""
        self.written += rows
        if not self.enabled or self.written < self.next_at:
            return
        self.next_at = 2 * self.written
        refresh_stale(self.db)
