"""Sync schedules become triggers that fire when people reading a crontab expect, through daylight saving."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from connector.schedules import ScheduleError, next_fire_times, trigger_for

PARIS_DAILY_0230 = {"kind": "cron", "expression": "30 2 * * *", "timezone": "Europe/Paris"}


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def in_utc(times) -> list[datetime]:
    return [t.astimezone(UTC) for t in times]


def test_manual_schedule_has_no_trigger():
    assert trigger_for({"kind": "manual"}) is None


def test_interval_schedule_fires_every_n_minutes_from_when_it_is_set():
    start = utc(2026, 5, 4, 10, 0)
    with time_machine.travel(start, tick=False):
        trigger = trigger_for({"kind": "interval", "minutes": 15})
    first = trigger.get_next_fire_time(None, start)
    assert first == start + timedelta(minutes=15)
    assert in_utc(next_fire_times(trigger, first, 2)) == [utc(2026, 5, 4, 10, 30), utc(2026, 5, 4, 10, 45)]


def test_weekday_numbers_are_crontab_numbers_monday_to_friday():
    trigger = trigger_for({"kind": "cron", "expression": "0 9 * * 1-5", "timezone": "Europe/Paris"})
    times = next_fire_times(trigger, utc(2026, 5, 1, 12), 7)  # from Friday 1 May
    assert [t.strftime("%a %H:%M") for t in times] == [
        "Mon 09:00", "Tue 09:00", "Wed 09:00", "Thu 09:00", "Fri 09:00", "Mon 09:00", "Tue 09:00"
    ]  # fmt: skip
    assert times[0].astimezone(UTC) == utc(2026, 5, 4, 7, 0)  # 09:00 CEST


@pytest.mark.parametrize(
    ("field", "expected"),
    [("0,6", ["Sat", "Sun"]), ("7", ["Sun"]), ("sun", ["Sun"]), ("mon-wed", ["Mon", "Tue", "Wed"])],
)
def test_weekday_field_accepts_crontab_forms(field, expected):
    trigger = trigger_for({"kind": "cron", "expression": f"0 9 * * {field}"})
    days = {t.strftime("%a") for t in next_fire_times(trigger, utc(2026, 5, 1), 14)}
    assert days == set(expected)


def test_daily_job_in_skipped_hour_runs_once_an_hour_later_on_spring_forward_night():
    # 2026-03-29: Paris clocks jump from 02:00 to 03:00, so 02:30 does not exist that night.
    times = in_utc(next_fire_times(trigger_for(PARIS_DAILY_0230), utc(2026, 3, 27, 12), 4))
    assert times == [
        utc(2026, 3, 28, 1, 30),  # 02:30 CET
        utc(2026, 3, 29, 1, 30),  # 03:30 CEST, the first wall-clock time after 02:30
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
        utc(2026, 3, 31, 0, 30),
    ]


def test_daily_job_in_repeated_hour_runs_once_on_fall_back_night():
    # 2026-10-25: Paris clocks go back from 03:00 CEST to 02:00 CET, so 02:30 happens twice that night.
    times = in_utc(next_fire_times(trigger_for(PARIS_DAILY_0230), utc(2026, 10, 23, 12), 4))
    assert times == [
        utc(2026, 10, 24, 0, 30),  # 02:30 CEST
        utc(2026, 10, 25, 0, 30),  # the first 02:30 (CEST); the second (CET, 01:30 UTC) is not a second run
        utc(2026, 10, 26, 1, 30),  # 02:30 CET
        utc(2026, 10, 27, 1, 30),
    ]


def test_hourly_job_keeps_running_every_hour_through_the_repeated_hour():
    trigger = trigger_for({"kind": "cron", "expression": "30 * * * *", "timezone": "Europe/Paris"})
    times = in_utc(next_fire_times(trigger, utc(2026, 10, 24, 23, 45), 4))
    assert times == [
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 25, 1, 30),
        utc(2026, 10, 25, 2, 30),
        utc(2026, 10, 25, 3, 30),
    ]


@pytest.mark.parametrize(
    ("schedule", "field"),
    [
        ([], "schedule"),
        ({"kind": "hourly"}, "kind"),
        ({"kind": "interval"}, "minutes"),
        ({"kind": "interval", "minutes": 0}, "minutes"),
        ({"kind": "interval", "minutes": 2.5}, "minutes"),
        ({"kind": "interval", "minutes": True}, "minutes"),
        ({"kind": "interval", "minutes": 10**9}, "minutes"),
        ({"kind": "cron"}, "expression"),
        ({"kind": "cron", "expression": "0 9 * *"}, "expression"),
        ({"kind": "cron", "expression": "61 9 * * *"}, "expression"),
        ({"kind": "cron", "expression": "0 9 * * 8"}, "expression"),
        ({"kind": "cron", "expression": "0 9 * * 5-1"}, "expression"),
        ({"kind": "cron", "expression": "0 9 1 * 1"}, "expression"),
        ({"kind": "cron", "expression": "0 9 * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"kind": "cron", "expression": "0 9 * * *", "timezone": "../../etc/passwd"}, "timezone"),
        ({"kind": "cron", "expression": "0 9 * * *", "timezone": 2}, "timezone"),
    ],
)
def test_invalid_schedule_names_the_field(schedule, field):
    with pytest.raises(ScheduleError) as caught:
        trigger_for(schedule)
    assert caught.value.field == field
    assert caught.value.reason
