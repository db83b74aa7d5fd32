"""Checking a playbook's cron schedule when it is saved, by the same rules the scheduler builds its trigger with
(``connector.schedules``), the fields named under the playbook's ``trigger``."""

from __future__ import annotations

from connector.errors import InvalidError
from connector.schedules import ScheduleError, trigger_for


def check_cron(expression: str, timezone: str, location: str = "trigger") -> None:
    """Raise ``InvalidError`` naming ``trigger.expression`` or ``trigger.timezone`` when the schedule is not one."""
    try:
        trigger_for({"kind": "cron", "expression": expression, "timezone": timezone})
    except ScheduleError as exc:
        field = location if exc.field == "schedule" else f"{location}.{exc.field}"
        raise InvalidError.one(field, exc.reason) from None
