"""An erased person leaves mirror syncs' destinations at their next run: removed or cleared remotely, then
forgotten (not even the identity stays)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from connector.models import RunStatus, SyncRecord, User
from connector.syncs import run_sync
from tests.ingest.helpers import ok, post_batch
from tests.syncs.conftest import FAST_RETRY, create_sync


@pytest.fixture
def ann(client, tenant, database) -> int:
    ok(post_batch(client, tenant, "identify", [{"external_id": "ann", "email": "ann@x.com", "tags": ["vip"]}]))
    ok(post_batch(client, tenant, "identify", [{"external_id": "bob", "email": "bob@x.com", "tags": ["vip"]}]))
    response = client.post(
        tenant.url("/segments?wait=true"),
        headers=tenant.headers,
        json={"name": "VIP", "conditions": {"type": "tag", "value": "vip"}},
    )
    assert response.status_code == 201, response.get_json()
    with database.session() as session:
        return session.scalar(select(User.id).where(User.external_id == "ann"))


@pytest.mark.parametrize("action", ["remove", "clear"])
def test_the_next_mirror_sync_removes_or_clears_the_erased_person_remotely(
    client, tenant, database, settings, sandbox, ann, action
):
    vip = client.get(tenant.url("/segments"), headers=tenant.headers).get_json()["data"]
    vip_id = next(s["id"] for s in vip if s["name"] == "VIP")
    setup = create_sync(client, tenant, sandbox, mode="mirror", mirror_action=action, segment_ids=[vip_id])

    def run():
        outcome = run_sync(database, setup.sync_id, secret_key=settings.secret_key, retry=FAST_RETRY)
        assert outcome.status == RunStatus.SUCCEEDED, outcome.first_error
        return outcome

    run()
    assert {r["properties"]["email"] for r in sandbox.records("contacts")} == {"ann@x.com", "bob@x.com"}

    assert client.delete(tenant.url(f"/users/{ann}"), headers=tenant.headers).status_code == 200
    assert run().counts.removed == 1

    contacts = {r["properties"]["email"]: r["properties"] for r in sandbox.records("contacts")}
    if action == "remove":
        assert set(contacts) == {"bob@x.com"}
    else:
        assert contacts["ann@x.com"]["segments"] == ""
    with database.session() as session:
        identities = set(session.scalars(select(SyncRecord.identity)))
    assert identities == {"bob@x.com"}  # nothing of Ann is kept, not even her email
    assert run().counts.planned == 0
