"""Checking for alerts as an entry point: one transaction per check, notifications after the commit."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from connector.config import Settings
from connector.db import Database
from connector.operations.alerts import AlertChanges, check_alerts, workspace_slugs
from connector.operations.notify import alert_payload, send_alerts

log = logging.getLogger("connector.operations")

CHECK_SECONDS = 30.0


def run_alert_check(db: Database, settings: Settings, now: datetime | None = None) -> AlertChanges:
    """Open and resolve alerts, commit, then notify: what ``connector alerts check`` and the checker thread do."""
    with db.session() as session:
        changes = check_alerts(session, settings.operations, now)
        slugs = workspace_slugs(session, changes.opened + changes.resolved)
        payloads = [alert_payload(a, "opened", slugs.get(a.workspace_id)) for a in changes.opened]
        payloads += [alert_payload(a, "resolved", slugs.get(a.workspace_id)) for a in changes.resolved]
    for alert in changes.opened:
        log.warning("alert %s opened: %s", alert.id, alert.message)
    for alert in changes.resolved:
        log.info("alert %s resolved: %s", alert.id, alert.message)
    send_alerts(settings.operations, payloads)
    return changes


class AlertChecker(threading.Thread):
    """Checks every ``interval`` seconds until stopped (worker processes and ``connector serve`` run one)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        interval: float = CHECK_SECONDS,
        on_tick: Callable[[], object] | None = None,
    ) -> None:
        super().__init__(name="alert-checker", daemon=True)
        self.db, self.settings, self.interval, self.on_tick = db, settings, interval, on_tick
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                run_alert_check(self.db, self.settings)
                if self.on_tick is not None:
                    self.on_tick()
            except Exception:
                log.exception("checking for alerts failed; trying again in %.0f s", self.interval)

    def stop(self) -> None:
        self._stopping.set()
