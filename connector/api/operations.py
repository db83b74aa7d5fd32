"""Operations endpoints: ``/healthz`` (the process answers), ``/readyz`` (the database, and the broker when one is
configured, answer), ``/metrics`` (Prometheus), and the workspace's alerts under ``/api/v1/workspaces/<ws>/alerts``.
"""

from __future__ import annotations

from typing import Literal

from flask import Response, current_app
from flask_openapi3 import APIBlueprint, Tag
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from pydantic import BaseModel, Field

from connector.api.common import WorkspacePath, workspace_blueprint
from connector.api.context import database, unit_of_work, workspace_id
from connector.models import Alert
from connector.operations import readiness
from connector.operations.alerts import list_alerts
from connector.operations.metrics import DatabaseCollector
from connector.workers.app import queue_name, worker_queues

probes = APIBlueprint("operations", __name__, abp_tags=[Tag(name="operations")], doc_ui=False)
bp = workspace_blueprint("alerts", "alerts")


def blueprints() -> list[APIBlueprint]:
    return [probes, bp]


@probes.get("/healthz")
def healthz():
    """The process is up."""
    return {"status": "ok"}


@probes.get("/readyz")
def readyz():
    """Ready to serve: 200 when the database (and the broker, when configured) answer, else 503 naming what failed."""
    settings = current_app.config["SETTINGS"]
    checks = readiness.check(database(), settings)
    ready = all(check["ok"] for check in checks.values())
    return {"status": "ready" if ready else "unavailable", "checks": checks}, 200 if ready else 503


@probes.get("/metrics")
def metrics():
    """Prometheus metrics of this process and, read at each scrape, of the database and the broker's queues."""
    registry = current_app.extensions.get("connector.metrics")
    if registry is None:
        settings = current_app.config["SETTINGS"]
        registry = CollectorRegistry(auto_describe=False)
        queues = [queue_name(settings, q) for q in worker_queues(settings)]
        registry.register(DatabaseCollector(database(), settings, queues))
        current_app.extensions["connector.metrics"] = registry
    body = generate_latest(REGISTRY) + generate_latest(registry)
    return Response(body, content_type=CONTENT_TYPE_LATEST)


class AlertsQuery(BaseModel):
    status: Literal["open", "resolved"] | None = Field(None, description="Only open, or only resolved, alerts")
    limit: int = Field(100, ge=1, le=500)


def _alert_json(alert: Alert) -> dict:
    return {
        "id": alert.id,
        "sync_id": alert.sync_id,
        "kind": alert.kind.value,
        "status": alert.status.value,
        "message": alert.message,
        "opened_at": alert.opened_at,
        "resolved_at": alert.resolved_at,
    }


@bp.get("/alerts")
def get_alerts(path: WorkspacePath, query: AlertsQuery):
    """The workspace's alerts (overdue and failing syncs), newest first."""
    with unit_of_work() as session:
        return {"data": [_alert_json(a) for a in list_alerts(session, workspace_id(), query.status, query.limit)]}
