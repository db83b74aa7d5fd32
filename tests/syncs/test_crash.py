"""A run killed with SIGKILL between batches loses nothing: the next run takes over its lease, sends what was not
acknowledged, and at most the batches that were in flight arrive twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from sqlalchemy import func, select

from connector.models import RecordState, RunStatus, SyncRecord, SyncRun
from connector.syncs import run_sync
from tests.syncs.conftest import FAST_RETRY, create_sync, hubspot_config, seed_users

N = 1000
UPSERT = "POST /crm/v3/objects/contacts/batch/upsert"


def test_a_killed_run_loses_nothing_and_the_next_one_converges(
    client, tenant, database, sandbox, settings, database_url, tmp_path
):
    seed_users(
        database,
        tenant.workspace_id,
        [{"email": f"k{i}@example.com", "attributes": {"first_name": f"K{i}", "plan": "pro"}} for i in range(N)],
    )
    # Three requests a second: slow enough to kill the run between batches.
    config = hubspot_config(sandbox, rate_limit_requests=3, rate_limit_seconds=1)
    setup = create_sync(client, tenant, sandbox, config=config)

    env = {**os.environ, "CONNECTOR_DATABASE_URL": database_url, "CONNECTOR_SECRET_KEY": settings.secret_key}
    log = (tmp_path / "run.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "connector.cli", "syncs", "run", str(setup.sync_id), "--quiet"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while _acknowledged(database) < 200:
            assert process.poll() is None, (tmp_path / "run.log").read_text()
            assert time.monotonic() < deadline, "the run never got going"
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
        log.close()

    # A COMMIT the process sent just before dying still completes on the server: let it settle (this is also
    # what makes the killed run's heartbeat stale for the lease below).
    time.sleep(1.2)
    sent_before_kill = sandbox.stats()["requests"][UPSERT]
    acknowledged = _acknowledged(database)
    with database.session() as session:
        killed = session.scalars(select(SyncRun)).one()
    assert killed.status == RunStatus.RUNNING  # nobody could say otherwise
    assert 0 < acknowledged < N and acknowledged % 100 == 0  # whole batches, committed as they were answered

    # The next run finds the lease stale (its heartbeat stopped) and takes over; a faster budget meanwhile.
    client.patch(
        tenant.url(f"/destinations/{setup.destination_id}"),
        json={"config": {"rate_limit_requests": 1000}},
        headers=tenant.headers,
    )
    outcome = run_sync(database, setup.sync_id, secret_key=settings.secret_key, retry=FAST_RETRY, lease_seconds=1)
    assert outcome.status == RunStatus.SUCCEEDED, outcome.first_error
    assert outcome.counts.added == N - acknowledged
    assert outcome.counts.unchanged == acknowledged

    with database.session() as session:
        assert session.get(SyncRun, killed.id).status == RunStatus.FAILED
        states = session.execute(select(SyncRecord.state, func.count()).group_by(SyncRecord.state)).all()
    assert states == [(RecordState.SYNCED, N)]

    stats = sandbox.stats()
    got = {r["properties"]["email"]: r["properties"] for r in sandbox.records("contacts")}
    assert len(got) == N
    assert all(got[f"k{i}@example.com"]["firstname"] == f"K{i}" for i in range(N))
    doubled = sum(1 for count in stats["upserts"]["contacts"].values() if count > 1)
    # Only what was sent but not acknowledged before the kill went twice: the batches in flight.
    assert doubled <= (sent_before_kill * 100) - acknowledged
    assert doubled <= 8 * 100  # four workers, two batches queued each


def _acknowledged(database) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(SyncRecord))
