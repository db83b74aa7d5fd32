"""Schedules: the typed ``Manual | Interval | Cron`` union, its validation, and its APScheduler trigger.

One module owns what a schedule is; syncs store one (``schedule.stored()``), the scheduler turns it into a job
(``schedule.trigger()``), and whatever else runs on a schedule (segment actions, playbooks) uses the same shape.
It sits below every feature package and imports none of them.

A schedule is ``{"kind": "manual"}`` (no trigger), ``{"kind": "interval", "minutes": N}`` or
``{"kind": "cron", "expression": "0 9 * * 1-5", "timezone": "Europe/Paris"}``. ``parse_schedule`` reads one from
a document and raises ``ScheduleError`` (an ``InvalidError``) naming the offending key and the reason.

Two places where APScheduler 3's cron differs from crontab are brought back to crontab:

- day-of-week numbers are crontab's (0 or 7 = Sunday, 1 = Monday), translated to weekday names, because
  APScheduler 3 counts 0 as Monday (so ``1-5`` would otherwise mean Tuesday to Saturday);
- an expression restricting both day of month and day of week is refused: crontab runs when *either* matches,
  APScheduler when *both* do, and no translation keeps the meaning.

Daylight saving (wall-clock times in the schedule's zone): a time the clocks skip runs once, one hour later
(02:30 on the spring-forward night runs at 03:30); a time the clocks repeat runs once, at its first occurrence,
when the hour is fixed (``30 2 * * *``). Expressions whose hour is ``*`` or ``*/n`` keep running every hour through
the repeated hour, as crontab does.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.cron.expressions import AllExpression
from apscheduler.triggers.interval import IntervalTrigger
from pydantic import BaseModel, ConfigDict, Field

from connector.errors import InvalidError

# A year of minutes: an interval beyond that is a typo, not a schedule.
MAX_INTERVAL_MINUTES = 366 * 24 * 60
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_HOUR_FIELD = CronTrigger.FIELD_NAMES.index("hour")


class ScheduleError(InvalidError):
    """A schedule that cannot be turned into a trigger; ``field`` names the offending key of the schedule
    (``schedule`` for the whole document), and ``errors`` the same as a path from the sync (``schedule.minutes``)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__([{"field": "schedule" if field == "schedule" else f"schedule.{field}", "reason": reason}])
        self.field = field
        self.reason = reason


class ManualSchedule(BaseModel):
    """Runs only when asked."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["manual"] = "manual"

    def trigger(self) -> None:
        return None

    def describe(self) -> str:
        return "manual"


class IntervalSchedule(BaseModel):
    """Every ``minutes`` minutes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["interval"] = "interval"
    minutes: int = Field(ge=1, le=366 * 24 * 60)

    def trigger(self) -> IntervalTrigger:
        return IntervalTrigger(minutes=self.minutes, timezone=ZoneInfo("UTC"))

    def describe(self) -> str:
        return f"every {self.minutes} min"


class CronSchedule(BaseModel):
    """A crontab expression read in an IANA time zone (normalised: single spaces)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["cron"] = "cron"
    expression: str
    timezone: str = "UTC"

    def trigger(self) -> CronTrigger:
        return _cron_trigger(self.expression, _zone(self.timezone))

    def describe(self) -> str:
        return f"cron {self.expression} {self.timezone}"


Schedule = Annotated[ManualSchedule | IntervalSchedule | CronSchedule, Field(discriminator="kind")]
SETTINGS = {"manual": {"kind"}, "interval": {"kind", "minutes"}, "cron": {"kind", "expression", "timezone"}}


def parse_schedule(document: Any) -> ManualSchedule | IntervalSchedule | CronSchedule:
    """The typed schedule of a document (None: manual); ``ScheduleError`` naming the key and the reason."""
    if document is None:
        return ManualSchedule()
    if isinstance(document, ManualSchedule | IntervalSchedule | CronSchedule):
        return document
    if not isinstance(document, dict):
        raise ScheduleError("schedule", "must be an object")
    kind = document.get("kind")
    if kind not in SETTINGS:
        raise ScheduleError("kind", "must be one of manual, interval, cron")
    extra = set(document) - SETTINGS[kind]
    if extra:
        raise ScheduleError(sorted(extra)[0], "not a setting of this kind of schedule")
    if kind == "manual":
        return ManualSchedule()
    if kind == "interval":
        minutes = document.get("minutes")
        if isinstance(minutes, bool) or not isinstance(minutes, int):
            raise ScheduleError("minutes", "must be a whole number of minutes")
        if not 1 <= minutes <= MAX_INTERVAL_MINUTES:
            raise ScheduleError("minutes", f"must be between 1 and {MAX_INTERVAL_MINUTES}")
        return IntervalSchedule(minutes=minutes)
    timezone = document.get("timezone", "UTC")
    expression = document.get("expression")
    _cron_trigger(expression, _zone(timezone))  # refuses what cannot run
    return CronSchedule(expression=" ".join(expression.split()), timezone=timezone)


class WallClockCronTrigger(CronTrigger):
    """A cron trigger that runs a fixed-hour time once on the night the clocks go back (crontab's rule)."""

    def get_next_fire_time(self, previous_fire_time, now):
        fire_time = super().get_next_fire_time(previous_fire_time, now)
        while fire_time is not None and self._repeats_wall_time(fire_time):
            fire_time = super().get_next_fire_time(fire_time, fire_time)
        return fire_time

    def _repeats_wall_time(self, fire_time) -> bool:
        # fold=1 is the second occurrence of an ambiguous wall time; it repeats only if fold=0 names another instant.
        if not fire_time.fold or fire_time.replace(fold=0).utcoffset() == fire_time.utcoffset():
            return False
        hour = self.fields[_HOUR_FIELD]
        # RangeExpression subclasses AllExpression: only a bare ``*`` or ``*/n`` is "every hour".
        return not all(type(expression) is AllExpression for expression in hour.expressions)


def trigger_for(schedule: Any) -> BaseTrigger | None:
    """The trigger of a schedule (typed or a stored document), or None for a manual schedule; ``ScheduleError``
    naming the field and the reason when it is not valid."""
    return parse_schedule(schedule).trigger()


def describe_schedule(schedule: Any) -> str:
    """A short human description of a valid schedule (also how the scheduler tells that a schedule changed)."""
    return parse_schedule(schedule).describe()


def _zone(name: Any) -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise ScheduleError("timezone", "must be an IANA time zone name such as Europe/Paris")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError("timezone", f"unknown time zone {name!r}") from None


def _cron_trigger(expression: Any, timezone: ZoneInfo) -> CronTrigger:
    if not isinstance(expression, str):
        raise ScheduleError("expression", "must be a crontab expression such as '0 9 * * 1-5'")
    fields = expression.split()
    if len(fields) != 5:
        raise ScheduleError("expression", f"must have 5 fields (minute hour day month weekday), got {len(fields)}")
    minute, hour, day, month, weekday = fields
    try:
        trigger = WallClockCronTrigger(
            minute=minute, hour=hour, day=day, month=month, day_of_week=_weekdays(weekday), timezone=timezone
        )
    except ScheduleError:
        raise
    except ValueError as exc:
        raise ScheduleError("expression", str(exc)) from None
    if day != "*" and weekday != "*":
        raise ScheduleError("expression", "restricting both day of month and day of week is not supported")
    return trigger


def _weekdays(field: str) -> str:
    """Crontab's day-of-week field as APScheduler weekday names (``1-5`` -> ``mon,tue,wed,thu,fri``)."""
    if field == "*":
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        days |= _weekday_part(part)
    if len(days) == 7:
        return "*"
    # APScheduler weeks start on Monday; list the days in that order for a readable trigger.
    return ",".join(WEEKDAYS[d] for d in sorted(days, key=lambda d: (d - 1) % 7))


def _weekday_part(part: str) -> set[int]:
    span, _, step_text = part.partition("/")
    step = 1
    if step_text:
        if not step_text.isdigit() or int(step_text) == 0:
            raise ScheduleError("expression", f"invalid step in day of week {part!r}")
        step = int(step_text)
    if span == "*":
        first, last = 0, 6
    else:
        low, dash, high = span.partition("-")
        first = _weekday_number(low, part)
        last = _weekday_number(high, part) if dash else (6 if step_text else first)
        if last < first:
            raise ScheduleError("expression", f"day-of-week range {part!r} runs backwards")
    return {day % 7 for day in range(first, last + 1, step)}


def _weekday_number(text: str, part: str) -> int:
    text = text.lower()
    if text.isdigit() and int(text) <= 7:
        return int(text)
    if text[:3] in WEEKDAYS and len(text) == 3:
        return WEEKDAYS.index(text)
    raise ScheduleError("expression", f"invalid day of week {part!r}")


def next_fire_times(trigger: BaseTrigger, after, count: int) -> list:
    """The next ``count`` fire times of a trigger strictly after ``after`` (aware), for previews and tests."""
    times = []
    previous = None
    now = after + timedelta(microseconds=1)
    while len(times) < count:
        fire_time = trigger.get_next_fire_time(previous, now)
        if fire_time is None:
            break
        times.append(fire_time)
        previous = now = fire_time
    return times
