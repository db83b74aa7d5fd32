"""The persistent job store: APScheduler's ``apscheduler_jobs`` table in the service's database.

The table is made by migration 0004 with the layout ``SQLAlchemyJobStore`` declares, so the store's own
create-if-missing finds it and does nothing. Besides the scheduler, only ``next_run_time`` here reads it, which
works from any process (the API shows when a sync runs next even when the scheduler runs elsewhere).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from sqlalchemy import Column, Engine, Float, LargeBinary, MetaData, Select, Table, Unicode, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from connector.scheduling.jobs import sync_job_id

JOBS_TABLE = "apscheduler_jobs"

jobs_table = Table(
    JOBS_TABLE,
    MetaData(),
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)


class DatabaseJobStore(SQLAlchemyJobStore):
    """APScheduler's SQLAlchemy job store on the service's own engine.

    The engine belongs to the ``Database`` and outlives any one scheduler (a standby process starts a new scheduler
    each time it takes over), so stopping the store must not dispose of it.
    """

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine=engine, tablename=JOBS_TABLE)

    def shutdown(self) -> None:
        pass


def next_run_time(source, sync_id: int) -> datetime | None:
    """When the scheduler next runs a sync (aware UTC), or None when it has no job (manual, disabled, not yet seen).

    ``source`` is a ``Database``, an ORM ``Session`` or a ``Connection``. A sync saved a moment ago gets its job at
    the scheduler's next reconcile (at once when the scheduler runs in this process, within 30 s otherwise).
    """
    return next_run_times(source, [sync_id]).get(sync_id)


def next_run_times(source, sync_ids: Iterable[int]) -> dict[int, datetime | None]:
    """``next_run_time`` for several syncs in one query (for listings): every asked id is a key."""
    ids = list(dict.fromkeys(sync_ids))
    found: dict[int, datetime | None] = dict.fromkeys(ids)
    if not ids:
        return found
    job_ids = {sync_job_id(sync_id): sync_id for sync_id in ids}
    stmt = select(jobs_table.c.id, jobs_table.c.next_run_time).where(jobs_table.c.id.in_(list(job_ids)))
    for job_id, timestamp in _rows(source, stmt):
        found[job_ids[job_id]] = None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)
    return found


def _rows(source, stmt: Select) -> list:
    if isinstance(source, Session | Connection):
        return source.execute(stmt).all()
    with source.engine.connect() as connection:
        return connection.execute(stmt).all()
