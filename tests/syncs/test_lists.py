"""List syncs against the HubSpot sandbox over real HTTP: one static list per segment, members following the
segment (enter, exit), a renamed segment renaming its list, 429s absorbed, update-only syncs saying who was
skipped."""

from __future__ import annotations

from sqlalchemy import select

from connector.models import SyncRunError
from connector.syncs.engine import run_sync
from tests.syncs.conftest import FAST_RETRY, create_sync, make_segment, rename_segment, seed_users, set_members


def setup(client, tenant, database, sandbox, n=5, **sync):
    ids = seed_users(database, tenant.workspace_id, [{"email": f"p{i}@example.com"} for i in range(n)])
    pro = make_segment(database, tenant.workspace_id, "Pro users")
    trial = make_segment(database, tenant.workspace_id, "Trial")
    set_members(database, tenant.workspace_id, pro, ids[:3])
    set_members(database, tenant.workspace_id, trial, ids[3:])
    made = create_sync(client, tenant, sandbox, segment_ids=[pro, trial], **sync)
    response = client.put(tenant.url(f"/syncs/{made.sync_id}/lists"), json={"enabled": True}, headers=tenant.headers)
    assert response.status_code == 200, response.get_json()
    return made.sync_id, ids, pro, trial


def members(sandbox, name: str) -> set[str]:
    lists = sandbox.lists()
    emails = {r["id"]: r["properties"]["email"] for r in sandbox.records("contacts")}
    return {emails[i] for i in lists[name]["members"]}


def run(database, settings, sync_id):
    outcome = run_sync(database, sync_id, secret_key=settings.secret_key, retry=FAST_RETRY)
    assert outcome.status.value == "succeeded", outcome.first_error
    return outcome


def test_each_segment_gets_a_list_whose_members_follow_it(client, tenant, database, settings, sandbox):
    sync_id, ids, pro, trial = setup(client, tenant, database, sandbox)

    run(database, settings, sync_id)

    assert set(sandbox.lists()) == {"Pro users", "Trial"}
    assert members(sandbox, "Pro users") == {"p0@example.com", "p1@example.com", "p2@example.com"}
    assert members(sandbox, "Trial") == {"p3@example.com", "p4@example.com"}

    # p3 enters Pro, p0 leaves it.
    set_members(database, tenant.workspace_id, pro, [ids[1], ids[2], ids[3]])
    run(database, settings, sync_id)
    assert members(sandbox, "Pro users") == {"p1@example.com", "p2@example.com", "p3@example.com"}

    state = client.get(tenant.url(f"/syncs/{sync_id}/lists"), headers=tenant.headers).get_json()
    assert state["enabled"] is True
    assert {entry["segment"]: entry["members"] for entry in state["lists"]} == {"Pro users": 3, "Trial": 2}


def test_an_unchanged_rerun_sends_no_list_request(client, tenant, database, settings, sandbox):
    sync_id, *_ = setup(client, tenant, database, sandbox)
    run(database, settings, sync_id)
    before = sandbox.stats()["requests"]

    run(database, settings, sync_id)

    after = sandbox.stats()["requests"]
    changed = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    assert not any("/memberships/" in k or k == "POST /crm/v3/lists" for k in changed), changed


def test_a_renamed_segment_renames_its_list_and_keeps_its_members(client, tenant, database, settings, sandbox):
    sync_id, ids, pro, _ = setup(client, tenant, database, sandbox)
    run(database, settings, sync_id)
    list_id = sandbox.lists()["Pro users"]["listId"]

    rename_segment(database, tenant.workspace_id, pro, "Power users")
    run(database, settings, sync_id)

    lists = sandbox.lists()
    assert "Pro users" not in lists
    assert lists["Power users"]["listId"] == list_id
    assert members(sandbox, "Power users") == {"p0@example.com", "p1@example.com", "p2@example.com"}


def test_list_requests_are_retried_through_429s(client, tenant, database, settings, sandbox):
    sync_id, ids, pro, _ = setup(client, tenant, database, sandbox, n=8)
    sandbox.set_faults(rate_429=0.5, seed=3, match="/crm/v3/lists")

    run(database, settings, sync_id)

    assert sandbox.stats()["faults"].get("429", 0) > 0
    assert members(sandbox, "Pro users") == {"p0@example.com", "p1@example.com", "p2@example.com"}
    assert len(sandbox.lists()) == 2


def test_update_only_sync_says_which_members_were_skipped(client, tenant, database, settings, sandbox):
    sync_id, ids, pro, _ = setup(client, tenant, database, sandbox, mode="update")

    outcome = run_sync(database, sync_id, secret_key=settings.secret_key, retry=FAST_RETRY)

    assert sandbox.lists()["Pro users"]["members"] == []
    with database.session() as session:
        skipped = session.scalars(
            select(SyncRunError.subject_id).where(SyncRunError.run_id == outcome.run_id, SyncRunError.kind == "skipped")
        ).all()
    assert sorted(skipped) == sorted(ids)


def test_lists_are_refused_for_a_sync_without_segments(client, tenant, sandbox):
    made = create_sync(client, tenant, sandbox)
    response = client.put(tenant.url(f"/syncs/{made.sync_id}/lists"), json={"enabled": True}, headers=tenant.headers)
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "body.enabled"
