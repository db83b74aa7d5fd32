"""Alerts: the workspace's open and resolved alerts (overdue and failing syncs), each linked to its sync, and the
number of open ones for the navigation's badge. Read with ``connector.operations.alerts.list_alerts``, as the API's
``GET .../alerts``.
"""

from __future__ import annotations

from typing import Any

from flask import g

from connector.operations.alerts import list_alerts
from connector.syncs import definitions
from connector.web.context import db, render, workspace_blueprint, workspace_id

bp = workspace_blueprint("ui_alerts", "/alerts")
SHOWN = 100


@bp.get("")
def index():
    with db() as session:
        opened = list_alerts(session, workspace_id(), "open", SHOWN)
        resolved = list_alerts(session, workspace_id(), "resolved", SHOWN)
        names = {s.id: s.name for s in definitions.list_syncs(session, workspace_id())}
        session.expunge_all()
    return render("alerts/index.html", opened=opened, resolved=resolved, sync_names=names)


@bp.app_context_processor
def open_alert_count() -> dict[str, Any]:
    """``open_alerts``: how many alerts of the page's workspace are open (the navigation's badge)."""
    access = g.get("access")
    if access is None or g.get("workspace") is None:
        return {"open_alerts": 0}
    if "open_alert_count" not in g:
        with db() as session:
            g.open_alert_count = len(list_alerts(session, access.workspace_id, "open", SHOWN))
    return {"open_alerts": g.open_alert_count}
