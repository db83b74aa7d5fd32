"""Readiness: can this process reach what it needs (the database; the broker when configured)?"""

from __future__ import annotations

from typing import Any

from kombu import Connection
from sqlalchemy import text

from connector.config import Settings
from connector.db import Database

BROKER_TIMEOUT_S = 2.0


def check(db: Database, settings: Settings) -> dict[str, dict[str, Any]]:
    """``{"database": {"ok": bool, "error"?: str}, "broker"?: {...}}``; errors name the exception, never a URL."""
    checks = {"database": _attempt(lambda: _database(db))}
    if settings.operations.broker_url:
        checks["broker"] = _attempt(lambda: _broker(settings.operations.broker_url))
    return checks


def _attempt(probe) -> dict[str, Any]:
    try:
        probe()
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True}


def _database(db: Database) -> None:
    with db.engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def _broker(url: str) -> None:
    with Connection(url, connect_timeout=BROKER_TIMEOUT_S) as connection:
        connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_S)
