"""Alerts: the workspace's open and resolved alerts (overdue and failing syncs), each linked to its sync, and the
number of open ones for the navigation's badge (``g.open_alerts``, counted with the workspace in
``web.context``). Read with ``connector.operations.alerts.list_alerts``, as the API's
``GET .../alerts``.
"""

from __future__ import annotations

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
