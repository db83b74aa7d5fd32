"""Faults between us and HubSpot: every record arrives once in effect, the counts stay right.

The sandbox injects them (seeded, so a run repeats): 429s, 5xx, answers that come after the client gave up,
dropped connections, and 5xx after the write was applied. The final state of the sandbox must equal what the
database says, whatever was sent twice on the way.
"""

from __future__ import annotations

import pytest
from sqlalchemy import update

from connector.models import RunStatus, User
from connector.syncs import run_sync
from connector.testing.hubspot_sandbox import FaultPlan
from tests.syncs.conftest import FAST_RETRY, create_sync, hubspot_config, seed_users

N = 300
# Faults on the record endpoints, where delivery happens (faults while preparing: test_preparation.py).
RECORDS = "/crm/v3/objects/"


def expected(plan: str) -> dict[str, dict]:
    return {f"f{i}@example.com": {"plan": plan, "firstname": f"F{i}"} for i in range(N)}


def state(sandbox) -> dict[str, dict]:
    return {
        r["properties"]["email"]: {"plan": r["properties"]["plan"], "firstname": r["properties"]["firstname"]}
        for r in sandbox.records("contacts")
    }


@pytest.mark.parametrize(
    "faults",
    [
        FaultPlan(rate_429=0.3, seed=1, match=RECORDS),
        FaultPlan(rate_5xx=0.3, seed=2, match=RECORDS),
        FaultPlan(rate_timeout=0.3, timeout_s=0.5, seed=3, match=RECORDS),
        FaultPlan(rate_drop=0.3, seed=4, match=RECORDS),
        FaultPlan(rate_5xx_after_write=0.3, seed=5, match=RECORDS),
    ],
    ids=["429", "5xx", "timeout", "dropped", "5xx-after-write"],
)
def test_every_record_arrives_once_in_effect(client, tenant, database, sandbox, settings, faults):
    seed_users(
        database,
        tenant.workspace_id,
        [{"email": f"f{i}@example.com", "attributes": {"first_name": f"F{i}", "plan": "free"}} for i in range(N)],
    )
    # A short client timeout, so a slow answer is a timeout (the sandbox answers those after 0.5 s).
    setup = create_sync(client, tenant, sandbox, config=hubspot_config(sandbox, timeout_s=0.25))

    def run():
        return run_sync(database, setup.sync_id, secret_key=settings.secret_key, retry=FAST_RETRY)

    sandbox.set_faults(faults)
    first = run()
    assert first.status == RunStatus.SUCCEEDED, first.first_error
    assert (first.counts.added, first.counts.unsent) == (N, 0)
    assert state(sandbox) == expected("free")

    with database.session() as session:
        session.execute(update(User).where(User.workspace_id == tenant.workspace_id).values(attributes={"plan": "pro"}))
        # first_name gone: its field is cleared
    changed = run()
    assert changed.status == RunStatus.SUCCEEDED, changed.first_error
    assert (changed.counts.changed, changed.counts.unsent) == (N, 0)
    assert state(sandbox) == {email: {"plan": "pro", "firstname": ""} for email in expected("pro")}

    stats = sandbox.stats()
    injected = sum(stats["faults"].values())
    assert injected > 0
    assert stats["records"]["contacts"] == N  # never a duplicate contact
    assert min(stats["upserts"]["contacts"].values()) >= 2
    if faults.rate_timeout or faults.rate_5xx_after_write:
        # Writes that landed but whose answer was lost were sent again: harmless, they are upserts.
        assert max(stats["upserts"]["contacts"].values()) > 2

    sandbox.set_faults()
    before = sandbox.stats()["requests"]
    assert run().counts.unchanged == N
    assert sandbox.stats()["requests"] == before
