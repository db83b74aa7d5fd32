"""Keeping the scheduler's jobs in step with the syncs table and the segment engine's refresh cadence."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from typing import Any

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select

from connector.db import Database
from connector.models import Source, Sync
from connector.schedules import ScheduleError, describe_schedule, trigger_for
from connector.scheduling.automation import automation_jobs, is_automation_job
from connector.scheduling.jobs import (
    REFRESH_SEGMENTS_REF,
    RUN_SOURCE_REF,
    RUN_SYNC_REF,
    SEGMENTS_REFRESH_JOB_ID,
    SOURCE_JOB_PREFIX,
    SYNC_JOB_PREFIX,
    source_job_id,
    sync_job_id,
)
from connector.scheduling.store import jobs_table
from connector.scheduling.window_edges import EDGES_JOB_ID, FOLLOW_EDGES_REF, edge_job_needed
from connector.segments.edges import EDGE_INTERVAL
from connector.segments.sliding import refresh_cadence

log = logging.getLogger("connector.scheduling")

PERSISTENT_STORE = "default"
# Several instances of one sync job may be started: the sync engine's exclusive lock, not APScheduler's instance
# count, decides, and it records a tick that finds the previous run still going as a skipped run.
SYNC_MAX_INSTANCES = 8


@dataclass
class Reconciliation:
    """What one reconcile changed, by job id."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    invalid: dict[str, str] = field(default_factory=dict)

    @property
    def changes(self) -> int:
        return len(self.added) + len(self.changed) + len(self.removed)


@dataclass
class _JobSpec:
    func: str
    trigger: BaseTrigger
    name: str
    args: tuple = ()
    options: dict[str, Any] = field(default_factory=dict)


def reconcile_jobs(scheduler: BaseScheduler, db: Database) -> Reconciliation:
    """Add, reschedule and remove jobs so that the job store matches the syncs table and the refresh cadence.

    One job ``sync:<id>`` per enabled sync with an interval or cron schedule; a manual, disabled or deleted sync
    has none; a changed schedule is rescheduled from now. Job ``segments:refresh-time-relative`` runs every
    ``refresh_cadence()``. Unchanged jobs keep their next run time. ``scheduler`` must be started (running or
    paused). Safe to call at any time and from any thread; the scheduler calls it at start and every 30 s.
    """
    desired, invalid, keep = _desired_jobs(db)
    existing = {job.id: job for job in scheduler.get_jobs(jobstore=PERSISTENT_STORE) if _managed(job.id)}
    result = Reconciliation(invalid=invalid)
    for job_id, spec in desired.items():
        job = existing.get(job_id)
        if job is not None and job.name == spec.name and job.func_ref == spec.func:
            continue
        scheduler.add_job(
            spec.func,
            spec.trigger,
            args=spec.args,
            id=job_id,
            name=spec.name,
            jobstore=PERSISTENT_STORE,
            replace_existing=True,
            **spec.options,
        )
        (result.added if job is None else result.changed).append(job_id)
    for job_id in sorted(existing.keys() - desired.keys() - keep):
        with contextlib.suppress(JobLookupError):  # removed meanwhile by another reconcile
            scheduler.remove_job(job_id, jobstore=PERSISTENT_STORE)
        result.removed.append(job_id)
    for job_id, reason in invalid.items():
        log.warning("no job for %s: its schedule is not valid (%s)", job_id, reason)
    if result.changes:
        log.info("jobs reconciled: added %s, changed %s, removed %s", result.added, result.changed, result.removed)
    return result


def _managed(job_id: str) -> bool:
    return (
        job_id.startswith((SYNC_JOB_PREFIX, SOURCE_JOB_PREFIX))
        or job_id in (SEGMENTS_REFRESH_JOB_ID, EDGES_JOB_ID)
        or is_automation_job(job_id)
    )


def _desired_jobs(db: Database) -> tuple[dict[str, _JobSpec], dict[str, str], set[str]]:
    desired: dict[str, _JobSpec] = {}
    invalid: dict[str, str] = {}
    keep: set[str] = set()
    with db.session() as session:
        rows = session.execute(select(Sync.id, Sync.schedule).where(Sync.enabled.is_(True)).order_by(Sync.id)).all()
        sources = session.execute(
            select(Source.id, Source.schedule).where(Source.enabled.is_(True)).order_by(Source.id)
        ).all()
    for source_id, schedule in sources:
        # Sources follow the sync jobs' rules: a trigger from the same schedule format, one job per source.
        with contextlib.suppress(ScheduleError):
            trigger = trigger_for(schedule)
            if trigger is not None:
                desired[source_job_id(source_id)] = _JobSpec(
                    func=RUN_SOURCE_REF,
                    trigger=trigger,
                    name=f"source {source_id}: {describe_schedule(schedule)}",
                    args=(source_id,),
                    options={"max_instances": SYNC_MAX_INSTANCES},
                )
    for sync_id, schedule in rows:
        job_id = sync_job_id(sync_id)
        try:
            trigger = trigger_for(schedule)
        except ScheduleError as exc:
            invalid[job_id] = str(exc)
            continue
        if trigger is not None:
            desired[job_id] = _JobSpec(
                func=RUN_SYNC_REF,
                trigger=trigger,
                name=f"sync {sync_id}: {describe_schedule(schedule)}",
                args=(sync_id,),
                options={"max_instances": SYNC_MAX_INSTANCES},
            )

    try:
        cadence = _refresh_cadence(db)
    except Exception:
        # A failing cadence must not stop the syncs' schedules; the refresh job keeps its last cadence.
        log.exception("could not read the segment refresh cadence; keeping the current refresh job")
        keep.add(SEGMENTS_REFRESH_JOB_ID)
    else:
        if cadence is not None and cadence > timedelta(0):
            desired[SEGMENTS_REFRESH_JOB_ID] = _JobSpec(
                func=REFRESH_SEGMENTS_REF,
                trigger=IntervalTrigger(seconds=cadence.total_seconds(), timezone=UTC),
                name=f"segments: refresh time-relative every {cadence}",
                options={"max_instances": 1},
            )
    try:
        desired.update(automation_jobs(db, invalid))
    except Exception:
        # As for the cadence: a failure here must not stop the other jobs; automation's jobs stay as they are.
        log.exception("could not read automation's schedules; keeping the current automation jobs")
        with db.engine.connect() as connection:
            keep.update(i for i in connection.scalars(select(jobs_table.c.id)) if is_automation_job(i))
    try:
        with db.session() as session:
            edges = edge_job_needed(session)
    except Exception:
        log.exception("could not read which segments follow window edges; keeping the current edges job")
        keep.add(EDGES_JOB_ID)
    else:
        if edges:
            desired[EDGES_JOB_ID] = _JobSpec(
                func=FOLLOW_EDGES_REF,
                trigger=IntervalTrigger(seconds=EDGE_INTERVAL.total_seconds(), timezone=UTC),
                name=f"segments: follow window edges every {EDGE_INTERVAL}",
                options={"max_instances": 1},
            )
    return desired, invalid, keep


def _refresh_cadence(db: Database) -> timedelta | None:
    with db.session() as session:
        return refresh_cadence(session)
