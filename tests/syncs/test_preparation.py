"""Preparing a destination (property group, property reads and creates): each request retried alone under
transient faults, and what was prepared recorded in the database, so another process with one change to send
spends no setup request."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import select

from connector.models import RunStatus, SyncPreparation, User
from connector.syncs import run_sync
from connector.testing.hubspot_sandbox import FaultPlan
from tests.syncs.conftest import FAST_RETRY, create_sync, seed_users

PROPERTIES = "/crm/v3/properties/"
UPSERT = "POST /crm/v3/objects/contacts/batch/upsert"


def setup_requests(stats: dict) -> int:
    return sum(n for key, n in stats["requests"].items() if PROPERTIES in key)


def delta(before: dict, after: dict) -> dict[str, int]:
    keys = set(before["requests"]) | set(after["requests"])
    changed = {k: after["requests"].get(k, 0) - before["requests"].get(k, 0) for k in keys}
    return {k: n for k, n in changed.items() if n}


@pytest.mark.parametrize(
    "faults",
    [
        FaultPlan(rate_429=0.3, seed=11, match=PROPERTIES),
        FaultPlan(rate_5xx=0.3, seed=12, match=PROPERTIES),
        FaultPlan(rate_drop=0.3, seed=13),
    ],
    ids=["429-on-setup", "5xx-on-setup", "dropped-everywhere"],
)
def test_first_runs_succeed_when_setup_requests_meet_30_percent_transient_faults(
    client, tenant, database, sandbox, settings, faults
):
    seed_users(database, tenant.workspace_id, [{"email": f"p{i}@example.com"} for i in range(20)])
    syncs = [create_sync(client, tenant, sandbox, name=f"contacts-{n}").sync_id for n in range(6)]
    sandbox.set_faults(faults)
    outcomes = [run_sync(database, s, secret_key=settings.secret_key, retry=FAST_RETRY) for s in syncs]
    sandbox.set_faults()

    assert [o.status for o in outcomes] == [RunStatus.SUCCEEDED] * len(syncs), [o.first_error for o in outcomes]
    assert sum(sandbox.stats()["faults"].values()) > 0
    assert len(sandbox.records("contacts")) == 20


def test_one_failed_setup_request_is_repeated_alone_not_the_whole_preparation(
    client, tenant, database, sandbox, settings
):
    seed_users(database, tenant.workspace_id, [{"email": "a@example.com"}])
    setup = create_sync(client, tenant, sandbox)
    clean = run_sync(database, setup.sync_id, secret_key=settings.secret_key, retry=FAST_RETRY)
    assert clean.status == RunStatus.SUCCEEDED
    clean_setup = setup_requests(sandbox.stats())

    # The same preparation again (a fresh sandbox, a forgotten preparation), every property request failing often.
    sandbox.reset()
    with database.session() as session:
        session.execute(SyncPreparation.__table__.delete())
    sandbox.set_faults(FaultPlan(rate_5xx=0.3, seed=21, match=PROPERTIES))
    with database.session() as session:
        session.get(User, session.scalar(select(User.id))).attributes = {"plan": "pro"}
    faulty = run_sync(database, setup.sync_id, secret_key=settings.secret_key, retry=FAST_RETRY)
    sandbox.set_faults()
    stats = sandbox.stats()
    assert faulty.status == RunStatus.SUCCEEDED, faulty.first_error
    faults = stats["faults"]["5xx"]
    assert faults > 0
    # Retrying the whole preparation would repeat every request before the failed one; each request alone costs
    # exactly the failed attempts more.
    assert setup_requests(stats) == clean_setup + faults


def test_a_cli_run_in_another_process_with_one_change_spends_no_setup_request(
    client, tenant, database, sandbox, settings, database_url
):
    ids = seed_users(database, tenant.workspace_id, [{"email": f"c{i}@example.com"} for i in range(5)])
    setup = create_sync(client, tenant, sandbox)
    first = run_sync(database, setup.sync_id, secret_key=settings.secret_key, retry=FAST_RETRY)
    assert first.status == RunStatus.SUCCEEDED
    assert setup_requests(sandbox.stats()) > 0
    with database.session() as session:
        session.get(User, ids[2]).attributes = {"plan": "pro"}

    before = sandbox.stats()
    env = {**os.environ, "CONNECTOR_DATABASE_URL": database_url, "CONNECTOR_SECRET_KEY": settings.secret_key}
    done = subprocess.run(
        [sys.executable, "-m", "connector.cli", "syncs", "run", str(setup.sync_id), "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert delta(before, sandbox.stats()) == {UPSERT: 1}


def test_an_edited_destination_is_prepared_again_at_its_next_run_with_changes(
    client, tenant, database, sandbox, settings
):
    ids = seed_users(database, tenant.workspace_id, [{"email": "e@example.com"}])
    setup = create_sync(client, tenant, sandbox)
    run_sync(database, setup.sync_id, secret_key=settings.secret_key, retry=FAST_RETRY)
    response = client.patch(
        tenant.url(f"/destinations/{setup.destination_id}"),
        json={"config": {"property_group": "crm_sync"}},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.get_json()
    with database.session() as session:
        session.get(User, ids[0]).attributes = {"plan": "team"}
    before = sandbox.stats()
    again = run_sync(database, setup.sync_id, secret_key=settings.secret_key, retry=FAST_RETRY)
    assert again.status == RunStatus.SUCCEEDED
    assert setup_requests({"requests": delta(before, sandbox.stats())}) > 0
