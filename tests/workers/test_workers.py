"""Sync runs on real ``connector worker`` processes over RabbitMQ, against HubSpot sandboxes over HTTP."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from connector.models import RunStatus, SyncRecord, SyncRun, TaskDelivery
from connector.testing.hubspot_sandbox import FaultPlan, HubSpotSandbox
from tests.syncs.conftest import SANDBOX_TOKEN, create_sync, hubspot_config, make_segment, seed_users, set_members
from tests.workers.conftest import LEASE_SECONDS, wait_for_runs

UPSERT = "POST /crm/v3/objects/contacts/batch/upsert"


@pytest.fixture
def sandboxes() -> Iterator[list[HubSpotSandbox]]:
    """Four HubSpot portals (sandboxes), each on its own port."""
    servers = [HubSpotSandbox(port=0, token=SANDBOX_TOKEN).start() for _ in range(4)]
    yield servers
    for server in servers:
        server.stop()


def users(database, tenant, prefix: str, n: int) -> list[int]:
    return seed_users(
        database,
        tenant.workspace_id,
        [{"email": f"{prefix}{i}@example.com", "attributes": {"first_name": f"F{i}", "plan": "pro"}} for i in range(n)],
    )


def test_a_worker_runs_a_sync_sent_by_the_scheduler(client, tenant, database, sandboxes, start_worker, dispatcher):
    users(database, tenant, "a", 250)
    setup = create_sync(client, tenant, sandboxes[0])
    start_worker()
    dispatcher.run_sync(setup.sync_id, "schedule")
    run = wait_for_runs(database, [setup.sync_id], timeout=60)[setup.sync_id]
    assert (run.trigger, run.added) == ("schedule", 250)
    assert len(sandboxes[0].records("contacts")) == 250


def test_a_run_whose_worker_is_killed_is_taken_over_by_another_and_nothing_is_lost(
    client, tenant, database, sandboxes, start_worker, dispatcher
):
    n = 2000
    users(database, tenant, "k", n)
    # Ten requests a second: twenty batches take long enough to kill the worker between them.
    setup = create_sync(
        client, tenant, sandboxes[0], config=hubspot_config(sandboxes[0], rate_limit_requests=10, rate_limit_seconds=1)
    )
    workers = {start_worker().pid: None, start_worker().pid: None}
    dispatcher.run_sync(setup.sync_id, "schedule")

    deadline = time.monotonic() + 60
    while True:
        with database.session() as session:
            synced = session.scalar(
                select(func.count()).select_from(SyncRecord).where(SyncRecord.sync_id == setup.sync_id)
            )
            holder = session.scalar(select(TaskDelivery.worker))
        if synced >= 300 and holder:
            break
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.05)
    victim = int(holder.rsplit("-", 1)[1])
    assert victim in workers
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()

    run = wait_for_runs(database, [setup.sync_id], timeout=60)[setup.sync_id]
    taken_over_in = time.monotonic() - killed_at
    with database.session() as session:
        runs = session.scalars(select(SyncRun).where(SyncRun.sync_id == setup.sync_id).order_by(SyncRun.id)).all()
        state = session.scalar(select(func.count()).select_from(SyncRecord).where(SyncRecord.sync_id == setup.sync_id))
    # The dead worker's run is marked abandoned once its lease expired; another worker's run finished the work.
    assert [r.status for r in runs] == [RunStatus.FAILED, RunStatus.SUCCEEDED]
    assert runs[0].first_error.startswith("abandoned")
    assert run.added + runs[0].added >= n - 8 * 100
    assert taken_over_in >= LEASE_SECONDS * 0.5
    # Remote state exact: every contact once, with its values; at most the batches in flight were sent twice.
    records = {r["properties"]["email"]: r["properties"] for r in sandboxes[0].records("contacts")}
    assert len(records) == n == state
    assert all(records[f"k{i}@example.com"]["firstname"] == f"F{i}" for i in range(n))
    upserts = sandboxes[0].stats()["upserts"]["contacts"]
    assert sum(upserts.values()) - n <= 8 * 100
