"""Sync runs on real ``connector worker`` processes over RabbitMQ, against HubSpot sandboxes over HTTP."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from connector import create_app
from connector.models import RunStatus, SyncRecord, SyncRun, TaskDelivery
from connector.testing.hubspot_sandbox import FaultPlan, HubSpotSandbox
from connector.workers.dispatch import CeleryDispatcher
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


def test_a_worker_on_a_redis_broker_runs_a_sync(
    client, tenant, database, sandboxes, start_worker, worker_settings, redis_url
):
    settings = replace(worker_settings, operations=replace(worker_settings.operations, broker_url=redis_url))
    users(database, tenant, "r", 120)
    setup = create_sync(client, tenant, sandboxes[0])
    start_worker(settings=settings)
    CeleryDispatcher(database, settings).run_sync(setup.sync_id, "schedule")
    assert wait_for_runs(database, [setup.sync_id], timeout=60)[setup.sync_id].added == 120
    assert len(sandboxes[0].records("contacts")) == 120


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


def make_destination(client, tenant, sandbox, name: str, **config) -> int:
    response = client.post(
        tenant.url("/destinations"),
        json={"name": name, "type": "hubspot", "config": hubspot_config(sandbox, **config)},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def make_segment_sync(client, database, tenant, destination_id: int, name: str, n: int) -> int:
    """A sync of its own segment of ``n`` new people to ``destination_id``."""
    members = users(database, tenant, f"{name}-", n)
    segment_id = make_segment(database, tenant.workspace_id, name)
    set_members(database, tenant.workspace_id, segment_id, members)
    body = {
        "name": name,
        "destination_id": destination_id,
        "subject_type": "users",
        "destination_object": "contacts",
        "segment_ids": [segment_id],
        "mappings": [
            {"source": {"kind": "field", "name": "email"}, "destination": "email"},
            {"source": {"kind": "attribute", "name": "first_name"}, "destination": "firstname"},
        ],
        "identity": {"destination": "email"},
    }
    response = client.post(tenant.url("/syncs"), json=body, headers=tenant.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def most_at_once(runs: list[SyncRun]) -> int:
    edges = sorted([(r.started_at, 1) for r in runs] + [(r.finished_at, -1) for r in runs], key=lambda e: (e[0], e[1]))
    current = peak = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


def test_a_slow_destination_delays_only_its_own_syncs(client, tenant, database, sandboxes, start_worker, dispatcher):
    destinations = [make_destination(client, tenant, s, f"portal-{i}") for i, s in enumerate(sandboxes)]
    syncs = {
        d: [make_segment_sync(client, database, tenant, d, f"d{d}s{k}", 100) for k in range(5)] for d in destinations
    }
    slow, fast = destinations[0], destinations[1:]
    sandboxes[0].set_faults(FaultPlan(latency_s=2.0))
    start_worker(), start_worker()

    # The slow destination's syncs first: without isolation they would take five of the eight worker slots.
    for sync_id in syncs[slow] + [s for d in fast for s in syncs[d]]:
        dispatcher.run_sync(sync_id, "schedule")
    runs = wait_for_runs(database, [s for ids in syncs.values() for s in ids], timeout=120)

    slow_runs = [runs[s] for s in syncs[slow]]
    fast_runs = [runs[s] for d in fast for s in syncs[d]]
    assert all(r.added == 100 for r in slow_runs + fast_runs)
    # The slow destination ran two at a time, never more: the other destinations kept the rest of the slots, ran
    # while its first runs were still waiting for their answers, and were all done before it.
    assert most_at_once(slow_runs) <= 2
    first_slow = min(slow_runs, key=lambda r: r.started_at)
    assert any(first_slow.started_at < r.started_at and r.finished_at < first_slow.finished_at for r in fast_runs)
    assert max(r.finished_at for r in fast_runs) < max(r.finished_at for r in slow_runs)
    for sandbox, destination in zip(sandboxes, destinations, strict=True):
        assert len(sandbox.records("contacts")) == 100 * len(syncs[destination])


def test_two_workers_syncing_to_one_portal_stay_under_its_rate_limit(
    client, tenant, database, sandboxes, start_worker, dispatcher
):
    portal = sandboxes[0]
    portal.set_rate_limit((20, 2.0))
    destination = make_destination(client, tenant, portal, "portal", rate_limit_requests=20, rate_limit_seconds=2)
    sync_ids = [make_segment_sync(client, database, tenant, destination, f"p{k}", 2000) for k in range(2)]
    start_worker(concurrency=1), start_worker(concurrency=1)
    for sync_id in sync_ids:
        dispatcher.run_sync(sync_id, "schedule")
    runs = wait_for_runs(database, sync_ids, timeout=120)

    with database.session() as session:
        workers = set(session.scalars(select(TaskDelivery.worker)))
    assert len(workers) == 2  # one run on each worker, at the same time
    assert most_at_once(list(runs.values())) == 2
    assert [r.added for r in runs.values()] == [2000, 2000]
    stats = portal.stats()
    assert stats["rate_limited"] == 0
    assert stats["requests"][UPSERT] == 40


def test_run_now_in_the_api_enqueues_the_claimed_run_for_a_worker(
    tenant, database, sandboxes, start_worker, worker_settings
):
    api = create_app(worker_settings, database=database).test_client()
    users(database, tenant, "n", 150)
    setup = create_sync(api, tenant, sandboxes[0])
    start_worker()
    response = api.post(tenant.url(f"/syncs/{setup.sync_id}/runs"), headers=tenant.headers)
    assert response.status_code == 202, response.get_json()
    claimed = response.get_json()["id"]
    run = wait_for_runs(database, [setup.sync_id], timeout=60)[setup.sync_id]
    # The worker carried out the very run the API claimed and answered with.
    assert (run.id, run.trigger, run.added) == (claimed, "api", 150)
