"""Jinja filters and globals of the UI: times in the workspace's zone, numbers, the CSRF token."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Flask, g
from flask_wtf.csrf import generate_csrf

from connector.web.context import can_administer, can_edit


def _zone() -> ZoneInfo:
    workspace = getattr(g, "workspace", None)
    try:
        return ZoneInfo(workspace.time_zone if workspace is not None else "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_time(value: datetime | None, with_zone: bool = False) -> str:
    """A stored (UTC) time in the workspace's zone: ``2026-12-04 21:05`` (``Europe/Paris`` appended on request)."""
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    zone = _zone()
    text = value.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    return f"{text} ({zone.key})" if with_zone else text


def duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "—"
    seconds = (end - start).total_seconds()
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def number(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


def register(app: Flask) -> None:
    app.jinja_env.filters.update(local_time=local_time, number=number, as_json=as_json)
    app.jinja_env.globals.update(
        csrf_token=generate_csrf, duration=duration, can_edit=can_edit, can_administer=can_administer
    )
