"""From a sync's schedule to an APScheduler trigger: the schedule type and its rules live in
``connector.schedules``; the scheduler reads them from here."""

from connector.schedules import ScheduleError, describe_schedule, next_fire_times, parse_schedule, trigger_for

__all__ = ["ScheduleError", "describe_schedule", "next_fire_times", "parse_schedule", "trigger_for"]
