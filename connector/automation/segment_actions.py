"""Segment actions: every day at HH:MM in an IANA time zone, enrol the segment's members who are not active in the
sequence, on their default channel or the action's fallback channel.

When it runs is the scheduler's (``connector.scheduling``: one cron job per enabled action, read in the action's
zone, so 09:00 Europe/Berlin is 09:00 local on both sides of a daylight-saving change; runs missed while no scheduler
ran coalesce into one). *That* it runs once a day is this module's: a run first claims the action's local date
(``segment_action_runs`` is unique per action and date), so a second scheduler, a retried job or a catch-up on the
same day finds the date taken and does nothing.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connector.automation.common import parsed
from connector.automation.sequences import check_channel, enrol, get_sequence
from connector.errors import InvalidError, NotFoundError
from connector.models import Segment, SegmentAction, SegmentActionRun, SegmentMembership, SubjectType, utcnow

_TIME = re.compile(r"\A([01][0-9]|2[0-3]):([0-5][0-9])\Z")


class SegmentActionInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sequence_id: Annotated[int, Field(ge=1, le=2**63 - 1)]
    time: Annotated[str, Field(max_length=5, description="HH:MM, 24-hour, local to timezone")]
    timezone: Annotated[str, Field(max_length=64, description="IANA time zone, e.g. Europe/Berlin")]
    fallback_channel: Literal["email", "sms", "push", "whatsapp", "in_app"]
    enabled: bool = True


def schedule_of(action: SegmentAction) -> dict[str, str]:
    """The action's schedule in the scheduler's cron form (``connector.schedules``)."""
    hour, minute = action.time.split(":")
    return {"kind": "cron", "expression": f"{int(minute)} {int(hour)} * * *", "timezone": action.timezone}


def occurrence_date(time: str, timezone: str, now: datetime) -> date:
    """The local date of the action's latest time at or before ``now``: the day a run at ``now`` is for. A catch-up
    at 08:00 for a 09:00 action is yesterday's run, so today's 09:00 still runs."""
    zone = ZoneInfo(timezone)
    hour, minute = (int(part) for part in time.split(":"))
    day = now.astimezone(zone).date()
    # A wall time the clocks skip resolves (fold=0) an hour later, as the scheduler runs it.
    if datetime.combine(day, dt_time(hour, minute), zone) > now:
        day -= timedelta(days=1)
    return day


def get_segment_action(session: Session, workspace_id: int, segment_id: int) -> SegmentAction:
    action = session.scalar(select(SegmentAction).where(SegmentAction.segment_id == segment_id))
    if action is None or action.workspace_id != workspace_id:
        raise NotFoundError("segment action")
    return action


def list_segment_actions(session: Session, workspace_id: int) -> list[SegmentAction]:
    query = select(SegmentAction).where(SegmentAction.workspace_id == workspace_id).order_by(SegmentAction.id)
    return list(session.scalars(query))


def put_segment_action(session: Session, workspace_id: int, segment_id: int, data: Any) -> SegmentAction:
    """Create or replace the segment's one action."""
    segment = session.get(Segment, segment_id)
    if segment is None or segment.workspace_id != workspace_id:
        raise NotFoundError("segment")
    if segment.subject_type != SubjectType.USER:
        raise InvalidError.one("segment_id", "segment actions enrol people: the segment must be a user segment")
    body = parsed(SegmentActionInput, data)
    if not _TIME.match(body.time):
        raise InvalidError.one("time", "must be HH:MM (00:00 to 23:59)")
    try:
        ZoneInfo(body.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidError.one("timezone", f"unknown time zone {body.timezone!r}") from None
    try:
        sequence = get_sequence(session, workspace_id, body.sequence_id)
    except NotFoundError:
        raise InvalidError.one("sequence_id", "no such sequence in this workspace") from None
    check_channel(sequence, body.fallback_channel, "fallback_channel")
    action = session.scalar(select(SegmentAction).where(SegmentAction.segment_id == segment_id))
    if action is None:
        action = SegmentAction(workspace_id=workspace_id, segment_id=segment_id)
        session.add(action)
    action.sequence_id = sequence.id
    action.time = body.time
    action.timezone = body.timezone
    action.fallback_channel = body.fallback_channel
    action.enabled = body.enabled
    session.flush()
    return action


def delete_segment_action(session: Session, action: SegmentAction) -> None:
    session.delete(action)
    session.flush()


def run_segment_action(session: Session, action_id: int, now: datetime | None = None) -> SegmentActionRun | None:
    """Run the action for the local date of ``now``; None when that date's run happened already (or the action is
    gone or disabled). The date is claimed in a savepoint first, so a concurrent run of the same date waits on it
    and then finds it taken."""
    now = now or utcnow()
    action = session.get(SegmentAction, action_id)
    if action is None or not action.enabled:
        return None
    run_date = occurrence_date(action.time, action.timezone, now).isoformat()
    run = SegmentActionRun(action_id=action.id, run_date=run_date, started_at=now)
    try:
        with session.begin_nested():
            session.add(run)
            session.flush()
    except IntegrityError:
        return None
    sequence = get_sequence(session, action.workspace_id, action.sequence_id)
    members = select(SegmentMembership.subject_id).where(SegmentMembership.segment_id == action.segment_id)
    total = session.scalar(select(func.count()).select_from(members.subquery()))
    enrolled = enrol(
        session,
        sequence,
        members,
        fallback_channel=action.fallback_channel,
        source="segment_action",
        source_id=run.id,
        now=now,
    )
    run.enrolled = len(enrolled)
    run.already_enrolled = total - len(enrolled)
    action.last_run_at = now
    session.flush()
    return run


def list_runs(session: Session, action: SegmentAction, limit: int = 30) -> list[SegmentActionRun]:
    query = (
        select(SegmentActionRun)
        .where(SegmentActionRun.action_id == action.id)
        .order_by(SegmentActionRun.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))
