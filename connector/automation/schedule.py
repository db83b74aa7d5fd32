"""Checking a playbook's cron schedule when it is saved.

The scheduler builds the trigger itself (``connector.scheduling.triggers.trigger_for``, crontab semantics); this
refuses at the edge what it would refuse, without the automation package importing the scheduler (which calls it).
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from connector.errors import InvalidError

_WEEKDAY = re.compile(
    r"\A(\*|[0-7](-[0-7])?|(sun|mon|tue|wed|thu|fri|sat)(-(sun|mon|tue|wed|thu|fri|sat))?)(/[1-9])?\Z"
)


def check_cron(expression: str, timezone: str, location: str = "trigger") -> None:
    """Raise ``InvalidError`` naming ``trigger.expression`` or ``trigger.timezone`` when the schedule is not one."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidError.one(f"{location}.timezone", f"unknown time zone {timezone!r}") from None
    fields = expression.split()
    if len(fields) != 5:
        raise InvalidError.one(
            f"{location}.expression", f"must have 5 fields (minute hour day month weekday), got {len(fields)}"
        )
    minute, hour, day, month, weekday = fields
    if day != "*" and weekday != "*":
        raise InvalidError.one(
            f"{location}.expression", "restricting both day of month and day of week is not supported"
        )
    if not all(_WEEKDAY.match(part.lower()) for part in weekday.split(",")):
        raise InvalidError.one(f"{location}.expression", "the weekday field must use 0-7 or sun..sat")
    try:
        CronTrigger(minute=minute, hour=hour, day=day, month=month, timezone=zone)
    except ValueError as exc:
        raise InvalidError.one(f"{location}.expression", str(exc)) from None
