"""Scheduled sources: one job per enabled source with a schedule, kept in step by reconcile; a tick runs its
models through the source runner."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select, update

from connector.models import Source, SourceRun, User
from connector.scheduling import reconcile_jobs
from connector.scheduling.jobs import RUN_SOURCE_REF, source_job_id
from connector.sources.reader import FILE_DIRS_ENV
from tests.sources.conftest import Warehouse, make_model, make_source

T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _file_warehouses_allowed(monkeypatch, tmp_path_factory) -> None:
    monkeypatch.setenv(FILE_DIRS_ENV, str(tmp_path_factory.getbasetemp()))


def source_jobs(scheduler) -> dict[str, object]:
    return {job.id: job for job in scheduler.get_jobs(jobstore="default") if job.id.startswith("source:")}


def scheduled_source(database, tenant, tmp_path, schedule, *, enabled=True):
    warehouse = Warehouse("sqlite", f"sqlite:///{tmp_path / 'warehouse.db'}")
    warehouse.run("CREATE TABLE IF NOT EXISTS people (id INTEGER, email VARCHAR(200))")
    warehouse.insert("people", [{"id": 1, "email": "ann@example.com"}])
    source = make_source(database, tenant, warehouse, name=f"W {schedule['kind']} {enabled}")
    make_model(database, tenant, source, kind="users", query="SELECT * FROM people", mapping={"external_id": "id"})
    with database.session() as session:
        session.execute(update(Source).where(Source.id == source.id).values(schedule=schedule, enabled=enabled))
    return source.id


def test_reconcile_adds_a_job_per_scheduled_enabled_source_and_removes_it_when_disabled(
    database, tenant, tmp_path, manual_scheduler
):
    scheduler = manual_scheduler(paused=True)
    every = scheduled_source(database, tenant, tmp_path, {"kind": "interval", "minutes": 15})
    scheduled_source(database, tenant, tmp_path, {"kind": "manual"})
    scheduled_source(database, tenant, tmp_path, {"kind": "interval", "minutes": 5}, enabled=False)

    result = reconcile_jobs(scheduler, database)

    assert result.added == [source_job_id(every)]
    job = source_jobs(scheduler)[source_job_id(every)]
    assert (job.func_ref, job.args) == (RUN_SOURCE_REF, (every,))

    with database.session() as session:
        session.execute(update(Source).where(Source.id == every).values(enabled=False))
    assert reconcile_jobs(scheduler, database).removed == [source_job_id(every)]
    assert source_jobs(scheduler) == {}


def test_a_tick_of_a_source_job_runs_its_models(database, tenant, tmp_path, manual_scheduler):
    with time_machine.travel(T0, tick=False):
        scheduler = manual_scheduler()
        source_id = scheduled_source(database, tenant, tmp_path, {"kind": "interval", "minutes": 15})
        reconcile_jobs(scheduler, database)
    with time_machine.travel(T0 + timedelta(minutes=15, seconds=1), tick=False):
        scheduler._process_jobs()

    with database.session() as session:
        runs = session.execute(select(SourceRun.status, SourceRun.trigger)).all()
        assert runs == [("succeeded", "schedule")]
        assert session.scalar(select(User.external_id)) == "1"
    assert source_id
