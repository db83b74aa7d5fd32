"""The job table the migration makes is exactly the one APScheduler's SQLAlchemy job store declares."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from sqlalchemy import MetaData

from connector.scheduling.store import JOBS_TABLE, DatabaseJobStore


def test_migrated_job_table_matches_apschedulers_declaration(database):
    declared = MetaData()
    SQLAlchemyJobStore(engine=database.engine, metadata=declared)  # declares its table on ``declared``

    def only_the_job_table(name, type_, parent_names) -> bool:
        return type_ != "table" or name == JOBS_TABLE

    with database.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_name": only_the_job_table}
        )
        assert compare_metadata(context, declared) == []


def test_job_store_on_the_service_engine_leaves_the_engine_usable_after_stopping(database):
    store = DatabaseJobStore(database.engine)
    store.shutdown()
    with database.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT 1").scalar() == 1
