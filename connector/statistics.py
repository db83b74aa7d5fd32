"""Planner statistics kept current by the service itself (PostgreSQL).

PostgreSQL plans every statement from the statistics ``ANALYZE`` takes; autovacuum takes them again once a table
changed by a tenth (plus 50 rows). Where autovacuum is off, or behind a burst of ingestion, the planner keeps
believing a freshly loaded table is (nearly) empty and picks plans that are right for no rows and quadratic for
thousands: with twenty segments live, each ingested batch of 1,000 events took longer than the last (0.4 s, then
1.4 s twenty batches later) while ``users`` and ``events`` had never been analysed.

``after_write(db)`` is called once a write committed (every ingestion transaction does). At most every
``CHECK_SECONDS`` per process, and on a thread of its own so that no request waits, it reads PostgreSQL's own count
of the rows changed in each of our tables since their last analysis (``pg_stat_user_tables.n_mod_since_analyze``)
and analyses those past autovacuum's rule, with a floor of ``MIN_ROWS``. An advisory lock keeps two processes from
analysing at once (the second skips). Other databases plan without such statistics drift; nothing is done there.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import text

from connector.db import Database

log = logging.getLogger(__name__)

CHECK_SECONDS = 5.0
# A table is analysed once more rows than MIN_ROWS + FRACTION x its size changed since its last analysis.
MIN_ROWS = 1000
FRACTION = 0.1
# pg_try_advisory_xact_lock key of "statistics are being taken" (any value no other lock of ours uses).
LOCK_KEY = 0x5747_A7A1

_lock = threading.Lock()
_state = {"next": 0.0, "running": False}

STALE = text(
    "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
    "WHERE s.schemaname = current_schema() "
    "AND s.n_mod_since_analyze > :min_rows + :fraction * greatest(c.reltuples, 0) ORDER BY s.relname"
)


def after_write(db: Database) -> None:
    """Note that a write committed; now and then, look for tables whose statistics fell behind (see above)."""
    if db.dialect != "postgresql":
        return
    now = time.monotonic()
    with _lock:
        if _state["running"] or now < _state["next"]:
            return
        _state["running"], _state["next"] = True, now + CHECK_SECONDS
    threading.Thread(target=_refresh, args=(db,), name="statistics", daemon=True).start()


def refresh_stale(db: Database) -> list[str]:
    """Analyse every table of ours whose statistics fell behind its changes; returns their names (none when
    another process is analysing)."""
    with db.engine.begin() as connection:
        if not connection.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": LOCK_KEY}):
            return []
        tables = list(connection.scalars(STALE, {"min_rows": MIN_ROWS, "fraction": FRACTION}))
        for table in tables:
            connection.execute(text(f'ANALYZE "{table}"'))
    return tables


def _refresh(db: Database) -> None:
    try:
        started = time.monotonic()
        tables = refresh_stale(db)
        if tables:
            log.info("statistics refreshed in %.2fs: %s", time.monotonic() - started, ", ".join(tables))
    except Exception as exc:  # the database went away, the engine was disposed: the next write looks again
        log.debug("statistics not refreshed: %s", exc)
    finally:
        with _lock:
            _state["running"] = False
