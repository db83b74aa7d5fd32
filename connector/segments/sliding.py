"""Sliding windows: ``refresh_time_relative_segments`` fully re-evaluates the segments whose conditions move with
time alone; the scheduler runs it every ``refresh_cadence()``. (Segments whose window edges can be followed per
subject are left to ``connector.segments.edges``.)"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import (
    func,
    select,
)
from sqlalchemy.orm import Session

from connector.models import (
    Segment,
    SegmentKind,
    utcnow,
)
from connector.segments.run import refresh_segments

# How often the sliding-window refresh runs, by the smallest relative time unit in use: a condition counted in
# minutes moves every minute; one in hours is re-checked every 5 minutes and one in days every 15 (a person leaves
# "viewed in the last 7 days" at most 15 minutes after the last view aged out).
CADENCE_BY_UNIT: list[tuple[timedelta, timedelta]] = [
    (timedelta(minutes=1), timedelta(minutes=1)),
    (timedelta(hours=1), timedelta(minutes=5)),
    (timedelta(days=1), timedelta(minutes=15)),
]


def time_relative_workspaces(session: Session) -> list[int]:
    """The workspaces that have time-relative segments (to refresh them one transaction per workspace)."""
    query = select(Segment.workspace_id).where(Segment.is_time_relative.is_(True), Segment.kind != SegmentKind.MANUAL)
    return list(session.scalars(query.distinct().order_by(Segment.workspace_id)))


def refresh_time_relative_segments(
    session: Session, workspace_id: int | None = None, now: datetime | None = None, exclude: Iterable[int] = ()
) -> dict[str, int]:
    """Fully re-evaluate every dynamic segment whose conditions move with time alone (all workspaces, or one).

    The scheduler's sliding-window job; returns ``{"workspaces", "segments", "entered", "exited"}``. The refreshed
    segments stay locked until the caller commits (ingestion touching them waits): with many workspaces, prefer
    one transaction per workspace (``time_relative_workspaces``). ``exclude``: segments followed otherwise
    (``connector.segments.edges``).
    """
    query = select(Segment.workspace_id, Segment.id).where(
        Segment.is_time_relative.is_(True), Segment.kind != SegmentKind.MANUAL
    )
    if exclude:
        query = query.where(Segment.id.not_in(list(exclude)))
    if workspace_id is not None:
        query = query.where(Segment.workspace_id == workspace_id)
    by_workspace: dict[int, list[int]] = {}
    for ws, segment_id in session.execute(query.order_by(Segment.workspace_id, Segment.id)):
        by_workspace.setdefault(ws, []).append(segment_id)
    totals = {"workspaces": len(by_workspace), "segments": 0, "entered": 0, "exited": 0}
    now = now or utcnow()
    for ws, segment_ids in by_workspace.items():
        evaluation = refresh_segments(session, ws, segment_ids, now=now)
        totals["segments"] += len(segment_ids)
        totals["entered"] += evaluation.entered
        totals["exited"] += evaluation.exited
    return totals


def refresh_cadence(session: Session) -> timedelta | None:
    """How often ``refresh_time_relative_segments`` should run: by the smallest relative time unit of any
    time-relative segment (``CADENCE_BY_UNIT``); None when no segment is time-relative (no job is needed)."""
    smallest = session.scalar(
        select(func.min(Segment.time_unit_seconds)).where(
            Segment.is_time_relative.is_(True), Segment.kind != SegmentKind.MANUAL
        )
    )
    if smallest is None:
        return None
    unit = timedelta(seconds=smallest)
    for limit, cadence in CADENCE_BY_UNIT:
        if unit <= limit:
            return cadence
    return CADENCE_BY_UNIT[-1][1]
