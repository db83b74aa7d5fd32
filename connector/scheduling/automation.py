"""Scheduler jobs of automation, following the sync jobs' pattern (persisted, coalesced, one active scheduler).

``segment-action:<id>``
    one per enabled segment action: a cron job at its HH:MM in its zone (``triggers.trigger_for``, so a daily time
    keeps its local hour across daylight saving). Its grace time is unlimited: after downtime, the missed days
    coalesce into ONE catch-up run, whatever the length of the downtime; the run claims the day it is for, so a
    second run of that day (another scheduler, a retry) does nothing.
``playbook:<id>``
    one per enabled playbook with a schedule trigger: fires it for every subject matching its conditions.
``automation:process``
    every ``PROCESS_SECONDS`` while there is work of this kind (an enabled enter/exit playbook, an active
    enrolment or a pending firing): reads each playbook's membership history after its lanes' cursors and fires
    (the lanes in parallel on PostgreSQL), fires due sequence steps, and delivers pending firings (webhooks, sync
    runs) outside any transaction.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import exists, select

from connector.automation import install
from connector.automation.firing import (
    deliver_firing,
    fire_on_schedule,
    pending_firings,
    playbooks_to_process,
    process_membership_triggers,
    sweep_late_rows,
)
from connector.automation.playbooks import LANES
from connector.automation.segment_actions import run_segment_action, schedule_of
from connector.automation.sequences import fire_due_steps, notify_step
from connector.db import Database
from connector.models import (
    Enrolment,
    EnrolmentState,
    FiringStatus,
    Playbook,
    PlaybookFiring,
    SegmentAction,
)
from connector.schedules import ScheduleError, describe_schedule, trigger_for
from connector.scheduling.dispatch import (
    AUTOMATION_PROCESS_JOB,
    PLAYBOOK_JOB,
    SEGMENT_ACTION_JOB,
    current_dispatcher,
)
from connector.scheduling.jobs import _bound_context
from connector.statistics import after_write

log = logging.getLogger("connector.scheduling")

SEGMENT_ACTION_JOB_PREFIX = "segment-action:"
PLAYBOOK_JOB_PREFIX = "playbook:"
PROCESS_JOB_ID = "automation:process"
PROCESS_SECONDS = 1
# One pass of the process job stops reading history after this long, so steps and deliveries get their turn.
PASS_BUDGET_SECONDS = 20.0
# Playbook lanes read at once by a pass (PostgreSQL): as many as a playbook has, so one playbook's burst uses all.
LANE_THREADS = LANES
RUN_SEGMENT_ACTION_REF = "connector.scheduling.automation:run_scheduled_segment_action"
FIRE_PLAYBOOK_REF = "connector.scheduling.automation:fire_scheduled_playbook"
PROCESS_REF = "connector.scheduling.automation:process_automation"


@dataclass
class AutomationJob:
    """A desired job, read by the reconciler like its own job specs."""

    func: str
    trigger: BaseTrigger
    name: str
    args: tuple = ()
    options: dict[str, Any] = field(default_factory=dict)


def is_automation_job(job_id: str) -> bool:
    return job_id.startswith((SEGMENT_ACTION_JOB_PREFIX, PLAYBOOK_JOB_PREFIX)) or job_id == PROCESS_JOB_ID


def automation_jobs(db: Database, invalid: dict[str, str]) -> dict[str, AutomationJob]:
    """The jobs automation needs now; schedules that cannot be built are reported in ``invalid``."""
    install()
    desired: dict[str, AutomationJob] = {}
    with db.session() as session:
        actions = session.scalars(select(SegmentAction).where(SegmentAction.enabled.is_(True))).all()
        playbooks = session.execute(
            select(Playbook.id, Playbook.trigger).where(
                Playbook.enabled.is_(True), Playbook.trigger_segment_id.is_(None)
            )
        ).all()
        busy = session.scalar(
            select(
                exists().where(Playbook.enabled.is_(True), Playbook.trigger_segment_id.is_not(None))
                | exists().where(Enrolment.state == EnrolmentState.ACTIVE)
                | exists().where(PlaybookFiring.status == FiringStatus.PENDING)
            )
        )
    for action in actions:
        schedule = schedule_of(action)
        _add(
            desired,
            invalid,
            f"{SEGMENT_ACTION_JOB_PREFIX}{action.id}",
            RUN_SEGMENT_ACTION_REF,
            schedule,
            action.id,
            f"segment action {action.id}",
        )
    for playbook_id, trigger in playbooks:
        schedule = {"kind": "cron", "expression": trigger.get("expression"), "timezone": trigger.get("timezone", "UTC")}
        _add(
            desired,
            invalid,
            f"{PLAYBOOK_JOB_PREFIX}{playbook_id}",
            FIRE_PLAYBOOK_REF,
            schedule,
            playbook_id,
            f"playbook {playbook_id}",
        )
    if busy:
        desired[PROCESS_JOB_ID] = AutomationJob(
            func=PROCESS_REF,
            trigger=IntervalTrigger(seconds=PROCESS_SECONDS, timezone=UTC),
            name=f"automation: playbooks, steps and deliveries every {PROCESS_SECONDS}s",
            options={"max_instances": 1, "misfire_grace_time": None},
        )
    return desired


def _add(desired, invalid, job_id: str, func: str, schedule: dict, object_id: int, label: str) -> None:
    try:
        trigger = trigger_for(schedule)
    except ScheduleError as exc:
        invalid[job_id] = str(exc)
        return
    desired[job_id] = AutomationJob(
        func=func,
        trigger=trigger,
        name=f"{label}: {describe_schedule(schedule)}",
        args=(object_id,),
        # No grace limit: missed runs coalesce into one catch-up run, however long the downtime.
        options={"max_instances": 1, "misfire_grace_time": None},
    )


def next_segment_action_run(action: SegmentAction, now: datetime | None = None) -> datetime | None:
    """When an enabled action runs next (aware UTC), from its schedule; None when disabled."""
    if not action.enabled:
        return None
    now = now or datetime.now(UTC)
    fire_time = trigger_for(schedule_of(action)).get_next_fire_time(None, now)
    return None if fire_time is None else fire_time.astimezone(UTC)


def run_scheduled_segment_action(action_id: int) -> int | None:
    """Run a segment action for the day it is due; returns how many people it enrolled (None: already ran)."""
    dispatcher = current_dispatcher()
    if dispatcher is not None:  # a broker is configured: a worker runs it (the day's claim makes a repeat a no-op)
        dispatcher.enqueue(SEGMENT_ACTION_JOB, action_id=action_id, at=int(time.time()))
        return None
    db, _ = _bound_context()
    with db.session() as session:
        run = run_segment_action(session, action_id)
        enrolled = None if run is None else run.enrolled
    log.info("segment action %s: %s", action_id, "already ran today" if enrolled is None else f"{enrolled} enrolled")
    return enrolled


def fire_scheduled_playbook(playbook_id: int) -> int:
    dispatcher = current_dispatcher()
    if dispatcher is not None:  # a broker is configured: a worker fires it
        dispatcher.enqueue(PLAYBOOK_JOB, playbook_id=playbook_id, at=int(time.time()))
        return 0
    db, _ = _bound_context()
    with db.session() as session:
        fired = fire_on_schedule(session, playbook_id)
    log.info("playbook %s fired on schedule for %s subject(s)", playbook_id, fired)
    return fired


def process_automation() -> dict[str, int]:
    """One pass: history -> firings for every enter/exit playbook, due sequence steps, pending deliveries."""
    dispatcher = current_dispatcher()
    if dispatcher is not None:  # a broker is configured: a worker makes the pass
        dispatcher.enqueue(AUTOMATION_PROCESS_JOB)
        return {}
    db, secret_key = _bound_context()
    return process_once(db, secret_key)


def _process_lane(db: Database, playbook_id: int, lane: int, started: float, budget_seconds: float) -> int:
    """Read one lane of a playbook's history until it is caught up or the pass's time is up, then sweep it for
    late rows; returns the rows read."""
    total = 0
    while time.monotonic() - started < budget_seconds:
        try:
            with db.session() as session:
                read = process_membership_triggers(session, playbook_id, lane)
        except Exception:
            log.exception("playbook %s: could not process lane %s of its membership history", playbook_id, lane)
            break
        total += read
        if not read:
            break
        after_write(db)  # firings and enrolments grow fast: the planner's statistics follow (off this path)
    try:
        with db.session() as session:
            total += sweep_late_rows(session, playbook_id, lane)
    except Exception:
        log.exception(
            "playbook %s: could not sweep lane %s of its membership history for late changes", playbook_id, lane
        )
    return total


def process_once(db: Database, secret_key: str | None, budget_seconds: float = PASS_BUDGET_SECONDS) -> dict[str, int]:
    """The work of one pass of ``automation:process``, on ``db`` (also what tests and benchmarks call)."""
    started = time.monotonic()
    totals = {"history": 0, "steps": 0, "delivered": 0}
    with db.session() as session:
        lanes = playbooks_to_process(session)
    # The lanes of the playbooks, in parallel on PostgreSQL (each on a connection of its own); SQLite writes one
    # transaction at a time, so there they take turns.
    parallel = LANE_THREADS if db.dialect == "postgresql" else 1
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="automation-lane") as pool:
        read = pool.map(lambda pair: _process_lane(db, *pair, started, budget_seconds), lanes)
        totals["history"] = sum(read)
    while True:
        with db.session() as session:
            fired = fire_due_steps(session)
        totals["steps"] += len(fired)
        for step in fired:
            if step.webhook is None:
                continue
            try:
                notify_step(step, secret_key or "")
            except Exception:
                log.exception("enrolment %s: the webhook of step %s did not land", step.enrolment_id, step.step)
        if not fired:
            break
    with db.session() as session:
        pending = pending_firings(session)
    for firing_id in pending:
        if deliver_firing(db, firing_id, secret_key or "") is not None:
            totals["delivered"] += 1
    return totals
