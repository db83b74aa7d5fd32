"""Health, readiness and Prometheus metrics, and JSON logs."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

from connector import create_app
from connector.operations.logs import JsonFormatter
from connector.operations.settings import OperationsSettings
from connector.syncs import run_sync
from tests.operations.conftest import free_port
from tests.syncs.conftest import create_sync, seed_users


def test_healthz_answers_while_the_process_is_up(client):
    response = client.get("/healthz")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})


def test_readyz_checks_the_database(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "checks": {"database": {"ok": True}}}


def test_readyz_is_unavailable_when_the_configured_broker_is_down_and_names_it(settings, database):
    down = f"amqp://guest:guest@127.0.0.1:{free_port()}//"
    app = create_app(replace(settings, operations=OperationsSettings(broker_url=down)), database=database)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    checks = response.get_json()["checks"]
    assert checks["database"] == {"ok": True}
    assert checks["broker"]["ok"] is False
    assert "127.0.0.1" not in response.get_data(as_text=True)  # no URL (and no credentials) in the answer


def test_metrics_count_ingested_items_and_sync_records_by_outcome(client, tenant, database, sandbox, settings):
    before = _metric(client, 'connector_ingested_items_total{kind="identify"}', default=0.0)
    response = client.post(
        tenant.url("/identify"),
        json={"batch": [{"external_id": f"u{i}", "email": f"u{i}@example.com"} for i in range(3)]},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.get_json()
    assert _metric(client, 'connector_ingested_items_total{kind="identify"}') == before + 3

    seed_users(database, tenant.workspace_id, [{"email": "m@example.com", "attributes": {"first_name": "M"}}])
    setup = create_sync(client, tenant, sandbox)
    run_sync(database, setup.sync_id, secret_key=settings.secret_key)
    assert _metric(client, 'connector_sync_records_total{outcome="added"}') == 4
    assert _metric(client, 'connector_sync_records_total{outcome="rejected"}') == 0
    assert _metric(client, "connector_scheduler_lag_seconds") == 0
    assert _metric(client, "connector_open_alerts") == 0
    assert client.get("/metrics").content_type.startswith("text/plain")


def test_json_logs_are_one_object_per_line():
    record = logging.LogRecord("connector.workers", logging.WARNING, __file__, 1, "run %s failed", (7,), None)
    document = json.loads(JsonFormatter().format(record))
    assert (document["level"], document["logger"], document["message"]) == (
        "WARNING",
        "connector.workers",
        "run 7 failed",
    )
    assert document["time"].endswith("+00:00")


def _metric(client, name: str, default: float | None = None) -> float:
    for line in client.get("/metrics").get_data(as_text=True).splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    if default is not None:
        return default
    raise AssertionError(f"no metric {name}")
