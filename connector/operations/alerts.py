"""Alerts on syncs: raised when a scheduled run is overdue or a sync keeps failing, resolved by its next success.

``check_alerts(session, settings)`` looks at every enabled sync and returns what it opened and resolved; the caller
commits, then sends the notifications (``notify.send_alerts``). It is safe to run in several processes at once:
an open alert of a kind per sync is unique in the database, so a second checker's insert is a no-op.

- **overdue**: a sync with an interval or cron schedule whose next run fell due more than the grace period
  (``CONNECTOR_ALERT_GRACE_SECONDS``) ago and has not started (no run of it, not even a skipped one, since). "Next
  run" counts from the sync's latest run, or from when it was saved if it never ran. A scheduler that is down past
  the grace raises it once per sync.
- **failing**: the latest ``CONNECTOR_ALERT_FAILED_RUNS`` finished runs all failed, or the latest finished run
  rejected at least ``CONNECTOR_ALERT_REJECTED_RECORDS`` records.

Both are resolved by the sync's next successful run (status ``succeeded``) after the alert was opened (a run newer
than the sync's latest run then).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connector.errors import InvalidError
from connector.models import Alert, AlertKind, AlertStatus, RunStatus, Sync, SyncRun, Workspace, utcnow
from connector.operations.settings import OperationsSettings
from connector.schedules import IntervalSchedule, ScheduleError, parse_schedule

FINISHED = (RunStatus.SUCCEEDED, RunStatus.PARTIAL, RunStatus.FAILED)


@dataclass
class AlertChanges:
    opened: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)


def next_due(schedule: Any, after: datetime) -> datetime | None:
    """When a sync's next scheduled run falls due, counting from ``after``; None for a manual or invalid schedule."""
    try:
        typed = parse_schedule(schedule)
    except ScheduleError:
        return None
    if isinstance(typed, IntervalSchedule):
        return after + timedelta(minutes=typed.minutes)
    trigger = typed.trigger()
    return None if trigger is None else trigger.get_next_fire_time(None, after + timedelta(seconds=1))


def check_alerts(session: Session, settings: OperationsSettings, now: datetime | None = None) -> AlertChanges:
    """Open the alerts that are due and resolve those a success has answered (see the module's docstring)."""
    now = now or utcnow()
    changes = AlertChanges()
    syncs = session.execute(
        select(Sync.id, Sync.workspace_id, Sync.name, Sync.schedule, Sync.created_at, Sync.updated_at).where(
            Sync.enabled.is_(True)
        )
    ).all()
    open_alerts: dict[tuple[int, AlertKind], Alert] = {
        (a.sync_id, a.kind): a for a in session.scalars(select(Alert).where(Alert.status == AlertStatus.OPEN))
    }
    for sync_id, workspace_id, name, schedule, created_at, updated_at in syncs:
        runs = list(
            session.scalars(
                select(SyncRun)
                .where(SyncRun.sync_id == sync_id, SyncRun.dry_run.is_(False), SyncRun.status.in_(FINISHED))
                .order_by(SyncRun.id.desc())
                .limit(settings.alert_failed_runs)
            )
        )
        latest = runs[0] if runs else None
        for kind in AlertKind:
            alert = open_alerts.get((sync_id, kind))
            if (
                alert is not None
                and latest is not None
                and latest.status == RunStatus.SUCCEEDED
                and latest.id > (alert.after_run_id or 0)
            ):
                alert.status, alert.resolved_at = AlertStatus.RESOLVED, now
                changes.resolved.append(alert)
                del open_alerts[(sync_id, kind)]

        last_start, last_run = session.execute(
            select(func.max(SyncRun.started_at), func.max(SyncRun.id)).where(SyncRun.sync_id == sync_id)
        ).one()
        since = max(t for t in (last_start, created_at, updated_at) if t is not None)
        due = next_due(schedule, since)
        if due is not None and now - due > timedelta(seconds=settings.alert_grace_seconds):
            message = (
                f"sync {name!r}: its scheduled run due at {due.isoformat()} has not started "
                f"({int((now - due).total_seconds())} s late; grace {settings.alert_grace_seconds:g} s)"
            )
            _open(session, changes, open_alerts, (workspace_id, sync_id, last_run), AlertKind.OVERDUE, message, now)

        message = None
        if len(runs) >= settings.alert_failed_runs and all(r.status == RunStatus.FAILED for r in runs):
            message = f"sync {name!r}: {len(runs)} failed runs in a row (latest: {latest.first_error or 'failed'})"
        elif latest is not None and latest.rejected >= settings.alert_rejected_records:
            message = f"sync {name!r}: run {latest.id} had {latest.rejected} records rejected by the destination"
        if message is not None:
            _open(session, changes, open_alerts, (workspace_id, sync_id, last_run), AlertKind.FAILING, message, now)
    session.flush()
    return changes


def _open(session, changes, open_alerts, subject: tuple[int, int, int | None], kind, message, now) -> None:
    workspace_id, sync_id, last_run = subject
    if (sync_id, kind) in open_alerts:
        return
    alert = Alert(
        workspace_id=workspace_id, sync_id=sync_id, kind=kind, message=message, after_run_id=last_run, opened_at=now
    )
    try:
        with session.begin_nested():
            session.add(alert)
    except IntegrityError:
        return  # another checker opened it meanwhile
    open_alerts[(sync_id, kind)] = alert
    changes.opened.append(alert)


def list_alerts(session: Session, workspace_id: int, status: str | None = None, limit: int = 100) -> list[Alert]:
    """The workspace's alerts, newest first; ``status``: ``open`` or ``resolved``."""
    stmt = select(Alert).where(Alert.workspace_id == workspace_id)
    if status is not None:
        try:
            stmt = stmt.where(Alert.status == AlertStatus(status))
        except ValueError:
            raise InvalidError.one("status", "must be open or resolved") from None
    return list(session.scalars(stmt.order_by(Alert.id.desc()).limit(limit)))


def workspace_slugs(session: Session, alerts: list[Alert]) -> dict[int, str]:
    ids = {a.workspace_id for a in alerts}
    if not ids:
        return {}
    return dict(session.execute(select(Workspace.id, Workspace.slug).where(Workspace.id.in_(ids))).all())
