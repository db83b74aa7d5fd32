"""Alerts on overdue and failing syncs: raised once, listed per workspace, sent by webhook and email, resolved by
the next success."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from connector.models import Alert, AlertKind, AlertStatus, Sync, utcnow
from connector.operations.checker import run_alert_check
from connector.operations.settings import OperationsSettings
from connector.syncs import run_sync
from tests.syncs.conftest import create_sync, hubspot_config, seed_users

GRACE = 120


@pytest.fixture
def alert_settings(settings, smtp_server, webhook_server):
    port, _ = smtp_server
    url, _ = webhook_server
    operations = OperationsSettings(
        alert_grace_seconds=GRACE,
        alert_failed_runs=3,
        alert_webhook_url=url,
        alert_email_to=("ops@acme.example",),
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_from="connector@acme.example",
    )
    return replace(settings, operations=operations)


def test_a_scheduler_down_past_the_grace_raises_overdue_once_and_recovery_resolves_it(
    client, tenant, database, sandbox, alert_settings, smtp_server, webhook_server
):
    seed_users(database, tenant.workspace_id, [{"email": "a@example.com", "attributes": {"first_name": "A"}}])
    setup = create_sync(client, tenant, sandbox, schedule={"kind": "interval", "minutes": 5})
    with database.session() as session:
        saved = session.get(Sync, setup.sync_id).updated_at
    _, mails = smtp_server
    _, posts = webhook_server

    # Due five minutes after it was saved: not overdue until the grace has passed too.
    within = run_alert_check(database, alert_settings, now=saved + timedelta(minutes=5, seconds=GRACE - 1))
    assert within.opened == []
    late = saved + timedelta(minutes=5, seconds=GRACE + 1)
    first = run_alert_check(database, alert_settings, now=late)
    again = run_alert_check(database, alert_settings, now=late + timedelta(minutes=30))
    assert [a.kind for a in first.opened] == [AlertKind.OVERDUE]
    assert again.opened == [] and again.resolved == []
    assert [p["event"] for p in posts] == ["opened"]
    assert posts[0]["alert"]["kind"] == "overdue" and posts[0]["alert"]["workspace"] == "acme"
    assert len(mails) == 1 and mails[0]["To"] == "ops@acme.example" and "overdue" in mails[0]["Subject"]

    listed = client.get(tenant.url("/alerts?status=open"), headers=tenant.headers)
    assert listed.status_code == 200
    assert [(a["kind"], a["sync_id"]) for a in listed.get_json()["data"]] == [("overdue", setup.sync_id)]

    # The scheduler is back: its job runs the sync, which succeeds; the next check resolves the alert.
    outcome = run_sync(database, setup.sync_id, trigger="schedule", secret_key=alert_settings.secret_key)
    assert outcome.status.value == "succeeded"
    recovered = run_alert_check(database, alert_settings)
    assert [a.kind for a in recovered.resolved] == [AlertKind.OVERDUE]
    assert [p["event"] for p in posts] == ["opened", "resolved"]
    assert len(mails) == 2 and "resolved" in mails[1]["Subject"]
    with database.session() as session:
        alert = session.scalars(select(Alert)).one()
        assert alert.status == AlertStatus.RESOLVED and alert.resolved_at is not None
    assert run_alert_check(database, alert_settings).opened == []


def test_a_sync_that_ran_recently_is_not_overdue(client, tenant, database, sandbox, alert_settings):
    setup = create_sync(client, tenant, sandbox, schedule={"kind": "interval", "minutes": 60})
    later = utcnow() + timedelta(minutes=60, seconds=GRACE + 60)
    run_sync(database, setup.sync_id, trigger="schedule", secret_key=alert_settings.secret_key)
    # Its next run falls due an hour after this run started, not an hour after it was saved.
    with database.session() as session:
        session.execute(update(Sync).where(Sync.id == setup.sync_id).values(updated_at=utcnow() - timedelta(days=1)))
    assert run_alert_check(database, alert_settings, now=later - timedelta(seconds=120)).opened == []
    assert [a.kind for a in run_alert_check(database, alert_settings, now=later + timedelta(minutes=5)).opened] == [
        AlertKind.OVERDUE
    ]


def test_three_failed_runs_in_a_row_raise_failing_and_a_success_resolves_it(
    client, tenant, database, sandbox, alert_settings, webhook_server
):
    seed_users(database, tenant.workspace_id, [{"email": "a@example.com", "attributes": {"first_name": "A"}}])
    setup = create_sync(client, tenant, sandbox, config=hubspot_config(sandbox, access_token="wrong-token"))
    _, posts = webhook_server
    for _ in range(3):
        assert run_alert_check(database, alert_settings).opened == []
        outcome = run_sync(database, setup.sync_id, secret_key=alert_settings.secret_key)
        assert outcome.status.value == "failed"
    opened = run_alert_check(database, alert_settings).opened
    assert [a.kind for a in opened] == [AlertKind.FAILING]
    assert "3 failed runs in a row" in opened[0].message

    fixed = client.patch(
        tenant.url(f"/destinations/{setup.destination_id}"),
        json={"config": hubspot_config(sandbox)},
        headers=tenant.headers,
    )
    assert fixed.status_code == 200, fixed.get_json()
    assert run_sync(database, setup.sync_id, secret_key=alert_settings.secret_key).status.value == "succeeded"
    assert [a.kind for a in run_alert_check(database, alert_settings).resolved] == [AlertKind.FAILING]
    assert [p["event"] for p in posts] == ["opened", "resolved"]


def test_alerts_are_listed_only_in_their_own_workspace(client, tenant, other_tenant, database, sandbox, alert_settings):
    setup = create_sync(client, tenant, sandbox, schedule={"kind": "interval", "minutes": 5})
    run_alert_check(database, alert_settings, now=utcnow() + timedelta(hours=1))
    assert len(client.get(tenant.url("/alerts"), headers=tenant.headers).get_json()["data"]) == 1
    theirs = client.get(other_tenant.url("/alerts"), headers=other_tenant.headers)
    assert theirs.status_code == 200 and theirs.get_json()["data"] == []
    assert setup.sync_id


def test_an_unknown_alert_status_is_refused_naming_the_field(client, tenant):
    response = client.get(tenant.url("/alerts?status=maybe"), headers=tenant.headers)
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    assert "status" in response.get_data(as_text=True)
