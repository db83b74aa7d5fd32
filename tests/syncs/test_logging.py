"""Secrets never reach the logs: not through the API, not through a run, not when things go wrong."""

from __future__ import annotations

import logging

from connector.syncs import run_sync
from connector.testing.hubspot_sandbox import FaultPlan
from tests.syncs.conftest import FAST_RETRY, SANDBOX_TOKEN, create_sync, hubspot_config, seed_users


def test_the_access_token_never_appears_in_the_logs(caplog, client, tenant, database, sandbox, settings):
    caplog.set_level(logging.DEBUG)
    seed_users(database, tenant.workspace_id, [{"email": f"l{i}@example.com"} for i in range(120)])
    setup = create_sync(client, tenant, sandbox)
    client.post(tenant.url(f"/destinations/{setup.destination_id}/check"), headers=tenant.headers)
    client.get(tenant.url(f"/destinations/{setup.destination_id}"), headers=tenant.headers)

    sandbox.set_faults(FaultPlan(rate_429=0.3, rate_5xx=0.2, seed=7, match="/crm/v3/objects/"))
    outcome = run_sync(database, setup.sync_id, secret_key=settings.secret_key, retry=FAST_RETRY)
    assert outcome.counts.added == 120
    sandbox.set_faults()

    # A refused token is logged as refused, not shown.
    wrong = "pat-na1-wrong-token-0c5e"
    client.patch(
        tenant.url(f"/destinations/{setup.destination_id}"),
        json={"config": hubspot_config(sandbox, access_token=wrong)},
        headers=tenant.headers,
    )
    with database.session() as session:
        from connector.models import User

        session.get(User, 1).attributes = {"plan": "changed"}
    failed = run_sync(database, setup.sync_id, secret_key=settings.secret_key, retry=FAST_RETRY)
    assert failed.status.value == "failed"

    assert any(r.name.startswith("connector.syncs") for r in caplog.records)  # the run did log
    assert any("retrying" in r.getMessage() for r in caplog.records)
    for secret in (SANDBOX_TOKEN, wrong):
        assert secret not in caplog.text
        for record in caplog.records:
            assert secret not in record.getMessage()
            assert secret not in repr(record.args)
        assert secret not in (failed.first_error or "")
